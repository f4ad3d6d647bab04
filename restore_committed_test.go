//go:build go1.25

package raft

import (
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// With RestoreCommittedLogs and a CommitTrackingLogStore, a restarted node
// replays the entries its store recorded as committed into the FSM before
// NewRaft returns, on top of its newest snapshot.
func TestRestoreCommittedLogsReplaysCommittedEntriesBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemCommitTrackingStore()
		snaps := NewInmemSnapshotStore()
		addr, trans := NewInmemTransport("")
		conf := testConfig("node0")
		conf.RestoreCommittedLogs = true
		require.NoError(t, BootstrapCluster(conf, store, store, snaps, trans,
			Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: addr}}}))
		r, err := NewRaft(conf, &testFSM{}, store, store, snaps, trans)
		require.NoError(t, err)
		c := &testCluster{t: t}
		c.waitFor(5e9, "leader", func() bool { return r.State() == Leader })
		applyN(t, r, "a", 10)
		require.NoError(t, r.Snapshot().Error())
		applyN(t, r, "b", 5)
		// The commit index reaches the store with the next write; one more
		// entry carries it.
		applyN(t, r, "c", 1)
		require.NoError(t, r.Shutdown().Error())
		committed, err := store.GetCommitIndex()
		require.NoError(t, err)
		require.Positive(t, committed)

		_, trans2 := NewInmemTransport(addr)
		conf2 := testConfig("node0")
		conf2.RestoreCommittedLogs = true
		conf2.skipStartup = true
		fsm := &testFSM{}
		r2, err := NewRaft(conf2, fsm, store, store, snaps, trans2)
		require.NoError(t, err)
		require.Equal(t, committed, r2.AppliedIndex())
		var want [][]byte
		for i := range 10 {
			want = append(want, []byte(fmt.Sprintf("a-%d", i)))
		}
		for i := range 5 {
			want = append(want, []byte(fmt.Sprintf("b-%d", i)))
		}
		require.Equal(t, want, fsm.commands()[:15], "snapshot, then the committed entries after it, in order")
	})
}

func TestRestoreCommittedLogsNeedsACommitTrackingLogStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := NewInmemStore()
		snaps := NewInmemSnapshotStore()
		addr, trans := NewInmemTransport("")
		conf := testConfig("node0")
		require.NoError(t, BootstrapCluster(conf, store, store, snaps, trans,
			Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: addr}}}))
		conf.RestoreCommittedLogs = true
		_, err := NewRaft(conf, &testFSM{}, store, store, snaps, trans)
		require.ErrorIs(t, err, ErrIncompatibleLogStore)
	})
}
