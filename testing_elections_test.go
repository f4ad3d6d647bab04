//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers for the election and replication safety tests: seeded
// randomness, a recorder of every leadership won, snapshots of every log and
// FSM, checks of the Raft safety properties over them, and a transport that
// drops chosen AppendEntries requests.

// leaderRecorder records every leadership won in a cluster, as (term,
// leader) pairs, and every term each node was seen in. It hooks into the
// observers' filter, which the node's main loop calls synchronously when it
// changes state, so the term read there is the term the node became leader
// in, not a later one.
type leaderRecorder struct {
	mu sync.Mutex
	// leaders maps a term to every node that became leader in it.
	leaders map[uint64][]ServerID
	// wins counts the leaderships recorded.
	wins int
	// lastTerm is the newest term each node was observed in.
	lastTerm map[ServerID]uint64
	// violations lists the broken rules, in the order seen.
	violations []string
}

func newLeaderRecorder() *leaderRecorder {
	return &leaderRecorder{leaders: map[uint64][]ServerID{}, lastTerm: map[ServerID]uint64{}}
}

// watch registers the recorder on node's current Raft; call it again after
// a restart.
func (lr *leaderRecorder) watch(node *testNode) {
	id := node.id
	node.raft.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
		lr.record(id, o)
		return false
	}))
}

func (lr *leaderRecorder) record(id ServerID, o *Observation) {
	term := o.Raft.CurrentTerm()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	if term < lr.lastTerm[id] {
		lr.violations = append(lr.violations,
			fmt.Sprintf("%s went back from term %d to term %d", id, lr.lastTerm[id], term))
	}
	lr.lastTerm[id] = max(lr.lastTerm[id], term)
	if state, ok := o.Data.(RaftState); !ok || state != Leader {
		return
	}
	lr.wins++
	for _, other := range lr.leaders[term] {
		lr.violations = append(lr.violations,
			fmt.Sprintf("term %d has two leaders: %s and %s", term, other, id))
	}
	lr.leaders[term] = append(lr.leaders[term], id)
}

func (lr *leaderRecorder) elections() int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.wins
}

// requireNoViolation fails the test if a rule was broken; context says
// what the test was doing.
func (lr *leaderRecorder) requireNoViolation(t testing.TB, context string) {
	t.Helper()
	lr.mu.Lock()
	defer lr.mu.Unlock()
	require.Empty(t, lr.violations, "election safety broken after %d elections (%s)", lr.wins, context)
}

// randomPartition cuts the cluster in a random way: healed (one time in
// five), the leader (if any) alone (two in five), or every node in one of
// two or three random groups.
func randomPartition(rng *rand.Rand, c *testCluster) string {
	switch rng.IntN(5) {
	case 0:
		c.fullyConnect()
		return "healed"
	case 1, 2:
		for _, node := range c.nodes {
			if node.raft.State() == Leader {
				c.fullyConnect()
				c.isolate(node)
				return "leader " + string(node.id) + " isolated"
			}
		}
		fallthrough
	default:
		groups := make([][]*testNode, 2+rng.IntN(2))
		for _, node := range c.nodes {
			g := rng.IntN(len(groups))
			groups[g] = append(groups[g], node)
		}
		c.partition(groups...)
		return fmt.Sprintf("%d groups", len(groups))
	}
}

// nodeLog is a copy of one node's log store.
type nodeLog struct {
	id      ServerID
	entries map[uint64]Log
	first   uint64
	last    uint64
}

func (l nodeLog) at(index uint64) (Log, bool) {
	entry, ok := l.entries[index]
	return entry, ok
}

// readLog copies node's whole log out of its store.
func readLog(t testing.TB, node *testNode) nodeLog {
	t.Helper()
	first, err := node.store.FirstIndex()
	require.NoError(t, err)
	last, err := node.store.LastIndex()
	require.NoError(t, err)
	l := nodeLog{id: node.id, entries: map[uint64]Log{}, first: first, last: last}
	for index := first; index > 0 && index <= last; index++ {
		var entry Log
		require.NoError(t, node.store.GetLog(index, &entry), "%s: read entry %d of [%d, %d]", node.id, index, first, last)
		l.entries[index] = entry
	}
	return l
}

// sameEntry reports whether two entries are the same entry of the log.
func sameEntry(a, b Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && string(a.Data) == string(b.Data)
}

// requireLogMatching checks the Log Matching property (§5.3) over every pair
// of logs: where two logs hold an entry with the same index and term, they
// hold identical entries at that index and at every index before it that
// both still hold.
func requireLogMatching(t testing.TB, logs []nodeLog) {
	t.Helper()
	for i, a := range logs {
		for _, b := range logs[i+1:] {
			// The highest index where both logs agree on the term.
			var agreed uint64
			for index := min(a.last, b.last); index >= max(a.first, b.first, 1); index-- {
				ea, okA := a.at(index)
				eb, okB := b.at(index)
				if okA && okB && ea.Term == eb.Term {
					agreed = index
					break
				}
			}
			for index := max(a.first, b.first, 1); index <= agreed; index++ {
				ea, _ := a.at(index)
				eb, _ := b.at(index)
				require.True(t, sameEntry(ea, eb),
					"log matching: %s and %s agree on the term at index %d but differ at index %d: %+v vs %+v",
					a.id, b.id, agreed, index, ea, eb)
			}
		}
	}
}

// appliedEntry is one command a testFSM applied.
type appliedEntry struct {
	index uint64
	data  string
}

// appliedEntries returns what fsm applied, in order.
func appliedEntries(fsm *testFSM) []appliedEntry {
	fsm.mu.Lock()
	defer fsm.mu.Unlock()
	out := make([]appliedEntry, len(fsm.data))
	for i := range fsm.data {
		out[i] = appliedEntry{index: fsm.indexes[i], data: string(fsm.data[i])}
	}
	return out
}

// errDroppedByTest is what a faultyTransport returns for a dropped request.
var errDroppedByTest = errors.New("test: AppendEntries request dropped")

// dropRule decides whether an AppendEntries request to target is dropped.
type dropRule func(target ServerAddress, req *AppendEntriesRequest) bool

// faultyTransport is an InmemTransport that can delay every outgoing RPC
// but InstallSnapshot by a random time below maxLatency (a zero-latency
// network in virtual time never lets two candidates campaign at once), and
// drop outgoing AppendEntries requests by a rule the test swaps at any time.
// A dropped request fails as if the link were down; nothing is delivered (a
// dropped pipelined request fails its send, which ends the pipeline). Both
// are judged inside the InmemTransport (its interceptor), so plain and
// pipelined requests pass the rule alike and heartbeats take the fast path.
type faultyTransport struct {
	*InmemTransport
	rule atomic.Pointer[dropRule]
	// maxLatency bounds the delay of each RPC; zero means none. Immutable.
	maxLatency time.Duration
}

func newFaultyTransport(inner *InmemTransport, maxLatency time.Duration) *faultyTransport {
	f := &faultyTransport{InmemTransport: inner, maxLatency: maxLatency}
	inner.setInterceptor(f.judge)
	return f
}

func (f *faultyTransport) setRule(rule dropRule) {
	if rule == nil {
		f.rule.Store(nil)
		return
	}
	f.rule.Store(&rule)
}

// judge delays every RPC but InstallSnapshot, and drops the AppendEntries
// the rule picks. A delay ends early when the transport closes: like a real
// transport's Close, closing ends calls in flight (the core does not wait
// for its vote goroutines on shutdown).
func (f *faultyTransport) judge(_, to ServerAddress, req interface{}) inmemVerdict {
	var v inmemVerdict
	if _, snapshot := req.(*InstallSnapshotRequest); !snapshot && f.maxLatency > 0 {
		v.delay = rand.N(f.maxLatency)
	}
	if args, ok := req.(*AppendEntriesRequest); ok {
		if rule := f.rule.Load(); rule != nil && (*rule)(to, args) {
			v.fail = errDroppedByTest
		}
	}
	return v
}

// newFaultyCluster is newTestCluster with a faultyTransport (of the given
// latency) under every node, returned in node order. Partitions work as
// usual through the nodes' InmemTransports. Restart nodes with
// restartFaultyNode to get the new wrapper.
func newFaultyCluster(t testing.TB, n int, maxLatency time.Duration, tweak func(*Config)) (*testCluster, []*faultyTransport) {
	var faulty []*faultyTransport
	c := newTestCluster(t, n, clusterOptions{
		tweak: tweak,
		wrapTransport: func(node *testNode) Transport {
			return newFaultyTransport(node.trans, maxLatency)
		},
	})
	for _, node := range c.nodes {
		faulty = append(faulty, node.runTrans.(*faultyTransport))
	}
	return c, faulty
}

// restartFaultyNode starts a node that was shut down again from its stores,
// with a fresh FSM and a fresh faultyTransport at the same address, and
// reconnects the whole cluster. The cluster must come from newFaultyCluster,
// whose wrapper sets the latency.
func restartFaultyNode(c *testCluster, node *testNode) *faultyTransport {
	c.restartNode(node)
	return node.runTrans.(*faultyTransport)
}

// settledLeader waits until every node follows one leader in one term and
// every follower heard from it within half a heartbeat timeout, and returns
// that leader. Right after a partition heals, a leader may still be deposed
// by a node that campaigned while cut off, or by a follower that learnt of
// it only through a rejected AppendEntries (which does not refresh the
// follower's last contact) and times out before the first heartbeat. Once
// all agree and heartbeats flow, with every link up, no one campaigns.
func settledLeader(c *testCluster) *testNode {
	c.t.Helper()
	var leader *testNode
	c.waitFor(10*time.Second, "every node to follow one leader in one term", func() bool {
		leader = nil
		for _, node := range c.nodes {
			if node.raft.State() == Leader {
				if leader != nil {
					return false
				}
				leader = node
			}
		}
		if leader == nil {
			return false
		}
		term := leader.raft.CurrentTerm()
		for _, node := range c.nodes {
			if _, id := node.raft.LeaderWithID(); id != leader.id || node.raft.CurrentTerm() != term {
				return false
			}
			if node != leader && time.Since(node.raft.LastContact()) > node.conf.HeartbeatTimeout/2 {
				return false
			}
		}
		return true
	})
	return leader
}
