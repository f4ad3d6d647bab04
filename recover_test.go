//go:build go1.25

package raft

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Unit tests of RecoverCluster and the package-level GetConfiguration, on
// stores filled by hand (no running node).

// recoverStores are the stores of one stopped server.
type recoverStores struct {
	conf  *Config
	fsm   *testFSM
	store *InmemStore
	snaps SnapshotStore
	trans *InmemTransport
}

func newRecoverStores(t *testing.T) *recoverStores {
	t.Helper()
	_, trans := NewInmemTransport("addr0")
	return &recoverStores{
		conf:  testConfig("node0"),
		fsm:   &testFSM{},
		store: NewInmemStore(),
		snaps: NewInmemSnapshotStore(),
		trans: trans,
	}
}

// appendCommands stores commands "cmd-<index>" at indexes [from, to] in term.
func (s *recoverStores) appendCommands(t *testing.T, from, to, term uint64) {
	t.Helper()
	for index := from; index <= to; index++ {
		require.NoError(t, s.store.StoreLog(&Log{Index: index, Term: term, Type: LogCommand, Data: []byte(fmt.Sprintf("cmd-%d", index))}))
	}
}

func (s *recoverStores) appendConfiguration(t *testing.T, index, term uint64, configuration Configuration) {
	t.Helper()
	require.NoError(t, s.store.StoreLog(&Log{Index: index, Term: term, Type: LogConfiguration, Data: EncodeConfiguration(configuration)}))
}

// writeSnapshot stores a snapshot at index and term of an FSM that applied
// commands "cmd-<i>" for i in [1, index].
func writeSnapshot(t *testing.T, snaps SnapshotStore, trans Transport, index, term uint64, configuration Configuration) {
	t.Helper()
	fsm := &testFSM{}
	for i := uint64(1); i <= index; i++ {
		fsm.Apply(&Log{Index: i, Type: LogCommand, Data: []byte(fmt.Sprintf("cmd-%d", i))})
	}
	sink, err := snaps.Create(SnapshotVersionMax, index, term, configuration, 1, trans)
	require.NoError(t, err)
	snap, err := fsm.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(sink))
}

// expectedCommands lists "cmd-<i>" for i in [1, n].
func expectedCommands(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("cmd-%d", i+1))
	}
	return out
}

// logContents lists the log's entries, for checking a store was not touched.
func logContents(t *testing.T, store LogStore) []Log {
	t.Helper()
	first, err := store.FirstIndex()
	require.NoError(t, err)
	last, err := store.LastIndex()
	require.NoError(t, err)
	var out []Log
	for index := first; index > 0 && index <= last; index++ {
		var entry Log
		require.NoError(t, store.GetLog(index, &entry))
		out = append(out, entry)
	}
	return out
}

func threeVoters() Configuration {
	return Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "node0", Address: "addr0"},
		{Suffrage: Voter, ID: "node1", Address: "addr1"},
		{Suffrage: Voter, ID: "node2", Address: "addr2"},
	}}
}

func survivorOnly() Configuration {
	return Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: "addr0"}}}
}

// recoverArgs are RecoverCluster's arguments, for table tests that spoil
// one of them.
type recoverArgs struct {
	conf          *Config
	fsm           FSM
	logs          LogStore
	stable        StableStore
	snaps         SnapshotStore
	trans         Transport
	configuration Configuration
}

func (a recoverArgs) recover() error {
	return RecoverCluster(a.conf, a.fsm, a.logs, a.stable, a.snaps, a.trans, a.configuration)
}

func TestRecoverClusterRefusesBadInputAndLeavesStoresAlone(t *testing.T) {
	cases := []struct {
		name    string
		spoil   func(a *recoverArgs)
		wantErr string // empty: any error
	}{
		{"nil config", func(a *recoverArgs) { a.conf = nil }, ""},
		{"invalid config", func(a *recoverArgs) { a.conf = testConfig("") }, "LocalID cannot be empty"},
		{"nil fsm", func(a *recoverArgs) { a.fsm = nil }, ""},
		{"nil log store", func(a *recoverArgs) { a.logs = nil }, ""},
		{"nil stable store", func(a *recoverArgs) { a.stable = nil }, ""},
		{"nil snapshot store", func(a *recoverArgs) { a.snaps = nil }, ""},
		{"nil transport", func(a *recoverArgs) { a.trans = nil }, ""},
		{"empty configuration", func(a *recoverArgs) { a.configuration = Configuration{} },
			"need at least one voter in configuration: {[]}"},
		{"duplicate ID", func(a *recoverArgs) {
			a.configuration.Servers = append(a.configuration.Servers, Server{Suffrage: Voter, ID: "node0", Address: "addr9"})
		}, "found duplicate ID in configuration: node0"},
		{"empty address", func(a *recoverArgs) {
			a.configuration.Servers = append(a.configuration.Servers, Server{Suffrage: Voter, ID: "node9"})
		}, "empty address in configuration: {Voter node9 }"},
		{"no voter", func(a *recoverArgs) {
			a.configuration.Servers = []Server{{Suffrage: Nonvoter, ID: "node0", Address: "addr0"}}
		}, "need at least one voter in configuration: {[{Nonvoter node0 addr0}]}"},
		{"no existing state", func(a *recoverArgs) {
			empty := NewInmemStore()
			a.logs, a.stable, a.snaps = empty, empty, NewInmemSnapshotStore()
		}, "refused to recover cluster with no initial state, this is probably an operator error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRecoverStores(t)
			s.appendConfiguration(t, 1, 1, threeVoters())
			s.appendCommands(t, 2, 4, 1)
			before := logContents(t, s.store)
			args := recoverArgs{conf: s.conf, fsm: s.fsm, logs: s.store, stable: s.store,
				snaps: s.snaps, trans: s.trans, configuration: survivorOnly()}
			tc.spoil(&args)

			var err error
			require.NotPanics(t, func() { err = args.recover() })
			require.Error(t, err)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
			}
			require.Equal(t, before, logContents(t, s.store), "a refused recovery changed the log")
			list, err := s.snaps.List()
			require.NoError(t, err)
			require.Empty(t, list, "a refused recovery wrote a snapshot")
			require.Zero(t, s.fsm.len(), "a refused recovery applied entries")
		})
	}
}

func TestRecoverClusterKeepsEveryEntryInOneSnapshot(t *testing.T) {
	s := newRecoverStores(t)
	writeSnapshot(t, s.snaps, s.trans, 5, 1, threeVoters())
	// The log overlaps the snapshot, holds a configuration change, and
	// entries never known to be committed: all are kept.
	s.appendCommands(t, 3, 5, 1)
	s.appendConfiguration(t, 6, 2, threeVoters())
	s.appendCommands(t, 7, 10, 2)

	require.NoError(t, RecoverCluster(s.conf, s.fsm, s.store, s.store, s.snaps, s.trans, survivorOnly()))

	want := append(expectedCommands(5), expectedCommands(10)[6:]...)
	require.Equal(t, want, s.fsm.commands(), "the FSM given to RecoverCluster holds snapshot and log")

	list, err := s.snaps.List()
	require.NoError(t, err)
	require.NotEmpty(t, list)
	meta := list[0]
	require.Equal(t, uint64(10), meta.Index, "snapshot at the last entry")
	require.Equal(t, uint64(2), meta.Term, "snapshot in the last entry's term")
	require.Equal(t, survivorOnly(), meta.Configuration)
	require.Equal(t, uint64(1), meta.ConfigurationIndex)
	require.Empty(t, logContents(t, s.store), "the log is replaced by the snapshot")

	_, source, err := s.snaps.Open(meta.ID)
	require.NoError(t, err)
	restored := &testFSM{}
	require.NoError(t, restored.Restore(source))
	require.Equal(t, want, restored.commands(), "the recovery snapshot holds every entry")

	got, err := GetConfiguration(s.conf, &testFSM{}, s.store, s.store, s.snaps, s.trans)
	require.NoError(t, err)
	require.Equal(t, survivorOnly(), got)
}

// newFileSnapshots returns a FileSnapshotStore in a temporary directory
// (real disk, no timing involved) with snapshots at the given indexes, all
// in term 1, and its base directory.
func newFileSnapshots(t *testing.T, trans Transport, indexes ...uint64) (*FileSnapshotStore, string) {
	t.Helper()
	dir := t.TempDir()
	snaps, err := NewFileSnapshotStoreWithLogger(dir, len(indexes)+1, testLogger("snapshots"))
	require.NoError(t, err)
	for _, index := range indexes {
		writeSnapshot(t, snaps, trans, index, 1, threeVoters())
	}
	return snaps, dir
}

// corruptSnapshot flips a byte of the stored FSM data of snapshot index.
func corruptSnapshot(t *testing.T, snaps *FileSnapshotStore, dir string, index uint64) {
	t.Helper()
	list, err := snaps.List()
	require.NoError(t, err)
	for _, meta := range list {
		if meta.Index != index {
			continue
		}
		path := filepath.Join(dir, "snapshots", meta.ID, "state.bin")
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NotEmpty(t, data)
		data[len(data)-1] ^= 0xff
		require.NoError(t, os.WriteFile(path, data, 0o644))
		return
	}
	t.Fatalf("no snapshot at index %d", index)
}

func TestRecoverClusterFallsBackToAnOlderSnapshotOnlyWhenTheLogCoversTheGap(t *testing.T) {
	cases := []struct {
		name     string
		logFrom  uint64
		wantErr  string
		wantCmds int
	}{
		{"log covers the gap", 4, "", 8},
		{"log starts after the gap", 6, "raft: recover: log starts at 6 but the newest snapshot ends at 3; entries in between are missing", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRecoverStores(t)
			snaps, dir := newFileSnapshots(t, s.trans, 3, 5)
			corruptSnapshot(t, snaps, dir, 5)
			s.appendCommands(t, tc.logFrom, 8, 1)
			before := logContents(t, s.store)

			err := RecoverCluster(s.conf, s.fsm, s.store, s.store, snaps, s.trans, survivorOnly())
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
				require.Equal(t, before, logContents(t, s.store), "a refused recovery changed the log")
				return
			}
			require.NoError(t, err)
			require.Equal(t, expectedCommands(tc.wantCmds), s.fsm.commands())
			list, err := snaps.List()
			require.NoError(t, err)
			require.Equal(t, uint64(8), list[0].Index)
			require.Empty(t, logContents(t, s.store))
		})
	}
}

func TestRecoverClusterFailsWhenNoSnapshotRestores(t *testing.T) {
	s := newRecoverStores(t)
	snaps, dir := newFileSnapshots(t, s.trans, 5)
	corruptSnapshot(t, snaps, dir, 5)
	s.appendCommands(t, 4, 8, 1)
	before := logContents(t, s.store)

	err := RecoverCluster(s.conf, s.fsm, s.store, s.store, snaps, s.trans, survivorOnly())
	require.ErrorContains(t, err, "failed to restore any of 1 snapshots")
	require.Equal(t, before, logContents(t, s.store))
}

// failingSnapshotFSM is a testFSM whose snapshots cannot be taken or written.
type failingSnapshotFSM struct {
	testFSM
	snapshotErr error
	persistErr  error
}

func (f *failingSnapshotFSM) Snapshot() (FSMSnapshot, error) {
	if f.snapshotErr != nil {
		return nil, f.snapshotErr
	}
	return failingPersist{err: f.persistErr}, nil
}

type failingPersist struct{ err error }

func (p failingPersist) Persist(sink SnapshotSink) error {
	_ = sink.Cancel()
	return p.err
}

func (p failingPersist) Release() {}

func TestRecoverClusterKeepsTheLogWhenTheSnapshotFails(t *testing.T) {
	cases := []struct {
		name    string
		fsm     *failingSnapshotFSM
		wantErr string
	}{
		{"snapshot", &failingSnapshotFSM{snapshotErr: errInjected}, "failed to snapshot FSM: injected store failure"},
		{"persist", &failingSnapshotFSM{persistErr: errInjected}, "failed to persist snapshot: injected store failure"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRecoverStores(t)
			s.appendConfiguration(t, 1, 1, threeVoters())
			s.appendCommands(t, 2, 6, 1)
			before := logContents(t, s.store)
			err := RecoverCluster(s.conf, tc.fsm, s.store, s.store, s.snaps, s.trans, survivorOnly())
			require.EqualError(t, err, tc.wantErr)
			require.Equal(t, before, logContents(t, s.store), "the log went although no snapshot holds it")
		})
	}
}

func TestRecoverClusterWithOnlyATermStartsTheLogWithTheConfiguration(t *testing.T) {
	s := newRecoverStores(t)
	require.NoError(t, s.store.SetUint64(keyCurrentTerm, 4))
	require.NoError(t, RecoverCluster(s.conf, s.fsm, s.store, s.store, s.snaps, s.trans, survivorOnly()))
	entries := logContents(t, s.store)
	require.Len(t, entries, 1)
	require.Equal(t, uint64(1), entries[0].Index)
	require.Equal(t, uint64(4), entries[0].Term)
	require.Equal(t, LogConfiguration, entries[0].Type)
	require.Equal(t, survivorOnly(), DecodeConfiguration(entries[0].Data))
}

func TestGetConfigurationReadsTheLatestConfigurationAndLeavesConfigAlone(t *testing.T) {
	s := newRecoverStores(t)
	s.conf = testConfig("node0")
	s.appendConfiguration(t, 1, 1, survivorOnly())
	s.appendCommands(t, 2, 3, 1)
	s.appendConfiguration(t, 4, 1, threeVoters())
	before := *s.conf

	got, err := GetConfiguration(s.conf, s.fsm, s.store, s.store, s.snaps, s.trans)
	require.NoError(t, err)
	require.Equal(t, threeVoters(), got, "the latest configuration, committed or not")
	require.Equal(t, before, *s.conf, "GetConfiguration modified the caller's config")
}

func TestGetConfigurationRefusesBadInput(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(a *recoverArgs)
	}{
		{"nil config", func(a *recoverArgs) { a.conf = nil }},
		{"invalid config", func(a *recoverArgs) { a.conf = testConfig("") }},
		{"nil fsm", func(a *recoverArgs) { a.fsm = nil }},
		{"nil log store", func(a *recoverArgs) { a.logs = nil }},
		{"nil stable store", func(a *recoverArgs) { a.stable = nil }},
		{"nil snapshot store", func(a *recoverArgs) { a.snaps = nil }},
		{"nil transport", func(a *recoverArgs) { a.trans = nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRecoverStores(t)
			s.appendConfiguration(t, 1, 1, survivorOnly())
			args := recoverArgs{conf: s.conf, fsm: s.fsm, logs: s.store, stable: s.store, snaps: s.snaps, trans: s.trans}
			tc.spoil(&args)
			var err error
			require.NotPanics(t, func() {
				_, err = GetConfiguration(args.conf, args.fsm, args.logs, args.stable, args.snaps, args.trans)
			})
			require.Error(t, err)
		})
	}
}

func TestNewRaftStartsAfterGetConfigurationWithTheSameConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRecoverStores(t)
		require.NoError(t, BootstrapCluster(s.conf, s.store, s.store, s.snaps, s.trans, survivorOnly()))
		_, err := GetConfiguration(s.conf, &testFSM{}, s.store, s.store, s.snaps, s.trans)
		require.NoError(t, err)

		r, err := NewRaft(s.conf, s.fsm, s.store, s.store, s.snaps, s.trans)
		require.NoError(t, err)
		defer func() { require.NoError(t, r.Shutdown().Error()) }()
		// A node that did not start would stay a follower forever.
		deadline := time.Now().Add(5 * time.Second)
		for r.State() != Leader {
			require.True(t, time.Now().Before(deadline), "the single voter never became leader")
			time.Sleep(time.Millisecond)
		}
		require.NoError(t, r.Apply([]byte("x"), time.Second).Error())
	})
}

// TestRecoveredSurvivorOfThreeElectsItselfAndKeepsEveryCommittedEntry loses
// two of three nodes for good, recovers the third from a peers.json that
// lists only it, and checks it leads alone with every acknowledged write.
func TestRecoveredSurvivorOfThreeElectsItselfAndKeepsEveryCommittedEntry(t *testing.T) {
	// Real file, written before the bubble starts.
	peersPath := filepath.Join(t.TempDir(), "peers.json")
	require.NoError(t, os.WriteFile(peersPath, []byte(`[{"id":"node2","address":"addr2","non_voter":false}]`), 0o644))

	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		load := startLoad(c, "w", 3, c.nodes...)
		load.waitAcked(200)
		acked := load.halt()
		survivor := c.nodes[2]
		c.waitApplied(len(acked), survivor)

		// Two nodes are gone for good; the survivor is stopped for repair.
		for _, node := range c.nodes {
			c.shutdownNode(node)
		}
		lastIndex := survivor.raft.LastIndex()
		require.Positive(t, leader.raft.CommitIndex())

		configuration, err := ReadConfigJSON(peersPath)
		require.NoError(t, err)
		_, trans := NewInmemTransport(survivor.addr)
		require.NoError(t, RecoverCluster(survivor.conf, &testFSM{}, survivor.store, survivor.store,
			survivor.snaps, trans, configuration))

		c.restartNode(survivor)
		c.waitFor(5*time.Second, "the survivor to elect itself", func() bool {
			return survivor.raft.State() == Leader
		})
		require.Equal(t, configuration, survivor.raft.GetConfiguration().Configuration())
		c.requireAckedEverywhere(acked, survivor)

		// It goes on where the old log ended: its first entry as leader
		// (the no-op) follows the recovery snapshot. (Checked before any
		// Apply: a leader that reuses old indexes never commits again.)
		var noopIndex uint64
		c.waitFor(5*time.Second, "the survivor's no-op", func() bool {
			noopIndex, err = strconv.ParseUint(survivor.raft.Stats()["last_log_index"], 10, 64)
			return err == nil && noopIndex > 0
		})
		require.Greater(t, noopIndex, lastIndex, "the new leader's no-op reused index %d of the recovered log (last index %d)",
			noopIndex, lastIndex)
		f := survivor.raft.Apply([]byte("after-recovery"), time.Second)
		require.NoError(t, f.Error())
		require.Greater(t, f.Index(), lastIndex, "a new entry reused an index of the old log")
		cmds := survivor.fsm.commands()
		require.Equal(t, "after-recovery", string(cmds[len(cmds)-1]))

		// And a restart keeps it all.
		c.shutdownNode(survivor)
		c.restartNode(survivor)
		c.waitFor(5*time.Second, "the survivor to lead after a restart", func() bool {
			return survivor.raft.State() == Leader
		})
		require.NoError(t, survivor.raft.Barrier(time.Second).Error())
		require.Equal(t, cmds, survivor.fsm.commands())
	})
}
