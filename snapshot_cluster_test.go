//go:build go1.25

package raft

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
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
	return userSnapshotMeta(t, r).Index
}

// userSnapshotMeta takes a snapshot on r and returns its metadata.
func userSnapshotMeta(t testing.TB, r *Raft) *SnapshotMeta {
	t.Helper()
	meta, rc := openUserSnapshot(t, r)
	require.NoError(t, rc.Close())
	return meta
}

// openUserSnapshot takes a snapshot on r and opens it.
func openUserSnapshot(t testing.TB, r *Raft) (*SnapshotMeta, io.ReadCloser) {
	t.Helper()
	f := r.Snapshot()
	require.NoError(t, f.Error(), "take a snapshot")
	meta, rc, err := f.Open()
	require.NoError(t, err, "open the snapshot")
	return meta, rc
}

func TestLaggingFollowerCatchesUpByInstallSnapshotAfterCompaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		transports := newSnapshotTransports()
		c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOften, wrapTransport: transports.wrap})
		defer c.close()
		const missed = 300
		leader, lagging, fsm, next := catchUpByInstallSnapshot(t, c, transports, missed)
		c.requireSameFSMs(leader, lagging)
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
				leaderTrans.rejectUntilSnapshot(follower.addr, 1)
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

// TestSnapshotsTakenDuringAppliesHoldExactlyTheEntriesUpToTheirIndex takes
// snapshots while applies from several goroutines are in flight, and checks
// that each holds exactly the entries up to its index. The applies come in
// rounds, and one snapshot is taken in every round once a marker entry of
// that round is applied: the marker follows the previous snapshot in the
// log, so there is always something new to snapshot, and the round's other
// applies go on around it. Every snapshot but the last's is therefore
// strictly between the first and the last apply, whatever order the
// goroutines run in.
func TestSnapshotsTakenDuringAppliesHoldExactlyTheEntriesUpToTheirIndex(t *testing.T) {
	const rounds, goroutines, perGoroutine = 10, 10, 10
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) {
			snapshotOnlyOnRequest(conf)
			// Each snapshot also compacts, under the applies.
			conf.TrailingLogs = 20
		}})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "old", 10)
		startIndex := leader.raft.LastIndex()

		var snapshots []takenSnapshot
		var futures [][]ApplyFuture // by round
		for r := range rounds {
			round := make([][]ApplyFuture, goroutines)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range perGoroutine {
						round[g] = append(round[g], leader.raft.Apply([]byte(fmt.Sprintf("r%d-g%d-%d", r, g, i)), 5*time.Second))
					}
				})
			}
			applyN(t, leader.raft, fmt.Sprintf("marker%d-", r), 1)
			snapshots = append(snapshots, takeSnapshotNow(t, leader.raft))
			wg.Wait()
			futures = append(futures, slices.Concat(round...))
		}
		roundLast := make([]uint64, rounds)
		for r, fs := range futures {
			for i, f := range fs {
				require.NoError(t, f.Error(), "apply %d of round %d", i, r)
				roundLast[r] = max(roundLast[r], f.Index())
			}
		}
		finalIndex := leader.raft.LastIndex()

		indexes, commands := leader.fsm.entries()
		total := 10 + rounds*(goroutines*perGoroutine+1)
		require.Len(t, commands, total)
		midway, cut := 0, 0
		for i, snap := range snapshots {
			wantIndexes, wantCommands := entriesUpTo(indexes, commands, snap.index)
			require.Equal(t, wantIndexes, snap.indexes, "snapshot %d at index %d", i, snap.index)
			require.Equal(t, wantCommands, snap.commands, "snapshot %d at index %d", i, snap.index)
			if snap.index > startIndex && snap.index < finalIndex {
				midway++
			}
			if snap.index < roundLast[i] {
				cut++ // some of the round's applies came after the snapshot
			}
		}
		t.Logf("%d snapshots, %d with applies of their round still to come", len(snapshots), cut)
		require.GreaterOrEqual(t, midway, rounds-1, "a snapshot fell outside the applies")
		c.waitApplied(total)
		c.requireSameFSMs()
	})
}

// takenSnapshot is what a snapshot held, decoded from the store.
type takenSnapshot struct {
	index    uint64
	indexes  []uint64
	commands [][]byte
}

// takeSnapshotNow asks r for a snapshot and decodes what it holds.
func takeSnapshotNow(t *testing.T, r *Raft) takenSnapshot {
	t.Helper()
	meta, rc := openUserSnapshot(t, r)
	var contents testFSM // Restore closes rc
	require.NoError(t, contents.Restore(rc), "decode snapshot at index %d", meta.Index)
	indexes, commands := contents.entries()
	return takenSnapshot{meta.Index, indexes, commands}
}

// TestCrashRestartsWithConstantCompactionKeepEveryAckedWrite is a small,
// seeded crash-restart run: snapshots every 16 entries keeping 4, so every
// restart restores a snapshot and every lagging node needs one, while nodes
// are restarted and cut off under a stream of writes. Every write that was
// acknowledged must end up applied exactly once on every node, and no write
// twice.
func TestCrashRestartsWithConstantCompactionKeepEveryAckedWrite(t *testing.T) {
	seed := testSeed(t)
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		transports := newSnapshotTransports()
		c := newTestCluster(t, 3, clusterOptions{
			tweak: func(conf *Config) {
				conf.SnapshotInterval = 10 * time.Millisecond
				conf.SnapshotThreshold = 16
				conf.TrailingLogs = 4
			},
			wrapTransport: transports.wrap,
		})
		defer c.close()

		acked := map[string]bool{}
		restarts := 0
		for round := range 40 {
			if crashRestartRound(c, rng, round, acked) {
				restarts++
			}
		}
		randomInstalls := transports.installsTo("")

		leader, lagging := cutOffFollowerUntilCompactedPast(c, acked)
		c.fullyConnect()
		leader = settledLeader(c)
		require.NoError(t, leader.raft.Barrier(5*time.Second).Error())
		want := leader.fsm.commands()
		c.waitFor(30*time.Second, "every FSM to match the leader's", func() bool {
			for _, node := range c.nodes {
				if !slices.EqualFunc(node.fsm.commands(), want, bytes.Equal) {
					return false
				}
			}
			return true
		})

		seen := map[string]bool{}
		for _, cmd := range want {
			require.False(t, seen[string(cmd)], "command %s applied twice", cmd)
			seen[string(cmd)] = true
		}
		for cmd := range acked {
			require.True(t, seen[cmd], "acknowledged write %s was lost", cmd)
		}
		t.Logf("%d restarts, %d acknowledged writes of %d applied, %d snapshots installed in the random rounds",
			restarts, len(acked), len(want), randomInstalls)
		transports.waitInstalled(c, lagging, "the cut-off follower caught up without an InstallSnapshot")
		first, err := leader.store.FirstIndex()
		require.NoError(t, err)
		require.Greater(t, first, uint64(1), "the leader never compacted its log")
	})
}

// crashRestartRound writes 5 to 34 commands through the leader and, at a
// random moment while they go in, restarts the leader or a random node,
// isolates a follower, heals, or does nothing. It adds the acknowledged
// commands to acked and reports whether it restarted a node.
func crashRestartRound(c *testCluster, rng *rand.Rand, round int, acked map[string]bool) (restarted bool) {
	leader := c.leader()
	n := 5 + rng.IntN(30)
	commands := make([]string, n)
	futures := make([]ApplyFuture, n)
	issued := make(chan struct{})
	// The writer keeps this Raft even if the node restarts under it.
	r := leader.raft
	go func() {
		defer close(issued)
		for i := range n {
			commands[i] = fmt.Sprintf("r%d-%d", round, i)
			futures[i] = r.Apply([]byte(commands[i]), time.Second)
		}
	}()
	// Act at a random moment while the writes are going in.
	time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
	switch rng.IntN(5) {
	case 0:
		c.shutdownNode(leader)
		c.restartNode(leader)
		restarted = true
	case 1:
		node := c.nodes[rng.IntN(len(c.nodes))]
		c.shutdownNode(node)
		c.restartNode(node)
		restarted = true
	case 2:
		c.fullyConnect()
		others := c.others(leader)
		c.isolate(others[rng.IntN(len(others))])
	case 3:
		c.fullyConnect()
	}
	<-issued
	for i, f := range futures {
		if f.Error() == nil {
			acked[commands[i]] = true
		}
	}
	return restarted
}

// cutOffFollowerUntilCompactedPast makes sure a run installs a snapshot: it
// cuts one follower (lagging) off, restarts the other two (a restarted
// node's in-memory tail starts empty, so only its compacted log store has
// the entries the follower lacks), writes 100 commands, adding the
// acknowledged ones to acked, and waits until the leader has compacted past
// the follower's last entry. The follower stays cut off.
func cutOffFollowerUntilCompactedPast(c *testCluster, acked map[string]bool) (leader, lagging *testNode) {
	c.fullyConnect()
	leader = settledLeader(c)
	lagging = c.others(leader)[0]
	c.isolate(lagging)
	for _, node := range c.nodes {
		if node != lagging {
			c.shutdownNode(node)
			c.restartNode(node)
			c.isolate(lagging)
		}
	}
	laggingLast := lagging.raft.LastIndex()
	leader = c.leader(c.others(lagging)...)
	for i := range 100 {
		cmd := fmt.Sprintf("finale-%d", i)
		if leader.raft.Apply([]byte(cmd), time.Second).Error() == nil {
			acked[cmd] = true
		}
	}
	c.waitFor(10*time.Second, "the leader to compact past the cut-off follower", func() bool {
		first, err := leader.store.FirstIndex()
		return err == nil && first > laggingLast+1
	})
	return leader, lagging
}
