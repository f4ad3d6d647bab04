//go:build go1.25

package raft

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers for the node tests of apply_test.go, leader_test.go,
// shutdown_test.go, config_test.go and newraft_test.go: stores that fail on
// demand, a cluster whose log and stable stores are such stores, and
// observer and FSM readers.

// errInjected is the error a faultStore returns when told to fail.
var errInjected = errors.New("injected store failure")

// faultStore is an InmemStore (LogStore and StableStore) whose methods fail
// with a chosen error once told to. Methods are named as in the interfaces:
// "StoreLogs", "GetUint64", ...
type faultStore struct {
	*InmemStore
	mu     sync.Mutex
	faults map[string]error
}

func newFaultStore(inner *InmemStore) *faultStore {
	return &faultStore{InmemStore: inner, faults: map[string]error{}}
}

// failOn makes method fail with err from now on; a nil err heals it.
func (s *faultStore) failOn(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.faults, method)
		return
	}
	s.faults[method] = err
}

func (s *faultStore) fault(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults[method]
}

func (s *faultStore) FirstIndex() (uint64, error) {
	if err := s.fault("FirstIndex"); err != nil {
		return 0, err
	}
	return s.InmemStore.FirstIndex()
}

func (s *faultStore) LastIndex() (uint64, error) {
	if err := s.fault("LastIndex"); err != nil {
		return 0, err
	}
	return s.InmemStore.LastIndex()
}

func (s *faultStore) GetLog(index uint64, log *Log) error {
	if err := s.fault("GetLog"); err != nil {
		return err
	}
	return s.InmemStore.GetLog(index, log)
}

func (s *faultStore) StoreLog(log *Log) error {
	if err := s.fault("StoreLog"); err != nil {
		return err
	}
	return s.InmemStore.StoreLog(log)
}

func (s *faultStore) StoreLogs(logs []*Log) error {
	if err := s.fault("StoreLogs"); err != nil {
		return err
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *faultStore) DeleteRange(minIndex, maxIndex uint64) error {
	if err := s.fault("DeleteRange"); err != nil {
		return err
	}
	return s.InmemStore.DeleteRange(minIndex, maxIndex)
}

func (s *faultStore) Set(key, val []byte) error {
	if err := s.fault("Set"); err != nil {
		return err
	}
	return s.InmemStore.Set(key, val)
}

func (s *faultStore) Get(key []byte) ([]byte, error) {
	if err := s.fault("Get"); err != nil {
		return nil, err
	}
	return s.InmemStore.Get(key)
}

func (s *faultStore) SetUint64(key []byte, val uint64) error {
	if err := s.fault("SetUint64"); err != nil {
		return err
	}
	return s.InmemStore.SetUint64(key, val)
}

func (s *faultStore) GetUint64(key []byte) (uint64, error) {
	if err := s.fault("GetUint64"); err != nil {
		return 0, err
	}
	return s.InmemStore.GetUint64(key)
}

// faultSnapshotStore is an InmemSnapshotStore whose List can be made to fail.
type faultSnapshotStore struct {
	*InmemSnapshotStore
	listErr error
}

func (s *faultSnapshotStore) List() ([]*SnapshotMeta, error) {
	if s.listErr != nil {
		return nil, s.listErr
	}
	return s.InmemSnapshotStore.List()
}

// slowTransport is an InmemTransport whose AppendEntries to chosen targets
// (heartbeats and pipelined requests included) wait a while, in virtual
// time, before they are sent. The delay is judged inside the InmemTransport
// (its interceptor), so pipelines and the heartbeat fast path stay in use.
type slowTransport struct {
	*InmemTransport
	mu    sync.Mutex
	delay map[ServerAddress]time.Duration
}

func newSlowTransport(inner *InmemTransport) *slowTransport {
	s := &slowTransport{InmemTransport: inner, delay: map[ServerAddress]time.Duration{}}
	inner.setInterceptor(s.judge)
	return s
}

// slowTo delays every later AppendEntries to target by d (0: no delay).
func (s *slowTransport) slowTo(target ServerAddress, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay[target] = d
}

func (s *slowTransport) judge(_, to ServerAddress, req interface{}) inmemVerdict {
	if _, ok := req.(*AppendEntriesRequest); !ok {
		return inmemVerdict{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return inmemVerdict{delay: s.delay[to]}
}

// faultCluster is a cluster whose nodes run on faultStores and
// slowTransports, both in node order. Nodes restarted with restartNode run
// on their plain InmemStore and a fresh slowTransport, not the one listed.
type faultCluster struct {
	*testCluster
	stores     []*faultStore
	transports []*slowTransport
}

// newFaultCluster is newTestCluster with every node's log and stable store
// wrapped in a faultStore, and its transport in a slowTransport.
func newFaultCluster(t testing.TB, n int, opts clusterOptions) (*testCluster, []*faultStore) {
	fc := newFaultClusterWithTransports(t, n, opts)
	return fc.testCluster, fc.stores
}

func newFaultClusterWithTransports(t testing.TB, n int, opts clusterOptions) *faultCluster {
	fc := &faultCluster{}
	opts.wrapStore = func(node *testNode) raftStore {
		s := newFaultStore(node.store)
		fc.stores = append(fc.stores, s)
		return s
	}
	opts.wrapTransport = func(node *testNode) Transport {
		s := newSlowTransport(node.trans)
		if len(fc.transports) < n {
			fc.transports = append(fc.transports, s)
		}
		return s
	}
	fc.testCluster = newTestCluster(t, n, opts)
	return fc
}

// indexOf returns the position of node in the cluster.
func (c *testCluster) indexOf(node *testNode) int {
	i := slices.Index(c.nodes, node)
	require.GreaterOrEqual(c.t, i, 0, "node %s is not in the cluster", node.id)
	return i
}

// entries returns the indexes and commands the FSM applied, in order.
func (f *testFSM) entries() ([]uint64, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.indexes), slices.Clone(f.data)
}

// stateObserver registers a non-blocking observer of RaftState and
// LeaderObservation changes on r, with room for every change a test makes.
func stateObserver(r *Raft) (*Observer, chan Observation) {
	ch := make(chan Observation, 1024)
	or := NewObserver(ch, false, func(o *Observation) bool {
		switch o.Data.(type) {
		case RaftState, LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(or)
	return or, ch
}

// awaitObservation waits (in virtual time) for an observation that match
// accepts, skipping others, and returns it with the time it arrived.
func awaitObservation(t testing.TB, ch <-chan Observation, timeout time.Duration, what string,
	match func(Observation) bool) (Observation, time.Time) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case o := <-ch:
			if match(o) {
				return o, time.Now()
			}
		case <-deadline:
			t.Fatalf("no observation of %s within %v", what, timeout)
			return Observation{}, time.Time{}
		}
	}
}

// drainObservations returns every observation waiting in ch.
func drainObservations(ch <-chan Observation) []interface{} {
	var out []interface{}
	for {
		select {
		case o := <-ch:
			out = append(out, o.Data)
		default:
			return out
		}
	}
}
