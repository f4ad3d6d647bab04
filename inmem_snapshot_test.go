//go:build go1.25

package raft

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

var (
	_ SnapshotStore = (*InmemSnapshotStore)(nil)
	_ SnapshotSink  = (*InmemSnapshotSink)(nil)
)

func snapTestConfiguration() Configuration {
	return Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:7000"},
		{Suffrage: Nonvoter, ID: "n2", Address: "127.0.0.1:7001"},
	}}
}

// snapTestWrite creates a snapshot at (term, index), writes data to it in
// two pieces and returns the still open sink.
func snapTestWrite(t *testing.T, store SnapshotStore, term, index uint64, data string) SnapshotSink {
	t.Helper()
	sink, err := store.Create(1, index, term, snapTestConfiguration(), 2, nil)
	require.NoError(t, err)
	half := len(data) / 2
	for _, piece := range []string{data[:half], data[half:]} {
		n, err := sink.Write([]byte(piece))
		require.NoError(t, err)
		require.Equal(t, len(piece), n)
	}
	return sink
}

// requireSnapshots checks that List returns exactly the snapshots with the
// given IDs, newest first.
func requireSnapshots(t *testing.T, store SnapshotStore, wantIDs ...string) {
	t.Helper()
	metas, err := store.List()
	require.NoError(t, err)
	require.NotNil(t, metas, "List returns an empty list, not nil")
	ids := []string{}
	for _, meta := range metas {
		ids = append(ids, meta.ID)
	}
	if wantIDs == nil {
		wantIDs = []string{}
	}
	require.Equal(t, wantIDs, ids, "snapshots listed")
}

// requireOpens checks that Open(id) gives data and metadata matching it.
func requireOpens(t *testing.T, store SnapshotStore, id string, term, index uint64, data string) {
	t.Helper()
	meta, reader, err := store.Open(id)
	require.NoError(t, err, "Open(%q)", id)
	got, err := io.ReadAll(reader)
	require.NoError(t, err)
	require.NoError(t, reader.Close())
	require.Equal(t, data, string(got), "data of snapshot %q", id)
	require.Equal(t, &SnapshotMeta{
		Version:            1,
		ID:                 id,
		Index:              index,
		Term:               term,
		Peers:              nil,
		Configuration:      snapTestConfiguration(),
		ConfigurationIndex: 2,
		Size:               int64(len(data)),
	}, meta)
}

func requireOpenFails(t *testing.T, store SnapshotStore, id string) {
	t.Helper()
	meta, reader, err := store.Open(id)
	require.EqualError(t, err, "[ERR] snapshot: failed to open snapshot id: "+id)
	require.Nil(t, meta)
	require.Nil(t, reader)
}

func TestInmemSnapshotStoreRejectsUnsupportedVersions(t *testing.T) {
	store := NewInmemSnapshotStore()
	for _, version := range []SnapshotVersion{-1, 0, 2} {
		sink, err := store.Create(version, 10, 1, snapTestConfiguration(), 2, nil)
		require.EqualError(t, err, fmt.Sprintf("unsupported snapshot version %d", version))
		require.Nil(t, sink)
	}
	requireSnapshots(t, store)
}

func TestInmemSnapshotStoreIsEmptyAtFirst(t *testing.T) {
	store := NewInmemSnapshotStore()
	requireSnapshots(t, store)
	requireOpenFails(t, store, "1-10-0-1")
}

func TestInmemSnapshotBecomesVisibleOnlyOnClose(t *testing.T) {
	store := NewInmemSnapshotStore()
	sink := snapTestWrite(t, store, 3, 10, "fsm state")

	requireSnapshots(t, store)
	requireOpenFails(t, store, sink.ID())

	require.NoError(t, sink.Close())
	requireSnapshots(t, store, sink.ID())
	requireOpens(t, store, sink.ID(), 3, 10, "fsm state")
}

func TestInmemSnapshotCancelledNeverBecomesVisible(t *testing.T) {
	store := NewInmemSnapshotStore()
	kept := snapTestWrite(t, store, 1, 5, "kept")
	require.NoError(t, kept.Close())

	cancelled := snapTestWrite(t, store, 2, 20, "cancelled")
	require.NoError(t, cancelled.Cancel())
	require.Error(t, cancelled.Close(), "Close after Cancel")
	_, err := cancelled.Write([]byte("more"))
	require.Error(t, err, "Write after Cancel")
	require.NoError(t, cancelled.Cancel(), "a second Cancel is harmless")

	requireSnapshots(t, store, kept.ID())
	requireOpenFails(t, store, cancelled.ID())
	requireOpens(t, store, kept.ID(), 1, 5, "kept")
}

func TestInmemSnapshotStoreKeepsOnlyTheLatest(t *testing.T) {
	store := NewInmemSnapshotStore()
	older := snapTestWrite(t, store, 1, 10, "older")
	require.NoError(t, older.Close())
	newer := snapTestWrite(t, store, 2, 20, "newer")
	require.NoError(t, newer.Close())

	requireSnapshots(t, store, newer.ID())
	requireOpenFails(t, store, older.ID())
	requireOpens(t, store, newer.ID(), 2, 20, "newer")
}

func TestInmemSnapshotOlderThanTheKeptOneDoesNotReplaceIt(t *testing.T) {
	tests := []struct {
		name              string
		oldTerm, oldIndex uint64
	}{
		{"lower index, same term", 2, 15},
		{"lower term", 1, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewInmemSnapshotStore()
			// Both are in progress at once; the newer one finishes first.
			old := snapTestWrite(t, store, tt.oldTerm, tt.oldIndex, "old")
			newer := snapTestWrite(t, store, 2, 20, "newer")
			require.NoError(t, newer.Close())
			require.NoError(t, old.Close())

			requireSnapshots(t, store, newer.ID())
			requireOpens(t, store, newer.ID(), 2, 20, "newer")
		})
	}
}

func TestInmemSnapshotAtTheSameIndexReplacesTheKeptOne(t *testing.T) {
	store := NewInmemSnapshotStore()
	first := snapTestWrite(t, store, 2, 20, "first")
	require.NoError(t, first.Close())
	second := snapTestWrite(t, store, 2, 20, "second")
	require.NoError(t, second.Close())

	requireSnapshots(t, store, second.ID())
	requireOpens(t, store, second.ID(), 2, 20, "second")
}

func TestInmemSnapshotReaderDoesNotSeeLaterWrites(t *testing.T) {
	store := NewInmemSnapshotStore()
	first := snapTestWrite(t, store, 1, 10, "first state")
	require.NoError(t, first.Close())

	_, reader, err := store.Open(first.ID())
	require.NoError(t, err)
	head := make([]byte, 6)
	_, err = io.ReadFull(reader, head)
	require.NoError(t, err)

	// The closed sink takes no more data, and a newer snapshot replaces
	// the kept one while the reader is half way through.
	_, err = first.Write([]byte(" tampered"))
	require.Error(t, err, "Write after Close")
	second := snapTestWrite(t, store, 1, 11, "second state, longer")
	require.NoError(t, second.Close())

	rest, err := io.ReadAll(reader)
	require.NoError(t, err)
	require.Equal(t, "first state", string(head)+string(rest))
}

func TestInmemSnapshotMetadataHandedOutIsACopy(t *testing.T) {
	store := NewInmemSnapshotStore()
	configuration := snapTestConfiguration()
	sink, err := store.Create(1, 10, 1, configuration, 2, nil)
	require.NoError(t, err)
	configuration.Servers[0].ID = "changed by caller after Create"
	require.NoError(t, sink.Close())

	metas, err := store.List()
	require.NoError(t, err)
	metas[0].Configuration.Servers[0].Address = "changed by caller after List"
	metas[0].Size = 99
	meta, _, err := store.Open(sink.ID())
	require.NoError(t, err)
	meta.Configuration.Servers[1].Address = "changed by caller after Open"

	requireOpens(t, store, sink.ID(), 1, 10, "")
}

func TestInmemSnapshotSinkCloseAndCancelAfterClose(t *testing.T) {
	store := NewInmemSnapshotStore()
	sink := snapTestWrite(t, store, 1, 10, "data")
	require.NoError(t, sink.Close())
	require.Error(t, sink.Close(), "a second Close")
	require.NoError(t, sink.Cancel(), "Cancel after Close is a no-op")
	requireOpens(t, store, sink.ID(), 1, 10, "data")
}

func TestInmemSnapshotIDsAreUniqueWhenTheClockStandsStill(t *testing.T) {
	// Inside a synctest bubble time does not move, so the IDs of two
	// snapshots of the same point must differ by more than the clock.
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemSnapshotStore()
		first := snapTestWrite(t, store, 1, 10, "a")
		second := snapTestWrite(t, store, 1, 10, "b")
		require.NotEqual(t, first.ID(), second.ID())

		require.NoError(t, first.Close())
		require.NoError(t, second.Cancel())
		requireOpens(t, store, first.ID(), 1, 10, "a")
	})
}

func TestInmemSnapshotStoreConcurrentWritersAndReaders(t *testing.T) {
	// Writers close snapshots of growing index while readers list and open
	// whatever is kept; every reader must see complete data that matches
	// its metadata. Run with -race to check the locking.
	const writers, snapshotsEach, readers = 3, 30, 3
	store := NewInmemSnapshotStore()
	data := func(index uint64) string { return fmt.Sprintf("state at %d", index) }

	done := make(chan struct{})
	errs := make(chan error, readers)
	var readersWG sync.WaitGroup
	for r := 0; r < readers; r++ {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			errs <- snapTestReadUntilClosed(store, done, data)
		}()
	}

	var writersWG sync.WaitGroup
	writeErrs := make(chan error, writers*snapshotsEach)
	for w := 0; w < writers; w++ {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for i := 0; i < snapshotsEach; i++ {
				index := uint64(i*writers + w + 1)
				sink, err := store.Create(1, index, 1, snapTestConfiguration(), 2, nil)
				if err == nil {
					_, err = io.WriteString(sink, data(index))
				}
				if err == nil {
					err = sink.Close()
				}
				writeErrs <- err
			}
		}()
	}
	writersWG.Wait()
	close(done)
	readersWG.Wait()
	close(errs)
	close(writeErrs)
	for err := range writeErrs {
		require.NoError(t, err)
	}
	for err := range errs {
		require.NoError(t, err)
	}

	metas, err := store.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	require.Equal(t, uint64(writers*snapshotsEach), metas[0].Index, "the newest snapshot is kept")
}

func snapTestReadUntilClosed(store *InmemSnapshotStore, done <-chan struct{}, data func(uint64) string) error {
	for {
		select {
		case <-done:
			return nil
		default:
		}
		metas, err := store.List()
		if err != nil {
			return err
		}
		if len(metas) == 0 {
			continue
		}
		meta, reader, err := store.Open(metas[0].ID)
		if err != nil {
			continue // replaced between List and Open
		}
		got, err := io.ReadAll(reader)
		if err != nil {
			return err
		}
		if string(got) != data(meta.Index) || meta.Size != int64(len(got)) {
			return fmt.Errorf("snapshot %s (index %d, size %d) holds %q", meta.ID, meta.Index, meta.Size, got)
		}
	}
}
