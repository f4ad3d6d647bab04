//go:build go1.25

package raft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// Shared helpers for cluster tests. Every cluster test runs inside a
// testing/synctest bubble: timers run on virtual time, so elections and
// timeouts cost no wall-clock time, and the bubble's end proves that every
// goroutine of every node stopped.

// testFSM records the commands it applies; Apply returns the entry's index.
type testFSM struct {
	mu      sync.Mutex
	data    [][]byte
	indexes []uint64
}

func (f *testFSM) Apply(l *Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.indexes); n > 0 && l.Index <= f.indexes[n-1] {
		panic(fmt.Sprintf("testFSM: index %d applied after %d", l.Index, f.indexes[n-1]))
	}
	f.data = append(f.data, l.Data)
	f.indexes = append(f.indexes, l.Index)
	return l.Index
}

func (f *testFSM) Snapshot() (FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &testFSMSnapshot{data: slices.Clone(f.data), indexes: slices.Clone(f.indexes)}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var data [][]byte
	var indexes []uint64
	for {
		var hdr [12]byte
		if _, err := io.ReadFull(rc, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		buf := make([]byte, binary.BigEndian.Uint32(hdr[8:]))
		if _, err := io.ReadFull(rc, buf); err != nil {
			return err
		}
		indexes = append(indexes, binary.BigEndian.Uint64(hdr[:8]))
		data = append(data, buf)
	}
	f.mu.Lock()
	f.data, f.indexes = data, indexes
	f.mu.Unlock()
	return nil
}

// commands returns a copy of the applied commands.
func (f *testFSM) commands() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.data)
}

func (f *testFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.data)
}

type testFSMSnapshot struct {
	data    [][]byte
	indexes []uint64
}

func (s *testFSMSnapshot) Persist(sink SnapshotSink) error {
	var buf bytes.Buffer
	for i, d := range s.data {
		var hdr [12]byte
		binary.BigEndian.PutUint64(hdr[:8], s.indexes[i])
		binary.BigEndian.PutUint32(hdr[8:], uint32(len(d)))
		buf.Write(hdr[:])
		buf.Write(d)
	}
	if _, err := sink.Write(buf.Bytes()); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *testFSMSnapshot) Release() {}

// testNode is one node of a test cluster with its stores, which survive a
// restart.
type testNode struct {
	id    ServerID
	addr  ServerAddress
	conf  *Config
	raft  *Raft
	fsm   *testFSM
	store *InmemStore
	snaps *InmemSnapshotStore
	trans *InmemTransport
	// runStore and runTrans are what the node runs on: store and trans, or
	// the wrappers of clusterOptions. The node's Raft sees them through the
	// strict doubles of its current run (testing_strict_test.go).
	runStore raftStore
	runTrans Transport
	// strict holds the strict doubles of the node's current run.
	strict *strictNode
}

type testCluster struct {
	t     testing.TB
	opts  clusterOptions
	nodes []*testNode
	// violations collects every broken rule of the contract with user code
	// that the nodes' strict doubles saw; close reports them.
	violations *contractViolations
}

// testLogger is silent unless RAFT_TEST_LOG names a level.
func testLogger(name string) hclog.Logger {
	level := hclog.Off
	if v := os.Getenv("RAFT_TEST_LOG"); v != "" {
		level = hclog.LevelFromString(v)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: os.Stderr})
}

// testConfig returns a fast configuration for virtual-time tests.
func testConfig(id ServerID) *Config {
	conf := DefaultConfig()
	conf.LocalID = id
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.Logger = testLogger(string(id))
	conf.strictInvariants = true
	return conf
}

// raftStore is a log store that is also the stable store.
type raftStore interface {
	LogStore
	StableStore
}

// batchStore records the indexes of every StoreLogs batch; each write
// takes delay (virtual time inside a synctest bubble), as a disk's does.
// The pacing and the follower group tests read what was written together.
type batchStore struct {
	raftStore
	mu    sync.Mutex
	delay time.Duration
	// batches holds the indexes of each StoreLogs call, in order.
	batches [][]uint64
}

func (s *batchStore) StoreLogs(logs []*Log) error {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	indexes := make([]uint64, len(logs))
	for i, l := range logs {
		indexes[i] = l.Index
	}
	s.mu.Lock()
	s.batches = append(s.batches, indexes)
	s.mu.Unlock()
	return s.raftStore.StoreLogs(logs)
}

func (s *batchStore) StoreLog(log *Log) error { return s.StoreLogs([]*Log{log}) }

func (s *batchStore) setDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

func (s *batchStore) written() [][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]uint64(nil), s.batches...)
}

// newBatchStoreCluster starts a cluster of n nodes, each on a batchStore,
// and returns the stores by node.
func newBatchStoreCluster(t *testing.T, n int) (*testCluster, map[ServerID]*batchStore) {
	stores := map[ServerID]*batchStore{}
	var mu sync.Mutex
	c := newTestCluster(t, n, clusterOptions{wrapStore: func(node *testNode) raftStore {
		s := &batchStore{raftStore: node.store}
		mu.Lock()
		stores[node.id] = s
		mu.Unlock()
		return s
	}})
	return c, stores
}

type clusterOptions struct {
	// tweak adjusts each node's configuration.
	tweak func(*Config)
	// noBootstrap leaves the stores empty.
	noBootstrap bool
	// wrapStore, if set, returns the store a node runs on in place of its
	// InmemStore (for fault injection). A restarted node runs on its plain
	// InmemStore.
	wrapStore func(node *testNode) raftStore
	// wrapTransport, if set, returns the transport a node runs on in place
	// of its InmemTransport; links are still made and cut on the
	// InmemTransport. It is applied again to the new transport of a
	// restarted node.
	wrapTransport func(node *testNode) Transport
	// seed seeds the nodes' random choices; 0 takes the test's (testSeed).
	seed uint64
}

// newTestCluster starts n fully connected, bootstrapped voters.
func newTestCluster(t testing.TB, n int, opts clusterOptions) *testCluster {
	c := &testCluster{t: t, opts: opts, violations: &contractViolations{}}
	// Also for tests that never close the cluster; close reports first.
	t.Cleanup(func() { c.violations.report(t) })
	seed := opts.seed
	if seed == 0 {
		seed = testSeed(t)
	}
	var configuration Configuration
	for i := range n {
		id := ServerID(fmt.Sprintf("node%d", i))
		addr, trans := NewInmemTransport(ServerAddress(fmt.Sprintf("addr%d", i)))
		node := &testNode{
			id: id, addr: addr, trans: trans,
			fsm: &testFSM{}, store: NewInmemStore(), snaps: NewInmemSnapshotStore(),
		}
		node.conf = testConfig(id)
		node.conf.randomSeed = nodeSeed(seed, id)
		if opts.tweak != nil {
			opts.tweak(node.conf)
		}
		c.nodes = append(c.nodes, node)
		configuration.Servers = append(configuration.Servers, Server{Suffrage: Voter, ID: id, Address: addr})
	}
	c.fullyConnect()
	for _, node := range c.nodes {
		node.runStore, node.runTrans = node.store, node.trans
		if opts.wrapStore != nil {
			node.runStore = opts.wrapStore(node)
		}
		if opts.wrapTransport != nil {
			node.runTrans = opts.wrapTransport(node)
		}
		if !opts.noBootstrap {
			require.NoError(t, BootstrapCluster(node.conf, node.runStore, node.runStore, node.snaps, node.runTrans, configuration))
		}
		c.start(node)
	}
	return c
}

// start creates the node's Raft from its stores.
func (c *testCluster) start(node *testNode) {
	c.startWith(node, node.fsm)
}

// startWith creates the node's Raft on fsm, its runStore and its runTrans,
// each seen through a strict double that records broken contract rules.
func (c *testCluster) startWith(node *testNode, fsm FSM) {
	c.t.Helper()
	strict, store, trans, strictFSM := newStrictNode(c.violations, node.id, node.runStore, node.runTrans, fsm)
	r, err := NewRaft(node.conf, strictFSM, store, store, node.snaps, trans)
	require.NoError(c.t, err)
	node.raft = r
	node.strict = strict
}

// stopNode shuts node down; once Shutdown has returned, any call into its
// store or FSM is a violation.
func (c *testCluster) stopNode(node *testNode) error {
	err := node.raft.Shutdown().Error()
	if node.strict != nil {
		node.strict.retire()
	}
	return err
}

func (c *testCluster) fullyConnect() {
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.trans.Connect(b.addr, b.trans)
			}
		}
	}
}

// isolate cuts every link to and from node.
func (c *testCluster) isolate(node *testNode) {
	for _, other := range c.nodes {
		if other != node {
			node.trans.Disconnect(other.addr)
			other.trans.Disconnect(node.addr)
		}
	}
}

// partition splits the cluster: nodes talk only within their group.
func (c *testCluster) partition(groups ...[]*testNode) {
	group := map[*testNode]int{}
	for i, g := range groups {
		for _, node := range g {
			group[node] = i
		}
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a == b {
				continue
			}
			ga, okA := group[a]
			gb, okB := group[b]
			if okA && okB && ga == gb {
				a.trans.Connect(b.addr, b.trans)
			} else {
				a.trans.Disconnect(b.addr)
			}
		}
	}
}

func (c *testCluster) live() []*testNode {
	var out []*testNode
	for _, node := range c.nodes {
		if node.raft != nil && node.raft.State() != Shutdown {
			out = append(out, node)
		}
	}
	return out
}

// waitFor polls cond in virtual time until it holds or timeout passes.
func (c *testCluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// leader waits until exactly one of nodes (all live nodes when empty) is
// leader and returns it.
func (c *testCluster) leader(nodes ...*testNode) *testNode {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.live()
	}
	var found *testNode
	c.waitFor(5*time.Second, "a single leader", func() bool {
		found = nil
		for _, node := range nodes {
			if node.raft.State() == Leader {
				if found != nil {
					return false
				}
				found = node
			}
		}
		return found != nil
	})
	return found
}

// followers returns the live nodes that are not n.
func (c *testCluster) others(n *testNode) []*testNode {
	var out []*testNode
	for _, node := range c.live() {
		if node != n {
			out = append(out, node)
		}
	}
	return out
}

// waitApplied waits until every given node (all live nodes when empty)
// has applied at least count commands.
func (c *testCluster) waitApplied(count int, nodes ...*testNode) {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.live()
	}
	c.waitFor(10*time.Second, fmt.Sprintf("%d commands applied", count), func() bool {
		for _, node := range nodes {
			if node.fsm.len() < count {
				return false
			}
		}
		return true
	})
}

// requireSameFSMs checks that the given nodes applied identical commands.
func (c *testCluster) requireSameFSMs(nodes ...*testNode) {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.live()
	}
	want := nodes[0].fsm.commands()
	for _, node := range nodes[1:] {
		require.Equal(c.t, want, node.fsm.commands(), "FSM of %s differs from %s", node.id, nodes[0].id)
	}
}

// shutdownNode stops a node, keeping its stores for a restart.
func (c *testCluster) shutdownNode(node *testNode) {
	require.NoError(c.t, c.stopNode(node))
}

// restartNode starts a stopped node again from its stores, with a fresh FSM
// and transport at the same address.
func (c *testCluster) restartNode(node *testNode) {
	_, node.trans = NewInmemTransport(node.addr)
	node.fsm = &testFSM{}
	c.fullyConnect()
	node.runStore, node.runTrans = node.store, node.trans
	if c.opts.wrapTransport != nil {
		node.runTrans = c.opts.wrapTransport(node)
	}
	c.start(node)
}

// close shuts every node down and fails the test with every broken rule
// of the contract with user code that the strict doubles saw.
func (c *testCluster) close() {
	c.t.Helper()
	for _, node := range c.nodes {
		if gated, ok := node.runTrans.(*gatedTransport); ok {
			gated.releaseAll()
		}
	}
	for _, node := range c.nodes {
		if node.raft != nil {
			require.NoError(c.t, c.stopNode(node))
		}
	}
	c.violations.report(c.t)
}

// applyN applies n commands "<prefix>-<i>" on the leader and waits for all.
func applyN(t testing.TB, r *Raft, prefix string, n int) {
	t.Helper()
	futures := make([]ApplyFuture, n)
	for i := range n {
		futures[i] = r.Apply([]byte(fmt.Sprintf("%s-%d", prefix, i)), time.Second)
	}
	for i, f := range futures {
		require.NoError(t, f.Error(), "apply %d", i)
	}
}

// wrapEach returns a clusterOptions.wrapTransport hook that wraps every
// node's transport with wrap, and the map in which it records each wrapper
// by node ID (filled as the cluster starts, from the test's goroutine).
func wrapEach[T Transport](wrap func(*InmemTransport) T) (map[ServerID]T, func(*testNode) Transport) {
	wrappers := map[ServerID]T{}
	return wrappers, func(node *testNode) Transport {
		w := wrap(node.trans)
		wrappers[node.id] = w
		return w
	}
}
