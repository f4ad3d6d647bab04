//go:build go1.25

package raft

import (
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Startup from snapshots on disk: a node restarts after its newest snapshot
// was damaged, after every snapshot was, or with a gap between its snapshot
// and its log. These tests run in virtual time but keep their snapshots in a
// FileSnapshotStore on the real disk; none depends on how long a write takes.

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
