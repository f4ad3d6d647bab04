//go:build go1.25

package raft

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	_ SnapshotStore = (*DiscardSnapshotStore)(nil)
	_ SnapshotSink  = (*DiscardSnapshotSink)(nil)
)

func TestDiscardSnapshotStoreKeepsNothing(t *testing.T) {
	store := NewDiscardSnapshotStore()
	sink, err := store.Create(1, 10, 3, snapTestConfiguration(), 2, nil)
	require.NoError(t, err)
	require.Equal(t, "discard", sink.ID())

	n, err := sink.Write([]byte("fsm state"))
	require.NoError(t, err)
	require.Equal(t, len("fsm state"), n, "writes are reported complete")
	require.NoError(t, sink.Close())

	metas, err := store.List()
	require.NoError(t, err)
	require.Nil(t, metas)

	meta, reader, err := store.Open("discard")
	require.EqualError(t, err, "open is not supported")
	require.Nil(t, meta)
	require.Nil(t, reader)
}

func TestDiscardSnapshotStoreRejectsUnsupportedVersions(t *testing.T) {
	for _, version := range []SnapshotVersion{0, 2} {
		sink, err := NewDiscardSnapshotStore().Create(version, 10, 3, Configuration{}, 0, nil)
		require.EqualError(t, err, fmt.Sprintf("unsupported snapshot version %d", version))
		require.Nil(t, sink)
	}
}

func TestDiscardSnapshotSinkRefusesUseAfterCloseOrCancel(t *testing.T) {
	tests := []struct {
		name   string
		finish func(*DiscardSnapshotSink) error
	}{
		{"after Close", (*DiscardSnapshotSink).Close},
		{"after Cancel", (*DiscardSnapshotSink).Cancel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sink DiscardSnapshotSink // the zero value is usable
			require.NoError(t, tt.finish(&sink))
			_, err := sink.Write([]byte("late"))
			require.Error(t, err, "Write")
			require.Error(t, sink.Close(), "Close")
			require.NoError(t, sink.Cancel(), "Cancel is always harmless")
		})
	}
}
