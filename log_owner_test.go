//go:build go1.25

package raft

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// gatedStore holds its first StoreLogs call until the gate opens, so a test
// can keep a write in progress while the node does something else.
type gatedStore struct {
	*faultStore
	entered chan struct{}
	gate    chan struct{}
	calls   int
}

func newGatedStore(inner *faultStore) *gatedStore {
	return &gatedStore{faultStore: inner, entered: make(chan struct{}), gate: make(chan struct{})}
}

func (s *gatedStore) StoreLogs(logs []*Log) error {
	s.calls++
	if s.calls == 1 {
		close(s.entered)
		<-s.gate
	}
	return s.faultStore.StoreLogs(logs)
}

func TestDeposedLeadersPendingWriteNeverOverwritesTheNewLeadersEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Our log: 1:t1 2:t1. We lead term 2 and have dispatched 3:t2,
		// whose write is still in progress, when the leader of term 3
		// sends 3:t3.
		var gated *gatedStore
		rc := newReceiverOn(t, func(s *faultStore) raftStore {
			gated = newGatedStore(s)
			return gated
		}, 1)
		r := rc.r
		require.NoError(t, r.setCurrentTerm(2))
		r.setState(Leader)
		l := newLeader(r, 2, 3)
		l.dispatchLogs([]*logFuture{r.newLogFuture(Log{Type: LogCommand, Data: []byte("t2")})})
		<-gated.entered

		respCh := make(chan *AppendEntriesResponse, 1)
		go func() {
			respCh <- rc.append(&AppendEntriesRequest{
				RPCHeader: header("node1"), Term: 3, PrevLogEntry: 2, PrevLogTerm: 1,
				Entries: []*Log{{Index: 3, Term: 3, Type: LogCommand, Data: []byte("t3")}},
			})
		}()
		// Let the handler run as far as it can while the leader's write
		// is held, then let the write finish.
		synctest.Wait()
		close(gated.gate)
		resp := <-respCh
		_, err := r.log.settle()
		require.NoError(t, err)

		require.True(t, resp.Success)
		require.Equal(t, RaftState(Follower), r.getState())
		require.Equal(t, []uint64{1, 1, 3}, rc.logTerms(),
			"the acknowledged entry of term 3 was overwritten by the deposed leader's pending write")
		index, term := r.getLastLog()
		require.Equal(t, [2]uint64{3, 3}, [2]uint64{index, term})
	})
}

// latencyStore is a store whose writes of chosen entries take a chosen
// time, as a disk's sync does (virtual time inside a synctest bubble).
type latencyStore struct {
	raftStore
	mu sync.Mutex
	// delays maps an entry's data to how long a write holding it takes.
	delays map[string]time.Duration
}

// slowWrites makes a write holding an entry whose data is a key of delays
// take that long.
func (s *latencyStore) slowWrites(delays map[string]time.Duration) {
	s.mu.Lock()
	s.delays = delays
	s.mu.Unlock()
}

func (s *latencyStore) StoreLogs(logs []*Log) error {
	s.mu.Lock()
	var delay time.Duration
	for _, l := range logs {
		delay = max(delay, s.delays[string(l.Data)])
	}
	s.mu.Unlock()
	time.Sleep(delay)
	return s.raftStore.StoreLogs(logs)
}

func (s *latencyStore) StoreLog(log *Log) error { return s.StoreLogs([]*Log{log}) }

// voteBlockingTransport fails every vote and prevote request to blocked
// while block is set, so an election can happen behind a leader's back.
type voteBlockingTransport struct {
	*InmemTransport
	blocked ServerAddress
	block   *atomic.Bool
}

var errVotesBlocked = errors.New("votes blocked by the test")

func (t *voteBlockingTransport) RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error {
	if t.block.Load() && target == t.blocked {
		return errVotesBlocked
	}
	return t.InmemTransport.RequestVote(id, target, args, resp)
}

func (t *voteBlockingTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	if t.block.Load() && target == t.blocked {
		return errVotesBlocked
	}
	return t.InmemTransport.RequestPreVote(id, target, args, resp)
}

// deposeLeaderWithPendingWrites runs the scenario of
// TestDeposedLeadersPendingWriteNeverOverwritesTheNewLeadersEntry on a
// cluster: node0 leads with a long lease and loses its outgoing links with
// two writes of its own on the way to a slow disk (one in progress, one
// queued behind it). The others elect a leader without asking node0 for
// its vote, and node0 hears of it first through that leader's entries,
// while it still believes it leads. It returns the cluster, the first
// index both leaders wrote, and the new leader.
func deposeLeaderWithPendingWrites(t *testing.T) (*testCluster, uint64, *testNode) {
	var blockVotes atomic.Bool
	stores := map[ServerID]*latencyStore{}
	c := newTestCluster(t, 3, clusterOptions{
		tweak: func(conf *Config) {
			if conf.LocalID == "node0" {
				// node0 keeps leading long after it stops hearing answers.
				conf.HeartbeatTimeout = time.Second
				conf.ElectionTimeout = time.Second
				conf.LeaderLeaseTimeout = time.Second
			}
		},
		wrapStore: func(node *testNode) raftStore {
			s := &latencyStore{raftStore: node.store}
			stores[node.id] = s
			return s
		},
		wrapTransport: func(node *testNode) Transport {
			return &voteBlockingTransport{InmemTransport: node.trans, blocked: "addr0", block: &blockVotes}
		},
	})
	old := c.nodes[0]
	if leader := c.leader(); leader != old {
		require.NoError(t, leader.raft.LeadershipTransferToServer(old.id, old.addr).Error())
	}
	require.Equal(t, old, c.leader(), "node0 should lead")
	applyN(t, old.raft, "before", 5)
	c.waitApplied(5)

	stores[old.id].slowWrites(map[string]time.Duration{"stale-1": 500 * time.Millisecond, "stale-2": 1500 * time.Millisecond})
	blockVotes.Store(true)
	others := c.others(old)
	for _, other := range others {
		old.trans.Disconnect(other.addr)
	}
	index := old.raft.LastIndex() + 1
	stale1 := old.raft.Apply([]byte("stale-1"), 0)
	synctest.Wait() // stale-1 is in the disk write
	stale2 := old.raft.Apply([]byte("stale-2"), 0)
	synctest.Wait() // stale-2 waits for it

	newLeader := c.leader(others...)
	applyN(t, newLeader.raft, "after", 5)
	require.ErrorIs(t, stale1.Error(), ErrLeadershipLost, "the deposed leader's entry must not commit")
	require.ErrorIs(t, stale2.Error(), ErrLeadershipLost, "the deposed leader's entry must not commit")
	blockVotes.Store(false)
	return c, index, newLeader
}

func TestDeposedLeadersPendingWriteNeverOverwritesTheNewLeadersEntryInACluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, index, newLeader := deposeLeaderWithPendingWrites(t)
		defer c.close()
		old := c.nodes[0]
		c.fullyConnect()
		c.waitApplied(10)
		// Let every write still on the way reach the disks.
		time.Sleep(2 * time.Second)

		for i := index; i < index+2; i++ {
			var want, got Log
			require.NoError(t, newLeader.store.GetLog(i, &want))
			require.NoError(t, old.store.GetLog(i, &got))
			require.Equal(t, [2]any{want.Term, want.Data}, [2]any{got.Term, got.Data},
				"entry %d on the deposed leader's disk is not the new leader's: a write of the old term overwrote it", i)
		}

		// What the disk holds is what a restart replays.
		c.shutdownNode(old)
		c.restartNode(old)
		c.waitApplied(10)
		c.requireSameFSMs()
	})
}

// recordViolations makes rc's log record broken invariants instead of
// panicking, and returns what it recorded. Call it before any write.
func recordViolations(rc *receiver) func() []error {
	var mu sync.Mutex
	var got []error
	rc.r.log.violated = func(err error) {
		mu.Lock()
		got = append(got, err)
		mu.Unlock()
	}
	return func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), got...)
	}
}

func TestFollowerNeverTruncatesCommittedEntries(t *testing.T) {
	// Our log: 1:t1 2:t2 3:t2, committed through 3. A leader (broken, or
	// talking to a broken store) says entry 3 is of term 3.
	rc := newReceiver(t, 2, 2)
	violations := recordViolations(rc)
	require.True(t, rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 2, PrevLogEntry: 3, PrevLogTerm: 2, LeaderCommitIndex: 3,
	}).Success)
	require.Equal(t, uint64(3), rc.r.getCommitIndex())

	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 3, PrevLogEntry: 2, PrevLogTerm: 2,
		Entries: []*Log{{Index: 3, Term: 3}},
	})
	require.False(t, resp.Success, "a committed entry was replaced")
	require.Equal(t, []uint64{1, 2, 2}, rc.logTerms())
	require.Len(t, violations(), 1, "the refusal must be reported as a broken invariant")
}

func TestLastSnapshotNeverMovesBack(t *testing.T) {
	rc := newReceiver(t, 1, 1)
	violations := recordViolations(rc)
	require.NoError(t, rc.r.log.moveSnapshot(3, 1))
	require.Error(t, rc.r.log.moveSnapshot(2, 1))
	index, term := rc.r.getLastSnapshot()
	require.Equal(t, [2]uint64{3, 1}, [2]uint64{index, term})
	require.Len(t, violations(), 1)

	// A snapshot the node took before a newer one was installed does
	// not move it back either, and is no violation.
	require.NoError(t, rc.r.log.snapshotTaken(2, 1))
	index, _ = rc.r.getLastSnapshot()
	require.Equal(t, uint64(3), index)
	require.Len(t, violations(), 1)
}

func TestInstallSnapshotOlderThanOursIsRefused(t *testing.T) {
	rc := newReceiver(t, 1, 1)
	require.NoError(t, rc.r.log.moveSnapshot(3, 1))
	resp := rc.call(&InstallSnapshotRequest{
		RPCHeader: header("node1"), SnapshotVersion: SnapshotVersionMax, Term: 1,
		LastLogIndex: 2, LastLogTerm: 1, Size: 0,
	})
	require.ErrorContains(t, resp.Error, "older than ours")
	index, _ := rc.r.getLastSnapshot()
	require.Equal(t, uint64(3), index)
}

// forgetfulStore acknowledges log writes it does not make.
type forgetfulStore struct {
	*faultStore
	forget atomic.Bool
}

func (s *forgetfulStore) StoreLogs(logs []*Log) error {
	if s.forget.Load() {
		return nil
	}
	return s.faultStore.StoreLogs(logs)
}

func TestStoreThatDisagreesWithTheLogIsCaught(t *testing.T) {
	var forgetful *forgetfulStore
	rc := newReceiverOn(t, func(s *faultStore) raftStore {
		forgetful = &forgetfulStore{faultStore: s}
		return forgetful
	}, 1)
	violations := recordViolations(rc)
	forgetful.forget.Store(true)
	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 1, PrevLogEntry: 2, PrevLogTerm: 1,
		Entries: []*Log{{Index: 3, Term: 1}},
	})
	require.False(t, resp.Success, "an entry the store does not hold was acknowledged")
	require.Len(t, violations(), 1)
	index, _ := rc.r.getLastLog()
	require.Equal(t, uint64(2), index, "the log must say what the store holds")
}
