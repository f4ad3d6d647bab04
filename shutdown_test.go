//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Every test here runs in a synctest bubble, and synctest.Test fails if a
// goroutine of the bubble is still alive (blocked) when the test function
// returns: a node whose Shutdown left a replicator, the log writer, the FSM
// or snapshot runner, a transfer or the transport closer behind would fail
// the test there.

// TestShutdownStopsNodeAndClosesTransport shuts down a leader and the
// followers. Shutdown's future resolves, the state is Shutdown, the
// transport refuses RPCs with ErrTransportShutdown, and further Shutdown
// calls, concurrent or later, return futures that resolve.
func TestShutdownStopsNodeAndClosesTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "cmd", 10)

		order := append([]*testNode{leader}, c.others(leader)...)
		for _, node := range order {
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() { errs[i] = node.raft.Shutdown().Error() })
			}
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "concurrent Shutdown %d of %s", i, node.id)
			}
			require.Equal(t, Shutdown, node.raft.State(), "state of %s after Shutdown", node.id)
			require.NoError(t, node.raft.Shutdown().Error(), "second Shutdown of %s", node.id)

			var resp AppendEntriesResponse
			err := node.trans.AppendEntries("x", "addr-x", &AppendEntriesRequest{}, &resp)
			require.ErrorIs(t, err, ErrTransportShutdown, "AppendEntries on the transport of %s", node.id)
			var voteResp RequestVoteResponse
			err = node.trans.RequestVote("x", "addr-x", &RequestVoteRequest{}, &voteResp)
			require.ErrorIs(t, err, ErrTransportShutdown, "RequestVote on the transport of %s", node.id)
		}
	})
}

// TestShutdownClosesTransportWithoutWaiting checks our difference from
// hashicorp/raft: the transport closes once shutdown completes even when
// nobody calls Error on the future.
func TestShutdownClosesTransportWithoutWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		follower := c.others(leader)[0]
		follower.raft.Shutdown()
		// Wait until every other goroutine of the bubble is blocked: the
		// follower's goroutines have exited by then.
		synctest.Wait()
		var resp AppendEntriesResponse
		err := follower.trans.AppendEntries(leader.id, leader.addr, &AppendEntriesRequest{}, &resp)
		require.ErrorIs(t, err, ErrTransportShutdown, "transport of a node shut down without waiting")
	})
}

// TestCallsAfterShutdownReturnErrRaftShutdown calls every operation on a
// leader and on a follower that were shut down, with and without a
// buffered apply queue: each returns ErrRaftShutdown at once.
func TestCallsAfterShutdownReturnErrRaftShutdown(t *testing.T) {
	calls := []struct {
		name string
		call func(r *Raft) error
	}{
		{"Apply", func(r *Raft) error { return r.Apply([]byte("x"), time.Second).Error() }},
		{"Apply without timeout", func(r *Raft) error { return r.Apply([]byte("x"), 0).Error() }},
		{"ApplyLog", func(r *Raft) error { return r.ApplyLog(Log{Data: []byte("x")}, time.Second).Error() }},
		{"Barrier", func(r *Raft) error { return r.Barrier(time.Second).Error() }},
		{"VerifyLeader", func(r *Raft) error { return r.VerifyLeader().Error() }},
		{"AddVoter", func(r *Raft) error { return r.AddVoter("new", "addr-new", 0, time.Second).Error() }},
		{"AddNonvoter", func(r *Raft) error { return r.AddNonvoter("new", "addr-new", 0, time.Second).Error() }},
		{"DemoteVoter", func(r *Raft) error { return r.DemoteVoter("node1", 0, time.Second).Error() }},
		{"RemoveServer", func(r *Raft) error { return r.RemoveServer("node1", 0, time.Second).Error() }},
		{"Snapshot", func(r *Raft) error { return r.Snapshot().Error() }},
		{"LeadershipTransfer", func(r *Raft) error { return r.LeadershipTransfer().Error() }},
		{"LeadershipTransferToServer", func(r *Raft) error {
			return r.LeadershipTransferToServer("node9", "addr9").Error()
		}},
		{"BootstrapCluster", func(r *Raft) error {
			return r.BootstrapCluster(Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: "addr0"}}}).Error()
		}},
	}
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("BatchApplyCh=%v", batch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) { conf.BatchApplyCh = batch }})
				defer c.close()
				leader := c.leader()
				applyN(t, leader.raft, "cmd", 10)
				follower := c.others(leader)[0]
				c.shutdownNode(leader)
				c.shutdownNode(follower)

				for _, node := range []struct {
					role string
					r    *Raft
				}{{"leader", leader.raft}, {"follower", follower.raft}} {
					for _, tc := range calls {
						start := time.Now()
						err := tc.call(node.r)
						require.ErrorIs(t, err, ErrRaftShutdown, "%s on a %s after Shutdown", tc.name, node.role)
						require.Zero(t, time.Since(start), "%s on a %s after Shutdown waited", tc.name, node.role)
					}
				}
			})
		})
	}
}

// TestShutdownResolvesPendingFutures shuts down a leader that cannot commit
// (it is cut off) while applies, a barrier, a membership change and a
// leadership check wait on it: every one resolves with ErrRaftShutdown or
// ErrLeadershipLost instead of hanging.
func TestShutdownResolvesPendingFutures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "cmd", 10)
		c.isolate(leader)

		pending := map[string]Future{
			"VerifyLeader": leader.raft.VerifyLeader(),
			"Barrier":      leader.raft.Barrier(time.Second),
			"RemoveServer": leader.raft.RemoveServer(c.others(leader)[0].id, 0, time.Second),
		}
		for i := range 5 {
			pending[fmt.Sprintf("Apply %d", i)] = leader.raft.Apply([]byte(fmt.Sprintf("stuck-%d", i)), time.Second)
		}
		require.Equal(t, Leader, leader.raft.State(), "the leader must still lead when it is shut down")
		c.shutdownNode(leader)

		for name, f := range pending {
			err := f.Error()
			require.True(t, errors.Is(err, ErrRaftShutdown) || errors.Is(err, ErrLeadershipLost),
				"%s pending at Shutdown: want ErrRaftShutdown or ErrLeadershipLost, got %v", name, err)
		}
	})
}

// TestShutdownIsFinalEvenWhenAnElectionIsWonDuringIt covers a candidate
// that counts its winning vote just before Shutdown and acts on it just
// after: the node stays shut down and never names itself leader.
func TestShutdownIsFinalEvenWhenAnElectionIsWonDuringIt(t *testing.T) {
	rc := newReceiver(t, 1)
	r := rc.r
	r.setState(Candidate)
	const term = 2
	votes := make(chan voteResult, 2)
	votes <- voteResult{voterID: "node1", term: term, granted: true}
	require.True(t, r.awaitVotes("election", term, votes), "one granted vote of two others wins")

	r.Shutdown()
	r.becomeLeader(term)

	require.Equal(t, Shutdown, r.State(), "a node left Shutdown")
	_, leaderID := r.LeaderWithID()
	require.Empty(t, leaderID, "a shut-down node named a leader")
	r.setState(Follower)
	require.Equal(t, Shutdown, r.State(), "a node left Shutdown")
}
