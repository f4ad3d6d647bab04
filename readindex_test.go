//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// heartbeatCounter counts the empty AppendEntries (heartbeats) a node
// sends, and may make each take delay.
type heartbeatCounter struct {
	*InmemTransport
	sent  atomic.Int64
	delay atomic.Int64
}

func (h *heartbeatCounter) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	if len(args.Entries) == 0 && args.PrevLogEntry == 0 {
		h.sent.Add(1)
		time.Sleep(time.Duration(h.delay.Load()))
	}
	return h.InmemTransport.AppendEntries(id, target, args, resp)
}

// newReadCluster starts n nodes with opts whose heartbeats are counted.
func newReadCluster(t testing.TB, n int, opts clusterOptions) (*testCluster, map[ServerID]*heartbeatCounter) {
	counters, wrap := wrapEach(func(inner *InmemTransport) *heartbeatCounter {
		return &heartbeatCounter{InmemTransport: inner}
	})
	opts.wrapTransport = wrap
	return newTestCluster(t, n, opts), counters
}

func leaseReads(conf *Config) {
	conf.LeaseReads = true
	conf.MaxClockDrift = 5 * time.Millisecond
}

// ReadIndex on the leader returns the commit index of the call, of an entry
// of the leader's own term, once the leader's FSM has applied it.
func TestReadIndexIsACommitIndexOfTheLeadersTermAndApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		l := c.leader()
		// Straight after the election: the read waits for the no-op.
		f := l.raft.ReadIndex(time.Second)
		require.NoError(t, f.Error())
		entry, err := l.raft.getEntry(f.Index())
		require.NoError(t, err)
		require.Equal(t, l.raft.getCurrentTerm(), entry.Term, "read index must be of the leader's term")
		require.GreaterOrEqual(t, l.raft.AppliedIndex(), f.Index())

		applyN(t, l.raft, "w", 10)
		last := l.raft.LastIndex()
		f = l.raft.ReadIndex(time.Second)
		require.NoError(t, f.Error())
		require.GreaterOrEqual(t, f.Index(), last, "a read after a write sees it")
		require.GreaterOrEqual(t, l.raft.AppliedIndex(), f.Index())
		require.Equal(t, 10, l.fsm.len())
	})
}

// §6.4: a new leader does not know the commit index until an entry of its
// own term commits, so a read waits for its no-op. Here the new leader's
// entries are held back (heartbeats pass, so it keeps leading): the read
// stays pending, and once the no-op commits its index is at least the
// no-op's.
func TestReadIndexWaitsForTheFirstCommitOfTheLeadersTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gates, wrap := wrapEach(newGatedTransport)
		c := newTestCluster(t, 3, clusterOptions{wrapTransport: wrap})
		defer c.close()
		old := settledLeader(c)
		applyN(t, old.raft, "w", 5)
		next := c.others(old)[0]
		for _, n := range c.nodes {
			gates[next.id].hold(n.addr)
		}
		oldLast := old.raft.LastIndex()
		require.NoError(t, old.raft.LeadershipTransferToServer(next.id, next.addr).Error())
		require.Equal(t, next, c.leader())
		// The leader's state is published before its no-op is appended.
		c.waitFor(time.Second, "the new leader's no-op", func() bool { return next.raft.LastIndex() > oldLast })
		noopIndex := next.raft.LastIndex()
		require.Less(t, next.raft.CommitIndex(), noopIndex, "the no-op must still be uncommitted")

		f := next.raft.ReadIndex(0)
		done := make(chan error, 1)
		go func() { done <- f.Error() }()
		time.Sleep(next.conf.HeartbeatTimeout)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("read returned (%v) before the leader committed an entry of its term", err)
		default:
		}
		for _, n := range c.nodes {
			gates[next.id].release(n.addr)
		}
		require.NoError(t, <-done)
		require.GreaterOrEqual(t, f.Index(), noopIndex)
	})
}

func TestReadIndexOnAFollowerIsRefusedWithErrNotLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		l := c.leader()
		for _, n := range c.others(l) {
			require.ErrorIs(t, n.raft.ReadIndex(time.Second).Error(), ErrNotLeader)
		}
	})
}

// Many concurrent reads share heartbeat rounds: while one round is out, the
// reads that arrive wait and go together in the next. With a round trip of
// 1ms of virtual time, 256 concurrent reads need two or three rounds.
func TestReadIndexBatchesConcurrentReadsIntoSharedRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, counters := newReadCluster(t, 3, clusterOptions{})
		defer c.close()
		l := settledLeader(c)
		applyN(t, l.raft, "w", 1)
		counters[l.id].delay.Store(int64(time.Millisecond))
		before := counters[l.id].sent.Load()
		const reads = 256
		var wg sync.WaitGroup
		errs := make([]error, reads)
		for i := range reads {
			wg.Go(func() { errs[i] = l.raft.ReadIndex(time.Second).Error() })
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "read %d", i)
		}
		// Two followers: two heartbeats per round.
		rounds := (counters[l.id].sent.Load() - before) / 2
		require.LessOrEqual(t, rounds, int64(3), "rounds for %d reads", reads)
	})
}

// The stale-read trap: a leader cut off into a minority never confirms a
// read, while the majority elects a new leader and commits newer writes.
func TestPartitionedOldLeaderNeverServesAReadIndex(t *testing.T) {
	for _, lease := range []bool{false, true} {
		t.Run(fmt.Sprintf("lease=%v", lease), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var tweak func(*Config)
				if lease {
					tweak = leaseReads
				}
				c := newTestCluster(t, 5, clusterOptions{tweak: tweak})
				defer c.close()
				old := settledLeader(c)
				applyN(t, old.raft, "before", 5)
				var minority, majority []*testNode
				minority = append(minority, old)
				for _, n := range c.others(old) {
					if len(minority) < 2 {
						minority = append(minority, n)
					} else {
						majority = append(majority, n)
					}
				}
				c.partition(minority, majority)
				newLeader := c.leader(majority...)
				applyN(t, newLeader.raft, "after", 5)

				// Every read the old leader confirmed after the cut was
				// confirmed before the new leader existed; from now on
				// none succeeds.
				f := old.raft.ReadIndex(200 * time.Millisecond)
				err := f.Error()
				require.Error(t, err)
				require.True(t, errors.Is(err, ErrReadTimeout) || errors.Is(err, ErrLeadershipLost) || errors.Is(err, ErrNotLeader), "got %v", err)
			})
		})
	}
}

// With lease reads, a leader that stops hearing from a quorum stops serving
// reads before any other node could be elected: the lease is measured from
// the send time of the last accepted request, minus the drift bound, and
// voters refuse other candidates for HeartbeatTimeout after contact.
func TestLeaseReadsStopBeforeANewLeaderCanBeElected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, counters := newReadCluster(t, 3, clusterOptions{tweak: leaseReads})
		defer c.close()
		old := settledLeader(c)
		applyN(t, old.raft, "w", 3)

		// Steady state: reads come from the lease, with no extra rounds.
		before := counters[old.id].sent.Load()
		start := time.Now()
		for range 100 {
			require.NoError(t, old.raft.ReadIndex(time.Second).Error())
		}
		require.Equal(t, start, time.Now(), "lease reads wait for nothing")
		require.LessOrEqual(t, counters[old.id].sent.Load()-before, int64(2))

		c.isolate(old)
		// Read in a loop on the old leader and note when the last read
		// succeeded; meanwhile the others elect a new leader.
		var lastServed atomic.Pointer[time.Time]
		done := make(chan struct{})
		go func() {
			defer close(done)
			for old.raft.State() == Leader {
				if old.raft.ReadIndex(10*time.Millisecond).Error() == nil {
					now := time.Now()
					lastServed.Store(&now)
				}
				time.Sleep(time.Millisecond)
			}
		}()
		var newLeader *testNode
		c.waitFor(5*time.Second, "a new leader", func() bool {
			for _, n := range c.others(old) {
				if n.raft.State() == Leader {
					newLeader = n
					return true
				}
			}
			return false
		})
		elected := time.Now()
		<-done
		if p := lastServed.Load(); p != nil {
			require.True(t, p.Before(elected), "old leader served a read at %v, new leader elected at %v", *p, elected)
		}
		require.NotNil(t, newLeader)
	})
}

// The lease rule on a node with no goroutines: the lease runs from the
// send time of the request a quorum accepted, for HeartbeatTimeout minus
// MaxClockDrift; a transfer in progress ends it at once, and a leader that
// is no voter in its latest configuration does not count itself.
func TestLeaseIsTheQuorumsAcceptedSendTimePlusHeartbeatTimeoutMinusDrift(t *testing.T) {
	rc := newReceiver(t)
	r := rc.r
	conf := *r.config()
	conf.LeaseReads = true
	conf.MaxClockDrift = 10 * time.Millisecond
	r.conf.Store(&conf)
	base := time.Now()
	l := newLeader(r, r.getCurrentTerm(), r.getLastIndex()+1)
	l.replState = map[ServerID]*followerReplication{"node1": {}, "node2": {}}
	require.False(t, l.leaseValid(base), "no peer accepted anything yet")

	l.replState["node1"].ackedSend.store(base)
	l.replState["node2"].ackedSend.store(base.Add(-time.Hour))
	// Quorum of 3 is 2: ourselves and node1, whose acceptance started at base.
	lease := conf.HeartbeatTimeout - conf.MaxClockDrift
	require.True(t, l.leaseValid(base.Add(lease-time.Nanosecond)))
	require.False(t, l.leaseValid(base.Add(lease)))

	l.transfer = &leadershipTransferFuture{}
	require.False(t, l.leaseValid(base), "a transfer ends the lease")
	l.transfer = nil

	// The leader has appended a configuration that removes it: until that
	// commits and it steps down, its lease needs a quorum of that
	// configuration's voters, without itself.
	bootstrap := r.configurations.latest
	r.setLatestConfiguration(Configuration{Servers: []Server{
		{Suffrage: Nonvoter, ID: "node0", Address: "addr0"},
		{Suffrage: Voter, ID: "node1", Address: "addr1"},
		{Suffrage: Voter, ID: "node2", Address: "addr2"},
	}}, 2)
	require.False(t, l.leaseValid(base), "a leader outside its latest configuration counted itself")
	l.replState["node2"].ackedSend.store(base)
	require.True(t, l.leaseValid(base), "both remaining voters accepted a send at base")
	r.setLatestConfiguration(bootstrap, 1)

	conf.LeaseReads = false
	require.False(t, l.leaseValid(base), "lease reads are opt-in")
}

// With lease reads, a node refuses votes and prevotes for HeartbeatTimeout
// after it starts: before a restart it may have extended a leader's lease.
// An election the leader asked for (TimeoutNow) is exempt: that leader has
// given its lease up.
func TestLeaseQuietPeriodRefusesVotesAfterStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := newReceiver(t)
		r := rc.r
		conf := *r.config()
		conf.LeaseReads = true
		r.conf.Store(&conf)
		r.startedAt = time.Now()
		vote := func(from string, transfer bool) bool {
			req := voteFrom(from, 5, 10, 5)
			req.LeadershipTransfer = transfer
			return rc.vote(req).Granted
		}
		preVote := func(from string) bool { return rc.preVote(from, 5, 10, 5).Granted }

		require.False(t, preVote("node1"), "prevote granted inside the quiet period")
		require.False(t, vote("node1", false), "vote granted inside the quiet period")
		require.Equal(t, uint64(1), r.CurrentTerm(), "a refused candidate's term is not adopted")
		require.True(t, vote("node1", true), "vote for a leadership transfer refused inside the quiet period")

		time.Sleep(conf.HeartbeatTimeout - time.Nanosecond)
		require.False(t, preVote("node2"), "prevote granted before the quiet period ended")
		time.Sleep(time.Nanosecond)
		require.True(t, preVote("node2"), "prevote refused after the quiet period")
		require.True(t, vote("node1", false), "vote refused after the quiet period")
	})
}

// A timeout that passes before the read is confirmed gives ErrReadTimeout.
func TestReadIndexTimesOutWhenNoQuorumAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) {
			// Keep the leader from stepping down before the read times out.
			conf.HeartbeatTimeout = time.Second
			conf.ElectionTimeout = time.Second
			conf.LeaderLeaseTimeout = time.Second
		}})
		defer c.close()
		l := settledLeader(c)
		applyN(t, l.raft, "w", 1)
		c.isolate(l)
		start := time.Now()
		err := l.raft.ReadIndex(100 * time.Millisecond).Error()
		require.ErrorIs(t, err, ErrReadTimeout)
		require.Equal(t, 100*time.Millisecond, time.Since(start))
	})
}

func TestReadIndexAfterShutdownReturnsErrRaftShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, clusterOptions{})
		l := c.leader()
		require.NoError(t, l.raft.Shutdown().Error())
		require.ErrorIs(t, l.raft.ReadIndex(time.Second).Error(), ErrRaftShutdown)
	})
}

func TestLeaseReadConfigIsValidated(t *testing.T) {
	conf := testConfig("a")
	conf.LeaseReads = true
	conf.MaxClockDrift = conf.HeartbeatTimeout
	require.ErrorContains(t, ValidateConfig(conf), "MaxClockDrift")
	conf.MaxClockDrift = -1
	require.ErrorContains(t, ValidateConfig(conf), "MaxClockDrift cannot be negative")
	conf.MaxClockDrift = 0
	require.NoError(t, ValidateConfig(conf))
}
