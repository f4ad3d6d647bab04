//go:build go1.25

package raft

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	f := r.Snapshot()
	require.NoError(t, f.Error())
	meta, rc, err := f.Open()
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	return meta
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

		// Compaction drops the entries from the leader's in-memory tail as
		// well as from its store, so a few hundred missed entries (far
		// fewer than the tail holds) already need a snapshot.
		const missed = 300
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
		transports.waitInstalled(c, lagging, "the follower caught up without an InstallSnapshot")
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

// diskHistory is what a diskNode went through before it stopped: two
// snapshots on disk and the commands it applied.
type diskHistory struct {
	node         *diskNode
	older, newer *SnapshotMeta
	indexes      []uint64
	commands     [][]byte
	afterOlder   int // commands applied after the older snapshot
}

// runDiskHistory starts a single-voter node on disk, applies 10 commands,
// snapshots, applies 10 more, snapshots again, applies 5, and stops it.
func runDiskHistory(t *testing.T, tweak func(*Config)) *diskHistory {
	t.Helper()
	node := newDiskNode(t, t.TempDir(), func(conf *Config) {
		snapshotOnlyOnRequest(conf)
		if tweak != nil {
			tweak(conf)
		}
	})
	fsm := newCountingFSM()
	require.NoError(t, node.start(fsm))
	node.waitLeader()
	h := &diskHistory{node: node, afterOlder: 15}
	applyN(t, node.raft, "a", 10)
	h.older = userSnapshotMeta(t, node.raft)
	applyN(t, node.raft, "b", 10)
	h.newer = userSnapshotMeta(t, node.raft)
	applyN(t, node.raft, "c", 5)
	h.indexes, h.commands = fsm.entries()
	require.Len(t, h.commands, 25)
	node.stop()
	return h
}

// snapshotDir returns the directory of a stored snapshot.
func (h *diskHistory) snapshotDir(meta *SnapshotMeta) string {
	return filepath.Join(h.node.snapDir, fileSnapshotDirName, meta.ID)
}

// snapshotDamage is one way a stored snapshot gets damaged on disk.
type snapshotDamage struct {
	name   string
	damage func(t *testing.T, dir string)
	// wantErr is in the error Open returns; "" when List skips the
	// snapshot altogether.
	wantErr string
}

var snapshotDamages = []snapshotDamage{
	{
		name: "flipped byte in state.bin",
		damage: func(t *testing.T, dir string) {
			name := filepath.Join(dir, fileSnapshotStateFile)
			data, err := os.ReadFile(name)
			require.NoError(t, err)
			data[len(data)/2] ^= 0x40
			require.NoError(t, os.WriteFile(name, data, 0o644))
		},
		wantErr: "CRC mismatch",
	},
	{
		name: "truncated state.bin",
		damage: func(t *testing.T, dir string) {
			name := filepath.Join(dir, fileSnapshotStateFile)
			info, err := os.Stat(name)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(name, info.Size()/2))
		},
		wantErr: "truncated",
	},
	{
		name: "meta.json not JSON",
		damage: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, fileSnapshotMetaFile), []byte(`{"Version":1,"ID":`), 0o644))
		},
	},
}

func TestStartupFallsBackToOlderSnapshotWhenNewestIsCorrupt(t *testing.T) {
	type fallbackCase struct {
		name string
		// damage spoils the newer snapshot on disk, if set.
		damage *snapshotDamage
		// refusals is how many restores the FSM refuses.
		refusals int64
		// wantRestores is how many times the FSM is asked to restore.
		wantRestores int64
	}
	var cases []fallbackCase
	for i := range snapshotDamages {
		// A damaged file never reaches the FSM: Open or List rejects it.
		cases = append(cases, fallbackCase{name: snapshotDamages[i].name, damage: &snapshotDamages[i], wantRestores: 1})
	}
	cases = append(cases, fallbackCase{name: "FSM refuses the newest", refusals: 1, wantRestores: 2})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := runDiskHistory(t, nil)
				if tc.damage != nil {
					dir := h.snapshotDir(h.newer)
					tc.damage.damage(t, dir)
					if tc.damage.wantErr != "" {
						_, _, err := h.node.snapshots().Open(h.newer.ID)
						require.ErrorContains(t, err, tc.damage.wantErr)
					}
				}

				fsm := newCountingFSM()
				fsm.failNextRestores(tc.refusals)
				require.NoError(t, h.node.start(fsm), "the older snapshot restores, so startup must succeed")
				defer h.node.stop()
				require.Equal(t, tc.wantRestores, fsm.restores.Load())
				indexes, commands := fsm.entries()
				wantIndexes, wantCommands := entriesUpTo(h.indexes, h.commands, h.older.Index)
				require.Equal(t, wantIndexes, indexes, "right after startup the FSM holds exactly the older snapshot")
				require.Equal(t, wantCommands, commands)

				// The log still holds everything after the older snapshot:
				// replaying it brings back every command.
				h.node.waitLeader()
				(&testCluster{t: t}).waitFor(10*time.Second, "all 25 commands applied", func() bool { return fsm.len() == 25 })
				indexes, commands = fsm.entries()
				require.Equal(t, h.indexes, indexes)
				require.Equal(t, h.commands, commands)
				require.Equal(t, int64(h.afterOlder), fsm.applies.Load(), "only entries after the older snapshot are replayed")
			})
		})
	}
}

func TestStartupFailsClearlyWhenNoSnapshotRestores(t *testing.T) {
	cases := []struct {
		name         string
		damage       func(t *testing.T, h *diskHistory)
		refusals     int64
		wantErr      string
		wantErrIs    error
		wantRestores int64
	}{
		{
			name: "both state.bin files corrupt",
			damage: func(t *testing.T, h *diskHistory) {
				snapshotDamages[0].damage(t, h.snapshotDir(h.older))
				snapshotDamages[0].damage(t, h.snapshotDir(h.newer))
			},
			wantErr: "CRC mismatch",
		},
		{
			name: "FSM refuses both",
			damage: func(*testing.T, *diskHistory) {
			},
			refusals:     2,
			wantErrIs:    errRestoreRefused,
			wantRestores: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := runDiskHistory(t, nil)
				tc.damage(t, h)
				fsm := newCountingFSM()
				fsm.failNextRestores(tc.refusals)
				err := h.node.start(fsm)
				require.ErrorContains(t, err, "failed to load any existing snapshots")
				if tc.wantErr != "" {
					require.ErrorContains(t, err, tc.wantErr)
				}
				if tc.wantErrIs != nil {
					require.ErrorIs(t, err, tc.wantErrIs)
				}
				require.Equal(t, tc.wantRestores, fsm.restores.Load())
				require.Zero(t, fsm.len(), "the FSM must hold nothing after a failed startup")
			})
		})
	}
}

// TestStartupRefusesToRestoreWithAGapBeforeTheLog: when the snapshot that
// restores ends before the first entry the log still holds (the newer
// snapshot, which covered the compacted entries, is damaged), the entries in
// between are lost. Starting would leave the FSM stuck below them, or apply
// later entries without them; NewRaft must refuse with a clear error.
func TestStartupRefusesToRestoreWithAGapBeforeTheLog(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, h *diskHistory)
		// olderRestores is whether the older snapshot still restores.
		olderRestores bool
	}{
		{
			name: "newest state.bin corrupt, older snapshot ends before the log",
			damage: func(t *testing.T, h *diskHistory) {
				snapshotDamages[0].damage(t, h.snapshotDir(h.newer))
			},
			olderRestores: true,
		},
		{
			name: "every meta.json unreadable, log compacted",
			damage: func(t *testing.T, h *diskHistory) {
				snapshotDamages[2].damage(t, h.snapshotDir(h.older))
				snapshotDamages[2].damage(t, h.snapshotDir(h.newer))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := runDiskHistory(t, func(conf *Config) { conf.TrailingLogs = 2 })
				first, err := h.node.store.FirstIndex()
				require.NoError(t, err)
				require.Greater(t, first, h.older.Index+1, "the test needs the log compacted past the older snapshot")
				tc.damage(t, h)

				var restorable uint64
				if tc.olderRestores {
					restorable = h.older.Index
				}
				fsm := newCountingFSM()
				err = h.node.start(fsm)
				if err == nil {
					defer h.node.stop()
				}
				require.Error(t, err, "NewRaft started although entries %d to %d are in no snapshot and not in the log",
					restorable+1, first-1)
			})
		})
	}
}

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

func TestSnapshotsTakenDuringAppliesHoldExactlyTheEntriesUpToTheirIndex(t *testing.T) {
	const goroutines, perGoroutine = 10, 100
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

		type taken struct {
			index    uint64
			indexes  []uint64
			commands [][]byte
		}
		var snapshots []taken
		done := make(chan struct{})
		snapshotterDone := make(chan struct{})
		go func() {
			defer close(snapshotterDone)
			for {
				select {
				case <-done:
					return
				default:
				}
				f := leader.raft.Snapshot()
				if err := f.Error(); err != nil {
					t.Errorf("snapshot during applies: %v", err)
					return
				}
				meta, rc, err := f.Open()
				if err != nil {
					t.Errorf("open snapshot %d: %v", len(snapshots), err)
					return
				}
				// Decoded here, not with require: this is not the test's
				// goroutine.
				var contents testFSM
				if err := contents.Restore(rc); err != nil {
					t.Errorf("decode snapshot at index %d: %v", meta.Index, err)
					return
				}
				indexes, commands := contents.entries()
				snapshots = append(snapshots, taken{meta.Index, indexes, commands})
			}
		}()

		var wg sync.WaitGroup
		futures := make([][]ApplyFuture, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				for i := range perGoroutine {
					futures[g] = append(futures[g], leader.raft.Apply([]byte(fmt.Sprintf("g%d-%d", g, i)), 5*time.Second))
				}
			})
		}
		wg.Wait()
		for g := range goroutines {
			for i, f := range futures[g] {
				require.NoError(t, f.Error(), "apply g%d-%d", g, i)
			}
		}
		close(done)
		<-snapshotterDone
		finalIndex := leader.raft.LastIndex()

		indexes, commands := leader.fsm.entries()
		require.Len(t, commands, 10+goroutines*perGoroutine)
		midway := 0
		for i, snap := range snapshots {
			wantIndexes, wantCommands := entriesUpTo(indexes, commands, snap.index)
			require.Equal(t, wantIndexes, snap.indexes, "snapshot %d at index %d", i, snap.index)
			require.Equal(t, wantCommands, snap.commands, "snapshot %d at index %d", i, snap.index)
			if snap.index > startIndex && snap.index < finalIndex {
				midway++
			}
		}
		t.Logf("%d snapshots, %d taken while applies were in flight", len(snapshots), midway)
		require.GreaterOrEqual(t, midway, 2, "too few snapshots fell between the first and the last apply")
		c.waitApplied(10 + goroutines*perGoroutine)
		c.requireSameFSMs()
	})
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
				restarts++
			case 1:
				node := c.nodes[rng.IntN(len(c.nodes))]
				c.shutdownNode(node)
				c.restartNode(node)
				restarts++
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
		}

		randomInstalls := transports.installsTo("")

		// Finale, so that every run installs a snapshot: cut one follower
		// off, restart the other two (a restarted node's in-memory tail
		// starts empty, so only its compacted log store has the entries the
		// follower lacks), write, and heal.
		c.fullyConnect()
		leader := settledLeader(c)
		lagging := c.others(leader)[0]
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
