package raft

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Snapshot, compaction, InstallSnapshot and restore tests on whole nodes.
// They run in virtual time (testing/synctest), except that the tests whose
// snapshots live in a FileSnapshotStore also touch the real disk; none of
// them depends on how long a disk write takes.

// snapshotOften makes every node snapshot every few tens of milliseconds
// once 100 entries are appended, keeping 50 behind.
func snapshotOften(conf *Config) {
	conf.SnapshotInterval = 20 * time.Millisecond
	conf.SnapshotThreshold = 100
	conf.TrailingLogs = 50
}

// snapshotOnlyOnRequest turns automatic snapshots off: only Snapshot()
// takes one.
func snapshotOnlyOnRequest(conf *Config) {
	conf.SnapshotThreshold = 1 << 62
}

// requireUserSnapshot takes a snapshot on r and returns its index.
func requireUserSnapshot(t testing.TB, r *Raft) uint64 {
	t.Helper()
	f := r.Snapshot()
	require.NoError(t, f.Error())
	meta, rc, err := f.Open()
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	return meta.Index
}

func TestLaggingFollowerCatchesUpByInstallSnapshotAfterCompaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		transports := newSnapshotTransports()
		c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOften, wrapTransport: transports.wrap})
		defer c.close()
		leader := c.leader()
		lagging := c.others(leader)[0]
		// Restart the follower on an FSM that counts restores.
		fsm := restartCounting(c, lagging)
		leader = c.leader()
		applyN(t, leader.raft, "before", 20)
		c.waitApplied(20)
		require.Zero(t, fsm.restores.Load(), "no snapshot existed when the follower restarted")

		// The leader serves recent entries from its in-memory tail even
		// after compacting them, so the follower must miss more than the
		// tail can hold (up to 2*tailEntries) to need a snapshot.
		const missed = 2*tailEntries + 1000
		c.isolate(lagging)
		applyN(t, leader.raft, "during", missed)
		c.waitApplied(20+missed, leader)
		next := lagging.raft.LastIndex() + 1
		c.waitFor(10*time.Second, fmt.Sprintf("the leader to compact away entry %d", next), func() bool {
			_, err := leader.raft.getEntry(next)
			return errors.Is(err, ErrLogNotFound)
		})
		require.Equal(t, 20, lagging.fsm.len(), "an isolated follower applied entries it cannot have received")

		c.fullyConnect()
		c.waitApplied(20+missed, lagging)
		c.requireSameFSMs(leader, lagging)
		require.Positive(t, transports.installsTo(lagging.addr), "the follower caught up without an InstallSnapshot")
		require.Positive(t, fsm.restores.Load(), "the follower's FSM was never restored from the installed snapshot")
		snapshotIndex, _ := lagging.raft.getLastSnapshot()
		require.GreaterOrEqual(t, snapshotIndex, next, "the follower's last snapshot must cover the entries it missed")
		// Entries after the snapshot arrive by AppendEntries: the FSM applied
		// only those, not the ones the snapshot brought.
		require.Less(t, fsm.applies.Load(), int64(missed), "the follower applied one by one entries its snapshot held")
	})
}

func TestRestartRestoresNewestSnapshotAndReplaysOnlyLaterEntries(t *testing.T) {
	cases := []struct {
		name  string
		nodes int
		// restartLeader restarts the leader, otherwise a follower.
		restartLeader bool
		noRestore     bool
	}{
		{name: "single voter", nodes: 1, restartLeader: true},
		{name: "follower of three", nodes: 3},
		// NoSnapshotRestoreOnStart: the FSM is not given the snapshot (it
		// is expected to keep its own state) but replay still starts after
		// the snapshot's index.
		{name: "follower of three with NoSnapshotRestoreOnStart", nodes: 3, noRestore: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, tc.nodes, clusterOptions{tweak: func(conf *Config) {
					snapshotOnlyOnRequest(conf)
					conf.NoSnapshotRestoreOnStart = tc.noRestore
				}})
				defer c.close()
				leader := c.leader()
				node := leader
				if !tc.restartLeader {
					node = c.others(leader)[0]
				}
				applyN(t, leader.raft, "a", 30)
				c.waitApplied(30)
				requireUserSnapshot(t, node.raft)
				applyN(t, leader.raft, "b", 20)
				c.waitApplied(50)
				snapshotIndex := requireUserSnapshot(t, node.raft)
				applyN(t, leader.raft, "c", 15)
				c.waitApplied(65)
				wantIndexes, wantCommands := node.fsm.entries()
				_, inSnapshot := entriesUpTo(wantIndexes, wantCommands, snapshotIndex)
				require.Len(t, inSnapshot, 50, "the newest snapshot holds the first 50 commands")

				fsm := restartCounting(c, node)
				if tc.noRestore {
					c.waitFor(10*time.Second, "the 15 later commands replayed", func() bool { return fsm.applies.Load() >= 15 })
					require.Zero(t, fsm.restores.Load(), "NoSnapshotRestoreOnStart must not restore the FSM")
					indexes, commands := node.fsm.entries()
					require.Equal(t, wantIndexes[50:], indexes, "replay must start right after the snapshot")
					require.Equal(t, wantCommands[50:], commands)
				} else {
					c.waitApplied(65, node)
					require.Equal(t, int64(1), fsm.restores.Load(), "the FSM restores exactly one snapshot")
					indexes, commands := node.fsm.entries()
					require.Equal(t, wantIndexes, indexes)
					require.Equal(t, wantCommands, commands)
				}
				require.Equal(t, int64(15), fsm.applies.Load(), "only entries after the snapshot are replayed")

				// The node keeps working: a new command reaches it.
				applyN(t, c.leader().raft, "d", 1)
				c.waitFor(10*time.Second, "the new command applied", func() bool { return fsm.applies.Load() == 16 })
			})
		})
	}
}

func TestSnapshotReturnsErrNothingNewToSnapshotUntilSomethingIsApplied(t *testing.T) {
	t.Run("node that never applied anything", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newTestCluster(t, 1, clusterOptions{noBootstrap: true, tweak: snapshotOnlyOnRequest})
			defer c.close()
			require.ErrorIs(t, c.nodes[0].raft.Snapshot().Error(), ErrNothingNewToSnapshot)
		})
	})
	t.Run("follower restarted from a snapshot", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOnlyOnRequest})
			defer c.close()
			leader := c.leader()
			follower := c.others(leader)[0]
			applyN(t, leader.raft, "x", 10)
			c.waitApplied(10)
			requireUserSnapshot(t, follower.raft)

			fsm := restartCounting(c, follower)
			c.waitApplied(10, follower)
			require.Equal(t, int64(1), fsm.restores.Load())
			require.ErrorIs(t, follower.raft.Snapshot().Error(), ErrNothingNewToSnapshot,
				"nothing was applied since the restore")

			applyN(t, leader.raft, "y", 1)
			c.waitApplied(11, follower)
			require.NoError(t, follower.raft.Snapshot().Error(), "a snapshot is possible once an entry is applied")
		})
	})
}

func TestCompactionKeepsTrailingLogs(t *testing.T) {
	const commands = 200
	cases := []struct {
		name     string
		trailing uint64
		// wantKept returns how many entries the log must keep, given its
		// last index.
		wantKept func(last uint64) uint64
	}{
		{name: "keeps the newest TrailingLogs", trailing: 20, wantKept: func(uint64) uint64 { return 20 }},
		{name: "deletes nothing while the log is shorter than TrailingLogs", trailing: 1000, wantKept: func(last uint64) uint64 { return last }},
		{name: "TrailingLogs zero empties the log", trailing: 0, wantKept: func(uint64) uint64 { return 0 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 1, clusterOptions{tweak: func(conf *Config) {
					snapshotOnlyOnRequest(conf)
					conf.TrailingLogs = tc.trailing
				}})
				defer c.close()
				node := c.leader()
				applyN(t, node.raft, "x", commands)
				c.waitApplied(commands)
				last := node.raft.LastIndex()
				require.Equal(t, last, requireUserSnapshot(t, node.raft), "the snapshot covers every applied entry")

				first, err := node.store.FirstIndex()
				require.NoError(t, err)
				storeLast, err := node.store.LastIndex()
				require.NoError(t, err)
				kept := tc.wantKept(last)
				if kept == 0 {
					require.Zero(t, first, "the log store must be empty")
					require.Zero(t, storeLast, "the log store must be empty")
				} else {
					require.Equal(t, last, storeLast, "compaction must never delete the newest entry")
					require.Equal(t, last-kept+1, first, "first index kept with TrailingLogs %d", tc.trailing)
				}
				require.Equal(t, last, node.raft.LastIndex(), "LastIndex counts the snapshot")

				// The node goes on appending and applying after compaction.
				applyN(t, node.raft, "after", 5)
				c.waitApplied(commands + 5)
			})
		})
	}
}

func TestAutomaticSnapshotsKeepTrailingLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOften})
		defer c.close()
		leader := c.leader()
		for round := range 10 {
			applyN(t, leader.raft, fmt.Sprintf("r%d", round), 60)
			c.waitApplied(60 * (round + 1))
			for _, node := range c.nodes {
				first, err := node.store.FirstIndex()
				require.NoError(t, err)
				last, err := node.store.LastIndex()
				require.NoError(t, err)
				require.GreaterOrEqual(t, last-first+1, node.conf.TrailingLogs,
					"%s kept [%d, %d], fewer than TrailingLogs entries", node.id, first, last)
			}
		}
		for _, node := range c.nodes {
			first, err := node.store.FirstIndex()
			require.NoError(t, err)
			require.Greater(t, first, uint64(1), "%s never compacted its log", node.id)
		}
		c.requireSameFSMs()
	})
}

// TestInstallSnapshotTrimsLogAndEmptiesMonotonicStore makes the leader
// send a snapshot to a follower that already holds the snapshot's last
// entry: the follower has every entry, then a stale rejection claiming an
// almost empty log sends the leader back to an index it compacted away.
// §7: the follower keeps what follows the snapshot (compacted to
// TrailingLogs); a MonotonicLogStore cannot keep a tail that way, so it is
// emptied.
func TestInstallSnapshotTrimsLogAndEmptiesMonotonicStore(t *testing.T) {
	// More than the leader's in-memory tail holds, so entry 2 is gone.
	const commands = 2*tailEntries + 1000
	for _, monotonic := range []bool{false, true} {
		t.Run(fmt.Sprintf("monotonic=%v", monotonic), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				transports := newSnapshotTransports()
				opts := clusterOptions{
					tweak: func(conf *Config) {
						snapshotOnlyOnRequest(conf)
						conf.TrailingLogs = 10
					},
					wrapTransport: transports.wrap,
				}
				if monotonic {
					opts.wrapStore = func(node *testNode) raftStore { return monotonicStore{node.store} }
				}
				c := newTestCluster(t, 3, opts)
				defer c.close()
				leader := c.leader()
				follower := c.others(leader)[0]
				applyN(t, leader.raft, "x", commands)
				c.waitApplied(commands)
				last := leader.raft.LastIndex()
				c.waitFor(10*time.Second, "the follower to store every entry", func() bool {
					l, err := follower.store.LastIndex()
					return err == nil && l == last
				})
				require.Equal(t, last, requireUserSnapshot(t, leader.raft))

				type logBounds struct{ first, last uint64 }
				boundsCh := make(chan logBounds, 1)
				leaderTrans := transports.of(leader)
				leaderTrans.setAfterInstall(func(target ServerAddress, req *InstallSnapshotRequest) {
					if target != follower.addr {
						return
					}
					first, err1 := follower.store.FirstIndex()
					l, err2 := follower.store.LastIndex()
					if err1 != nil || err2 != nil {
						first, l = 1<<63, 1<<63
					}
					select {
					case boundsCh <- logBounds{first, l}:
					default:
					}
				})
				leaderTrans.rejectNext(follower.addr, 1)
				applyN(t, leader.raft, "after", 1)

				var bounds logBounds
				select {
				case bounds = <-boundsCh:
				case <-time.After(30 * time.Second):
					t.Fatal("the leader never installed a snapshot on the follower")
				}
				if monotonic {
					require.Equal(t, logBounds{0, 0}, bounds, "a MonotonicLogStore must be emptied after InstallSnapshot")
				} else {
					require.Equal(t, logBounds{last - 10 + 1, last}, bounds,
						"a follower holding the snapshot's last entry keeps TrailingLogs entries up to it")
				}
				c.waitApplied(commands + 1)
				c.requireSameFSMs()
			})
		})
	}
}
