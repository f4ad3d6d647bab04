//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFollowerFarBehindCatchesUp cuts a follower off while the majority
// commits many entries, then reconnects it: it must end with exactly the
// leader's FSM. In the first case the 10,000 entries it misses are still in
// the leader's log and flow as AppendEntries. In the second, aggressive
// snapshots compact them away and there are more of them than the leader's
// in-memory tail holds (up to 2*tailEntries), so the follower must take an
// InstallSnapshot.
func TestFollowerFarBehindCatchesUp(t *testing.T) {
	cases := []struct {
		name   string
		behind int
		tweak  func(*Config)
		// snapshot is whether the follower must catch up by snapshot.
		snapshot bool
	}{
		{name: "from log", behind: 10_000},
		{name: "from snapshot", behind: 2*tailEntries + 1000, snapshot: true, tweak: func(conf *Config) {
			conf.SnapshotInterval = 20 * time.Millisecond
			conf.SnapshotThreshold = 500
			conf.TrailingLogs = 100
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOptions{tweak: tc.tweak})
				defer c.close()
				leader := c.leader()
				applyN(t, leader.raft, "before", 10)
				c.waitApplied(10)

				lagging := c.others(leader)[0]
				c.isolate(lagging)
				applyN(t, leader.raft, "during", tc.behind)
				c.waitApplied(10+tc.behind, leader)
				require.Equal(t, 10, lagging.fsm.len(), "isolated follower applied entries it cannot have received")
				if tc.snapshot {
					next := lagging.raft.LastIndex() + 1
					c.waitFor(10*time.Second, fmt.Sprintf("leader to lose entry %d to compaction", next), func() bool {
						_, err := leader.raft.getEntry(next)
						return errors.Is(err, ErrLogNotFound)
					})
				}

				c.fullyConnect()
				c.waitApplied(10+tc.behind, lagging)
				c.requireSameFSMs(leader, lagging)
				require.Equal(t, leader.raft.LastIndex(), lagging.raft.LastIndex(), "last index of the caught-up follower")
				if tc.snapshot {
					snapshotIndex, _ := lagging.raft.getLastSnapshot()
					require.Greater(t, snapshotIndex, uint64(10), "follower caught up without installing a snapshot")
				}
			})
		})
	}
}

// TestConcurrentAppliesAllResolveInLogOrder issues 1,000 Applies from 100
// goroutines at once. Every future must resolve with the FSM's response for
// its own entry (testFSM returns the index), every index must be distinct,
// each goroutine's commands must be in the log in the order it issued them,
// and every FSM must hold the same commands in log order.
func TestConcurrentAppliesAllResolveInLogOrder(t *testing.T) {
	const goroutines, perGoroutine = 100, 10
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("BatchApplyCh=%v", batch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) { conf.BatchApplyCh = batch }})
				defer c.close()
				leader := c.leader()

				futures := make([][]ApplyFuture, goroutines)
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for i := range perGoroutine {
							cmd := []byte(fmt.Sprintf("g%d-%d", g, i))
							futures[g] = append(futures[g], leader.raft.Apply(cmd, 5*time.Second))
						}
					})
				}
				wg.Wait()
				for g := range goroutines {
					for i, f := range futures[g] {
						require.NoError(t, f.Error(), "apply of g%d-%d", g, i)
					}
				}

				// Each future resolved after the leader's FSM applied its
				// entry, so every command is there now.
				indexes, commands := leader.fsm.entries()
				commandAt := func(index uint64) string {
					pos, found := slices.BinarySearch(indexes, index)
					if !found {
						return ""
					}
					return string(commands[pos])
				}
				seen := map[uint64]string{}
				for g := range goroutines {
					var prev uint64
					for i, f := range futures[g] {
						cmd := fmt.Sprintf("g%d-%d", g, i)
						index := f.Index()
						require.Equal(t, index, f.Response(), "response of %s must be the FSM's return value, its index", cmd)
						require.NotContains(t, seen, index, "%s got index %d, already given to %s", cmd, index, seen[index])
						seen[index] = cmd
						require.Greater(t, index, prev, "%s was issued after the previous command of its goroutine but got an earlier index", cmd)
						prev = index
						require.Equal(t, cmd, commandAt(index), "command at index %d in the leader's FSM", index)
					}
				}
				require.Len(t, seen, goroutines*perGoroutine)
				require.Len(t, commands, goroutines*perGoroutine, "leader's FSM applied commands nobody issued")

				c.waitApplied(goroutines * perGoroutine)
				c.requireSameFSMs()
				for _, node := range c.nodes {
					nodeIndexes, _ := node.fsm.entries()
					require.Equal(t, indexes, nodeIndexes, "indexes applied by %s", node.id)
				}
			})
		})
	}
}

// TestAppliedIndexCoversResolvedFutures checks that once an Apply or Barrier
// future resolves, AppliedIndex already includes its entry.
func TestAppliedIndexCoversResolvedFutures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		r := c.leader().raft
		for i := range 50 {
			f := r.Apply([]byte("x"), time.Second)
			require.NoError(t, f.Error())
			require.GreaterOrEqual(t, r.AppliedIndex(), f.Index(), "apply %d", i)
			b := r.Barrier(time.Second)
			require.NoError(t, b.Error())
			require.GreaterOrEqual(t, r.AppliedIndex(), b.(IndexFuture).Index(), "barrier %d", i)
		}
	})
}
