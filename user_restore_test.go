//go:build go1.25

package raft

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Raft.Restore, the user's restore of an external snapshot, on whole
// clusters in virtual time (testing/synctest).

// userSnapshot returns the data and metadata of a snapshot a testFSM holding
// commands "restored-<i>" at indexes 1..n would write.
func userSnapshot(t testing.TB, n int) (*SnapshotMeta, []byte, [][]byte) {
	t.Helper()
	var indexes []uint64
	var commands [][]byte
	for i := range n {
		indexes = append(indexes, uint64(i+1))
		commands = append(commands, []byte(fmt.Sprintf("restored-%d", i)))
	}
	data := encodeTestSnapshot(t, indexes, commands)
	meta := &SnapshotMeta{Version: SnapshotVersionMax, ID: "user", Index: uint64(n), Term: 1, Size: int64(len(data))}
	return meta, data, commands
}

func TestUserRestoreReplacesEveryFSMAndAbortsInflightApplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, faulty := newFaultyCluster(t, 3, 0, snapshotOnlyOnRequest)
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "old", 20)
		c.waitApplied(20)

		// Hold back the entries (not the heartbeats) so the next applies
		// stay uncommitted.
		leaderTrans := faulty[c.indexOf(leader)]
		leaderTrans.setRule(func(_ ServerAddress, req *AppendEntriesRequest) bool { return len(req.Entries) > 0 })
		lastBefore := leader.raft.LastIndex()
		var inflight []ApplyFuture
		for i := range 50 {
			inflight = append(inflight, leader.raft.Apply([]byte(fmt.Sprintf("inflight-%d", i)), time.Second))
		}
		c.waitFor(5*time.Second, "the leader to append the 50 applies", func() bool {
			return leader.raft.LastIndex() == lastBefore+50
		})
		require.Equal(t, 20, leader.fsm.len(), "uncommitted applies reached the FSM")

		meta, data, restored := userSnapshot(t, 3)
		restoreErr := make(chan error, 1)
		go func() { restoreErr <- leader.raft.Restore(meta, bytes.NewReader(data), 0) }()
		for i, f := range inflight {
			require.ErrorIs(t, f.Error(), ErrAbortedByRestore, "in-flight apply %d", i)
		}
		leaderTrans.setRule(nil)
		require.NoError(t, <-restoreErr)
		require.Equal(t, restored, leader.fsm.commands(), "the leader's FSM holds the restored state")
		require.Greater(t, leader.raft.LastIndex(), lastBefore+50, "the restore's snapshot comes after every entry in the log")

		applyN(t, leader.raft, "new", 5)
		want := append(slices.Clone(restored), [][]byte{
			[]byte("new-0"), []byte("new-1"), []byte("new-2"), []byte("new-3"), []byte("new-4"),
		}...)
		c.waitFor(10*time.Second, "every FSM to hold the restored state and the new commands", func() bool {
			for _, node := range c.nodes {
				if !slices.EqualFunc(node.fsm.commands(), want, bytes.Equal) {
					return false
				}
			}
			return true
		})
		for _, node := range c.nodes {
			snapshotIndex, _ := node.raft.getLastSnapshot()
			require.Greater(t, snapshotIndex, lastBefore+50, "%s did not take the restore's snapshot", node.id)
		}
	})
}

func TestUserRestoreWithFailingFSMRestoreReturnsError(t *testing.T) {
	// A record header announcing 100 bytes followed by 5: testFSM.Restore
	// fails with an unexpected EOF.
	badRecord := append([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 100}, []byte("short")...)
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOnlyOnRequest})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "old", 20)
		c.waitApplied(20)
		before := leader.fsm.commands()

		meta := &SnapshotMeta{Version: SnapshotVersionMax, ID: "user", Index: 1, Term: 1, Size: int64(len(badRecord))}
		err := leader.raft.Restore(meta, bytes.NewReader(badRecord), time.Second)
		require.ErrorContains(t, err, "restore")
		require.Equal(t, before, leader.fsm.commands(), "the FSM refused the data, so its state is unchanged")
		// Documented choice: the node shuts down rather than serve an FSM
		// that saw part of a restore.
		c.waitFor(5*time.Second, "the failed leader to shut down", func() bool { return leader.raft.State() == Shutdown })

		// The others carry on with the old state.
		survivor := c.leader()
		applyN(t, survivor.raft, "more", 5)
		c.waitApplied(25)
		c.requireSameFSMs()

		// Restarted from its stores, the failed node has its old state back
		// and catches up.
		c.restartNode(leader)
		c.waitApplied(25)
		c.requireSameFSMs()
	})
}

func TestUserRestoreRefusesBadRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOnlyOnRequest})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "old", 5)
		c.waitApplied(5)
		follower := c.others(leader)[0]
		meta, data, _ := userSnapshot(t, 3)

		require.ErrorIs(t, follower.raft.Restore(meta, bytes.NewReader(data), time.Second), ErrNotLeader)
		require.Error(t, leader.raft.Restore(nil, bytes.NewReader(data), time.Second), "nil metadata")
		require.Error(t, leader.raft.Restore(meta, nil, time.Second), "nil reader")
		negative := *meta
		negative.Size = -1
		require.Error(t, leader.raft.Restore(&negative, bytes.NewReader(data), time.Second), "negative size")

		// None of them touched any FSM.
		c.waitApplied(5)
		for _, node := range c.nodes {
			require.Equal(t, 5, node.fsm.len(), "%s", node.id)
		}
		applyN(t, leader.raft, "after", 1)
		c.waitApplied(6)
		c.requireSameFSMs()
	})
}

func TestUserRestoreEmptiesMonotonicLogStore(t *testing.T) {
	for _, monotonic := range []bool{false, true} {
		t.Run(fmt.Sprintf("monotonic=%v", monotonic), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := clusterOptions{tweak: snapshotOnlyOnRequest}
				if monotonic {
					opts.wrapStore = func(node *testNode) raftStore { return monotonicStore{node.store} }
				}
				c := newTestCluster(t, 1, opts)
				defer c.close()
				node := c.leader()
				applyN(t, node.raft, "old", 10)
				lastBefore := node.raft.LastIndex()
				meta, data, restored := userSnapshot(t, 3)
				require.NoError(t, node.raft.Restore(meta, bytes.NewReader(data), time.Second))
				require.Equal(t, restored, node.fsm.commands())

				first, err := node.store.FirstIndex()
				require.NoError(t, err)
				if monotonic {
					// Only the no-op after the snapshot is left.
					require.Equal(t, lastBefore+2, first, "a MonotonicLogStore keeps no entry before the restore")
				} else {
					require.Equal(t, uint64(1), first, "the log before the restore is left for compaction")
				}
				applyN(t, node.raft, "new", 2)
				require.Len(t, node.fsm.commands(), 5)
			})
		})
	}
}
