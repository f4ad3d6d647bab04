//go:build go1.25

package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers for the snapshot tests of snapshot_cluster_test.go: an FSM that
// counts what the node asks of it, a transport that records the snapshots
// it installs and can lose AppendEntries replies, a log store that says it
// is monotonic, and encoders and decoders of testFSM snapshots.

// countingFSM is a testFSM that counts the commands applied and the
// restores asked of it, so a test can tell a replayed entry from one that
// came in a snapshot.
type countingFSM struct {
	*testFSM
	applies  atomic.Int64
	restores atomic.Int64
	// failRestores is how many of the next Restore calls fail without
	// touching the state.
	failRestores atomic.Int64
}

// errRestoreRefused is what a countingFSM told to fail returns from Restore.
var errRestoreRefused = errors.New("test: FSM refuses to restore")

func newCountingFSM() *countingFSM {
	return &countingFSM{testFSM: &testFSM{}}
}

// failNextRestores makes the next n Restore calls fail.
func (f *countingFSM) failNextRestores(n int64) {
	f.failRestores.Store(n)
}

func (f *countingFSM) Apply(l *Log) interface{} {
	f.applies.Add(1)
	return f.testFSM.Apply(l)
}

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	f.restores.Add(1)
	if f.failRestores.Add(-1) >= 0 {
		rc.Close()
		return errRestoreRefused
	}
	return f.testFSM.Restore(rc)
}

// startWithFSM starts node from its stores with fsm in place of a plain
// testFSM, on a fresh transport at the same address, like restartNode. The
// node's fsm field becomes fsm's testFSM, so the cluster helpers
// (waitApplied, requireSameFSMs) see it.
func startWithFSM(c *testCluster, node *testNode, fsm *countingFSM) {
	c.t.Helper()
	_, node.trans = NewInmemTransport(node.addr)
	node.fsm = fsm.testFSM
	c.fullyConnect()
	node.runStore, node.runTrans = node.store, node.trans
	if c.opts.wrapTransport != nil {
		node.runTrans = c.opts.wrapTransport(node)
	}
	c.startWith(node, fsm)
}

// restartCounting stops node and starts it again from its stores with a
// fresh countingFSM, which it returns.
func restartCounting(c *testCluster, node *testNode) *countingFSM {
	c.t.Helper()
	c.shutdownNode(node)
	fsm := newCountingFSM()
	startWithFSM(c, node, fsm)
	return fsm
}

// snapshotTransport is an InmemTransport that records every InstallSnapshot
// it sends, and can answer the AppendEntries carrying entries to a target
// with made-up rejections, as stale replies from a follower that once had a
// short log would look, until a snapshot is installed on it. Both are judged
// inside the InmemTransport (its interceptor), so pipelined requests get the
// made-up rejections too (a rejected pipeline falls back to single requests,
// which the rejection then sends back to the snapshot).
type snapshotTransport struct {
	*InmemTransport
	mu sync.Mutex
	// installed counts the InstallSnapshot calls that succeeded, by target.
	installed map[ServerAddress]int
	// rejectTo maps a target to the LastLog of the rejection its
	// AppendEntries with entries get instead of being delivered, until the
	// next successful InstallSnapshot to it.
	rejectTo map[ServerAddress]uint64
	// afterInstall, if set, runs after each successful InstallSnapshot and
	// before the sender can send the target anything else.
	afterInstall func(target ServerAddress, req *InstallSnapshotRequest)
}

func newSnapshotTransport(inner *InmemTransport) *snapshotTransport {
	s := &snapshotTransport{
		InmemTransport: inner,
		installed:      map[ServerAddress]int{},
		rejectTo:       map[ServerAddress]uint64{},
	}
	inner.setInterceptor(s.judge)
	return s
}

func (s *snapshotTransport) judge(_, to ServerAddress, req interface{}) inmemVerdict {
	switch args := req.(type) {
	case *InstallSnapshotRequest:
		return inmemVerdict{answered: func(resp interface{}, err error) error {
			if err != nil || !resp.(*InstallSnapshotResponse).Success {
				return err
			}
			s.mu.Lock()
			s.installed[to]++
			delete(s.rejectTo, to)
			hook := s.afterInstall
			s.mu.Unlock()
			if hook != nil {
				hook(to, args)
			}
			return nil
		}}
	case *AppendEntriesRequest:
		if len(args.Entries) == 0 {
			return inmemVerdict{}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if lastLog, reject := s.rejectTo[to]; reject {
			return inmemVerdict{respond: &AppendEntriesResponse{Term: args.Term, LastLog: lastLog, NoRetryBackoff: true}}
		}
	}
	return inmemVerdict{}
}

// installsTo returns how many snapshots were installed on target.
func (s *snapshotTransport) installsTo(target ServerAddress) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.installed[target]
}

// rejectUntilSnapshot makes every AppendEntries with entries to target come
// back rejected with lastLog, undelivered, until a snapshot is installed on
// target.
func (s *snapshotTransport) rejectUntilSnapshot(target ServerAddress, lastLog uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectTo[target] = lastLog
}

func (s *snapshotTransport) setAfterInstall(hook func(target ServerAddress, req *InstallSnapshotRequest)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterInstall = hook
}

// snapshotTransports hands out snapshotTransports for a cluster and keeps
// the one each node (by address) currently runs on, across restarts.
type snapshotTransports struct {
	mu     sync.Mutex
	byAddr map[ServerAddress]*snapshotTransport
	// all is every transport handed out, restarted nodes' old ones too.
	all []*snapshotTransport
}

func newSnapshotTransports() *snapshotTransports {
	return &snapshotTransports{byAddr: map[ServerAddress]*snapshotTransport{}}
}

// wrap is a clusterOptions.wrapTransport.
func (st *snapshotTransports) wrap(node *testNode) Transport {
	trans := newSnapshotTransport(node.trans)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byAddr[node.addr] = trans
	st.all = append(st.all, trans)
	return trans
}

// of returns the transport node runs on now.
func (st *snapshotTransports) of(node *testNode) *snapshotTransport {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.byAddr[node.addr]
}

// installsTo counts the snapshots any node installed on target; an empty
// target counts them on every node.
func (st *snapshotTransports) installsTo(target ServerAddress) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	total := 0
	for _, trans := range st.all {
		trans.mu.Lock()
		for addr, n := range trans.installed {
			if target == "" || addr == target {
				total += n
			}
		}
		trans.mu.Unlock()
	}
	return total
}

// waitInstalled waits until a sender has seen an InstallSnapshot to node
// succeed, and fails with why otherwise. Waiting for the node's FSM is not
// enough: the follower restores its FSM before it records the snapshot's
// metadata and answers, so a test that sees the restored state may run
// before the sender has counted the install. In virtual time both happen at
// the same instant, and which goroutine runs first is up to the scheduler.
func (st *snapshotTransports) waitInstalled(c *testCluster, node *testNode, why string) {
	c.t.Helper()
	c.waitFor(10*time.Second, fmt.Sprintf("an answered InstallSnapshot to %s (%s)", node.id, why), func() bool {
		return st.installsTo(node.addr) > 0
	})
}

// monotonicStore is an InmemStore that declares itself a MonotonicLogStore:
// it must never be left with a gap, so Raft empties it rather than keep a
// tail after a snapshot install.
type monotonicStore struct {
	*InmemStore
}

func (monotonicStore) IsMonotonic() bool { return true }

// bufferSink is a SnapshotSink that keeps the data in memory.
type bufferSink struct {
	bytes.Buffer
}

func (*bufferSink) ID() string      { return "buffer" }
func (*bufferSink) Close() error    { return nil }
func (b *bufferSink) Cancel() error { b.Reset(); return nil }

// encodeTestSnapshot returns the bytes a testFSM holding these commands at
// these indexes persists, which testFSM.Restore reads back.
func encodeTestSnapshot(t testing.TB, indexes []uint64, commands [][]byte) []byte {
	t.Helper()
	var sink bufferSink
	snap := &testFSMSnapshot{data: commands, indexes: indexes}
	require.NoError(t, snap.Persist(&sink))
	return sink.Bytes()
}

// entriesUpTo returns the applied entries whose index is at most index.
func entriesUpTo(indexes []uint64, commands [][]byte, index uint64) ([]uint64, [][]byte) {
	n := 0
	for n < len(indexes) && indexes[n] <= index {
		n++
	}
	return indexes[:n], commands[:n]
}

// diskNode is a single-voter node whose snapshots live in a
// FileSnapshotStore on disk and whose log and stable store survive restarts
// in memory. Each start opens the snapshot directory afresh, as a restarted
// process would.
type diskNode struct {
	t       testing.TB
	conf    *Config
	store   *InmemStore
	snapDir string
	addr    ServerAddress
	raft    *Raft
}

// newDiskNode bootstraps a single-voter node over a fresh snapshot
// directory; it is not started.
func newDiskNode(t testing.TB, snapDir string, tweak func(*Config)) *diskNode {
	t.Helper()
	n := &diskNode{t: t, conf: testConfig("disk"), store: NewInmemStore(), snapDir: snapDir, addr: "disk-addr"}
	if tweak != nil {
		tweak(n.conf)
	}
	_, trans := NewInmemTransport(n.addr)
	configuration := Configuration{Servers: []Server{{Suffrage: Voter, ID: n.conf.LocalID, Address: n.addr}}}
	require.NoError(t, BootstrapCluster(n.conf, n.store, n.store, n.snapshots(), trans, configuration))
	require.NoError(t, trans.Close())
	return n
}

// snapshots opens the node's snapshot directory, keeping two snapshots.
func (n *diskNode) snapshots() *FileSnapshotStore {
	n.t.Helper()
	snaps, err := NewFileSnapshotStoreWithLogger(n.snapDir, 2, testLogger("disk-snapshots"))
	require.NoError(n.t, err)
	return snaps
}

// start runs the node on fsm and returns NewRaft's error.
func (n *diskNode) start(fsm FSM) error {
	_, trans := NewInmemTransport(n.addr)
	r, err := NewRaft(n.conf, fsm, n.store, n.store, n.snapshots(), trans)
	if err != nil {
		_ = trans.Close()
		return err
	}
	n.raft = r
	return nil
}

// waitLeader waits (in virtual time) for the single voter to lead.
func (n *diskNode) waitLeader() {
	n.t.Helper()
	c := &testCluster{t: n.t}
	c.waitFor(5*time.Second, "the single voter to lead", func() bool { return n.raft.State() == Leader })
}

// stop shuts the node down.
func (n *diskNode) stop() {
	n.t.Helper()
	require.NoError(n.t, n.raft.Shutdown().Error())
	n.raft = nil
}

// catchUpByInstallSnapshot runs a 3-node cluster that snapshots often with
// one follower restarted on a counting FSM, applies 20 entries, cuts that
// follower off while the leader applies missed more and compacts away the
// first entry it lacks, then reconnects it and waits until it has caught up
// by an InstallSnapshot. It returns the leader, the follower, the
// follower's FSM and the first index the follower had missed.
func catchUpByInstallSnapshot(t *testing.T, c *testCluster, transports *snapshotTransports, missed int) (leader, lagging *testNode, fsm *countingFSM, next uint64) {
	t.Helper()
	leader = c.leader()
	lagging = c.others(leader)[0]
	fsm = restartCounting(c, lagging)
	leader = c.leader()
	applyN(t, leader.raft, "before", 20)
	c.waitApplied(20)
	require.Zero(t, fsm.restores.Load(), "no snapshot existed when the follower restarted")

	// Compaction drops the entries from the leader's in-memory tail as well
	// as from its store, so a few hundred missed entries (far fewer than the
	// tail holds) already need a snapshot.
	c.isolate(lagging)
	applyN(t, leader.raft, "during", missed)
	c.waitApplied(20+missed, leader)
	next = lagging.raft.LastIndex() + 1
	c.waitFor(10*time.Second, fmt.Sprintf("the leader to compact away entry %d", next), func() bool {
		_, err := leader.raft.getEntry(next)
		return errors.Is(err, ErrLogNotFound)
	})
	require.Equal(t, 20, lagging.fsm.len(), "an isolated follower applied entries it cannot have received")

	c.fullyConnect()
	c.waitApplied(20+missed, lagging)
	transports.waitInstalled(c, lagging, "the follower caught up without an InstallSnapshot")
	return leader, lagging, fsm, next
}
