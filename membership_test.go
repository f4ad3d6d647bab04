//go:build go1.25

package raft

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Cluster tests of membership changes, in virtual time. Clients write
// through the leader while the membership changes; every write they saw
// acknowledged must end up, exactly once, on every node still in the
// cluster.

func TestGrowingOneToFiveVotersAndShrinkingToThreeUnderLoadKeepsEveryAckedWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMembershipCluster(t, 1, 4, clusterOptions{})
		defer c.close()
		c.leader(c.nodes[0])
		load := startLoad(c, "w", 3, c.nodes...)
		load.waitAcked(20)

		for size := 2; size <= 5; size++ {
			voters := c.nodes[:size-1]
			joining := c.nodes[size-1]
			leader := c.leader(voters...)
			f := leader.raft.AddVoter(joining.id, joining.addr, 0, time.Second)
			require.NoError(t, f.Error(), "AddVoter %s", joining.id)
			require.Greater(t, f.Index(), uint64(1))
			load.waitAcked(20)
			if size == 3 || size == 5 {
				c.requireConfigurationsAgree(configurationOf(Voter, c.nodes[:size]...), c.nodes[:size]...)
			}
		}

		// Shrink back to three, removing two followers.
		for range 2 {
			leader := c.leader()
			var victim *testNode
			for _, node := range c.nodes {
				if node != leader && hasVote(leader.raft.GetConfiguration().Configuration(), node.id) {
					victim = node
					break
				}
			}
			require.NoError(t, leader.raft.RemoveServer(victim.id, 0, time.Second).Error(), "RemoveServer %s", victim.id)
			load.waitAcked(20)
		}
		acked := load.halt()

		leader := c.leader()
		configuration := leader.raft.GetConfiguration().Configuration()
		require.Len(t, configuration.Servers, 3)
		var remaining []*testNode
		for _, node := range c.nodes {
			if inConfiguration(configuration, node.id) {
				remaining = append(remaining, node)
			}
		}
		c.requireConfigurationsAgree(configurationOf(Voter, remaining...), remaining...)
		c.requireAckedEverywhere(acked, remaining...)
		c.requireSameFSMs(remaining...)
	})
}

func TestLeaderRemovedUnderLoadStepsDownAfterTheChangeCommits(t *testing.T) {
	cases := []struct {
		name             string
		shutdownOnRemove bool
		demote           bool
	}{
		{"removed, steps down", false, false},
		{"removed, ShutdownOnRemove", true, false},
		{"demoted, steps down", false, true},
		{"demoted, ShutdownOnRemove", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) {
					conf.ShutdownOnRemove = tc.shutdownOnRemove
				}})
				defer c.close()
				old := c.leader()
				load := startLoad(c, "w", 3, c.nodes...)
				load.waitAcked(20)

				var f IndexFuture
				if tc.demote {
					f = old.raft.DemoteVoter(old.id, 0, time.Second)
				} else {
					f = old.raft.RemoveServer(old.id, 0, time.Second)
				}
				// The future of a leader removing itself always resolves,
				// and with success: the change committed.
				require.NoError(t, f.Error(), "the leader's own removal")
				require.GreaterOrEqual(t, old.raft.CommitIndex(), f.Index(),
					"the old leader stepped down before its removal committed")

				if tc.shutdownOnRemove {
					c.waitFor(5*time.Second, "the removed leader to shut down", func() bool {
						return old.raft.State() == Shutdown
					})
					require.NoError(t, old.raft.Shutdown().Error(), "a second Shutdown of a removed leader")
				} else {
					c.waitFor(5*time.Second, "the removed leader to step down", func() bool {
						return old.raft.State() == Follower
					})
				}
				err := old.raft.Apply([]byte("late"), time.Second).Error()
				require.True(t, isOneOf(err, ErrNotLeader, ErrRaftShutdown), "Apply on the removed leader: %v", err)

				others := c.others(old)
				if tc.shutdownOnRemove {
					others = nil
					for _, node := range c.nodes {
						if node != old {
							others = append(others, node)
						}
					}
				}
				newLeader := c.leader(others...)
				require.NotEqual(t, old.id, newLeader.id)
				load.waitAcked(20)
				acked := load.halt()

				for _, node := range others {
					require.GreaterOrEqual(t, node.raft.CommitIndex(), f.Index())
				}
				want := configurationOf(Voter, others...)
				if tc.demote {
					want = servers(Configuration{Servers: append(want, Server{Suffrage: Nonvoter, ID: old.id, Address: old.addr})})
				}
				c.requireConfigurationsAgree(want, others...)
				c.requireAckedEverywhere(acked, others...)
				c.requireSameFSMs(others...)
				if !tc.shutdownOnRemove {
					// The old leader never campaigns again: still a follower
					// after many election timeouts.
					time.Sleep(20 * old.conf.ElectionTimeout)
					require.Equal(t, Follower, old.raft.State())
					require.Equal(t, newLeader.id, c.leader(others...).id, "the old leader disrupted the new one")
				}
			})
		})
	}
}

func TestRemovingAPartitionedFollowerCommitsWithoutItAndItCannotDisruptLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "before", 10)
		cutOff := c.others(leader)[0]
		c.isolate(cutOff)
		remaining := c.others(cutOff)

		load := startLoad(c, "w", 2, remaining...)
		load.waitAcked(10)
		require.NoError(t, leader.raft.RemoveServer(cutOff.id, 0, time.Second).Error())
		load.waitAcked(10)
		c.requireConfigurationsAgree(configurationOf(Voter, remaining...), remaining...)

		// Heal: the removed server never learnt of its removal and will
		// campaign, but nobody listens to a server outside their
		// configuration, so the leader and its term survive.
		term := leader.raft.CurrentTerm()
		c.fullyConnect()
		time.Sleep(40 * cutOff.conf.ElectionTimeout)
		require.Equal(t, Leader, leader.raft.State(), "the removed server deposed the leader")
		require.Equal(t, term, leader.raft.CurrentTerm(), "the removed server pushed the term up")

		acked := load.halt()
		c.requireAckedEverywhere(acked, remaining...)
		c.requireSameFSMs(remaining...)
	})
}

func TestNonvoterCatchesUpAndIsPromotedWithAddVoter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMembershipCluster(t, 3, 1, clusterOptions{})
		defer c.close()
		voters, spare := c.nodes[:3], c.nodes[3]
		leader := c.leader(voters...)
		applyN(t, leader.raft, "before", 200)
		load := startLoad(c, "w", 2, voters...)

		add := leader.raft.AddNonvoter(spare.id, spare.addr, 0, time.Second)
		require.NoError(t, add.Error())
		want := servers(Configuration{Servers: append(configurationOf(Voter, voters...),
			Server{Suffrage: Nonvoter, ID: spare.id, Address: spare.addr})})
		c.requireConfigurationsAgree(want, c.nodes...)
		c.waitApplied(200, spare)
		c.waitFor(5*time.Second, "the nonvoter to catch up with the leader's commit index", func() bool {
			return spare.raft.AppliedIndex() >= add.Index()
		})
		require.Equal(t, Follower, spare.raft.State())

		promote := leader.raft.AddVoter(spare.id, spare.addr, add.Index(), time.Second)
		require.NoError(t, promote.Error())
		c.requireConfigurationsAgree(configurationOf(Voter, c.nodes...), c.nodes...)

		// With four voters the quorum is three: with one original follower
		// cut off, writes commit only because the promoted server counts.
		cutOff := c.others(leader)[0]
		if cutOff == spare {
			cutOff = c.others(leader)[1]
		}
		c.isolate(cutOff)
		applyN(t, leader.raft, "after-promotion", 20)
		c.fullyConnect()

		acked := load.halt()
		c.requireAckedEverywhere(acked, c.nodes...)
		require.NoError(t, leader.raft.Barrier(time.Second).Error())
		c.waitApplied(leader.fsm.len(), c.nodes...)
		c.requireSameFSMs()
	})
}

func TestDemotedVoterKeepsTheLogButNeverCampaigns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		demoted := c.others(leader)[0]
		require.NoError(t, leader.raft.DemoteVoter(demoted.id, 0, time.Second).Error())
		want := servers(Configuration{Servers: append(configurationOf(Voter, c.others(demoted)...),
			Server{Suffrage: Nonvoter, ID: demoted.id, Address: demoted.addr})})
		c.requireConfigurationsAgree(want, c.nodes...)

		applyN(t, leader.raft, "after-demotion", 30)
		c.waitApplied(30)
		c.requireSameFSMs()

		// Cut off, a nonvoter waits for a leader instead of campaigning.
		_, observations := stateObserver(demoted.raft)
		term := demoted.raft.CurrentTerm()
		c.isolate(demoted)
		time.Sleep(40 * demoted.conf.ElectionTimeout)
		require.Equal(t, Follower, demoted.raft.State())
		require.Equal(t, term, demoted.raft.CurrentTerm())
		for _, o := range drainObservations(observations) {
			require.NotEqual(t, Candidate, o, "the demoted server campaigned")
		}
	})
}

func TestConfigurationChangeWithStalePrevIndexIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMembershipCluster(t, 3, 1, clusterOptions{})
		defer c.close()
		leader := c.leader(c.nodes[:3]...)
		spare := c.nodes[3]
		stale := leader.raft.GetConfiguration().Index()
		require.Positive(t, stale)

		add := leader.raft.AddNonvoter(spare.id, spare.addr, stale, time.Second)
		require.NoError(t, add.Error(), "prevIndex equal to the latest index is taken")
		require.Equal(t, add.Index(), leader.raft.GetConfiguration().Index())
		before := configurationEntries(t, leader)

		calls := []struct {
			name string
			call func() IndexFuture
		}{
			{"AddVoter", func() IndexFuture { return leader.raft.AddVoter(spare.id, spare.addr, stale, time.Second) }},
			{"AddNonvoter", func() IndexFuture { return leader.raft.AddNonvoter("other", "addr-other", stale, time.Second) }},
			{"DemoteVoter", func() IndexFuture { return leader.raft.DemoteVoter(c.nodes[1].id, stale, time.Second) }},
			{"RemoveServer", func() IndexFuture { return leader.raft.RemoveServer(spare.id, stale, time.Second) }},
		}
		for _, tc := range calls {
			err := tc.call().Error()
			require.EqualError(t, err, fmt.Sprintf("configuration changed since %d (latest is %d)", stale, add.Index()), tc.name)
		}
		require.Equal(t, before, configurationEntries(t, leader), "a refused change reached the log")
		require.Equal(t, add.Index(), leader.raft.GetConfiguration().Index())
	})
}

func TestSecondConfigurationChangeWaitsUntilTheFirstCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		raftOf := map[ServerID]*atomic.Pointer[Raft]{}
		var guards []*configGuardStore
		var gates []*gatedTransport
		c := newMembershipCluster(t, 3, 2, clusterOptions{
			wrapStore: func(node *testNode) raftStore {
				p := &atomic.Pointer[Raft]{}
				raftOf[node.id] = p
				g := &configGuardStore{InmemStore: node.store, raft: p}
				guards = append(guards, g)
				return g
			},
			wrapTransport: func(node *testNode) Transport {
				g := newGatedTransport(node.trans)
				gates = append(gates, g)
				return g
			},
		})
		defer c.close()
		for _, node := range c.nodes {
			raftOf[node.id].Store(node.raft)
		}
		voters := c.nodes[:3]
		leader := c.leader(voters...)
		applyN(t, leader.raft, "before", 5)
		leaderGate := gates[c.indexOf(leader)]

		// Hold back every entry from the leader: heartbeats still flow, so it
		// keeps leading, but nothing new commits.
		for _, node := range c.others(leader) {
			leaderGate.hold(node.addr)
		}
		first := leader.raft.AddNonvoter(c.nodes[3].id, c.nodes[3].addr, 0, time.Second)
		commitBefore := leader.raft.CommitIndex()
		second := leader.raft.AddNonvoter(c.nodes[4].id, c.nodes[4].addr, 0, 5*leader.conf.HeartbeatTimeout)
		// Taken, the second change would wait for a commit that the gate
		// holds back: bound the wait so that the test fails rather than hangs.
		secondErr := make(chan error, 1)
		go func() { secondErr <- second.Error() }()
		select {
		case err := <-secondErr:
			require.ErrorIs(t, err, ErrEnqueueTimeout, "a change was taken while another was uncommitted")
		case <-time.After(10 * leader.conf.HeartbeatTimeout):
			// c.close opens the gates, so the cluster winds down.
			t.Fatal("a change was taken while another was uncommitted: it waits for its commit instead of timing out")
		}
		entries := configurationEntries(t, leader)
		require.Greater(t, entries[len(entries)-1], commitBefore, "the first change is in the log, uncommitted")
		require.Less(t, entries[len(entries)-2], commitBefore+1, "only one configuration entry is uncommitted")

		// A change without a timeout waits its turn.
		waiting := make(chan IndexFuture, 1)
		go func() { waiting <- leader.raft.AddNonvoter(c.nodes[4].id, c.nodes[4].addr, 0, 0) }()
		synctest.Wait()
		for _, node := range c.others(leader) {
			leaderGate.release(node.addr)
		}
		require.NoError(t, first.Error())
		third := <-waiting
		require.NoError(t, third.Error())
		require.Greater(t, third.Index(), first.Index())

		want := servers(Configuration{Servers: append(configurationOf(Voter, voters...),
			configurationOf(Nonvoter, c.nodes[3:]...)...)})
		c.requireConfigurationsAgree(want, c.nodes...)
		for _, g := range guards {
			g.requireNoViolation(t)
		}
	})
}

func TestNonvotersNeverVoteOrCampaign(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMembershipCluster(t, 3, 1, clusterOptions{})
		defer c.close()
		voters, nonvoter := c.nodes[:3], c.nodes[3]
		leader := c.leader(voters...)
		require.NoError(t, leader.raft.AddNonvoter(nonvoter.id, nonvoter.addr, 0, time.Second).Error())
		applyN(t, leader.raft, "w", 10)
		c.waitApplied(10, nonvoter)

		// Record every state the nonvoter takes and every vote request it
		// receives.
		var candidacies, voteRequests atomic.Int32
		nonvoter.raft.RegisterObserver(NewObserver(nil, false, func(o *Observation) bool {
			switch d := o.Data.(type) {
			case RaftState:
				if d == Candidate {
					candidacies.Add(1)
				}
			case RequestVoteRequest, RequestPreVoteRequest:
				voteRequests.Add(1)
			}
			return false
		}))

		// An election among the voters passes the nonvoter by.
		c.shutdownNode(leader)
		var alive []*testNode
		for _, node := range voters {
			if node != leader {
				alive = append(alive, node)
			}
		}
		second := c.leader(alive...)
		applyN(t, second.raft, "after", 10)
		c.waitApplied(20, nonvoter)

		// With no quorum left, the voter campaigns in vain; the nonvoter
		// does not even try.
		c.shutdownNode(second)
		term := nonvoter.raft.CurrentTerm()
		time.Sleep(40 * nonvoter.conf.ElectionTimeout)
		require.Zero(t, candidacies.Load(), "the nonvoter campaigned")
		require.Zero(t, voteRequests.Load(), "a candidate asked the nonvoter for its vote")
		require.Equal(t, Follower, nonvoter.raft.State())
		require.Equal(t, term, nonvoter.raft.CurrentTerm(), "the nonvoter moved the term")
	})
}

func TestReloadConfigWithInvalidValuesKeepsTheOldValuesInForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()

		// Slow every node down first, so that the values in force show in
		// how long an election takes.
		slow := leader.raft.ReloadableConfig()
		slow.HeartbeatTimeout = 200 * time.Millisecond
		slow.ElectionTimeout = 200 * time.Millisecond
		// Followers first: a follower still on the fast values would time
		// out on a leader that already heartbeats at the slow pace.
		for _, node := range append(c.others(leader), leader) {
			require.NoError(t, node.raft.ReloadConfig(slow))
		}

		invalid := []struct {
			name    string
			spoil   func(rc *ReloadableConfig)
			wantErr string
		}{
			{"heartbeat too low", func(rc *ReloadableConfig) { rc.HeartbeatTimeout = time.Millisecond }, "HeartbeatTimeout is too low"},
			{"election too low", func(rc *ReloadableConfig) { rc.ElectionTimeout = time.Millisecond }, "ElectionTimeout is too low"},
			{"election below heartbeat", func(rc *ReloadableConfig) { rc.ElectionTimeout = 100 * time.Millisecond },
				"ElectionTimeout (100ms) must be equal or greater than Heartbeat Timeout (200ms)"},
			{"heartbeat below lease", func(rc *ReloadableConfig) {
				rc.HeartbeatTimeout, rc.ElectionTimeout = 10*time.Millisecond, 10*time.Millisecond
			}, "LeaderLeaseTimeout (50ms) cannot be larger than heartbeat timeout (10ms)"},
			{"snapshot interval too low", func(rc *ReloadableConfig) { rc.SnapshotInterval = time.Millisecond }, "SnapshotInterval is too low"},
		}
		for _, tc := range invalid {
			for _, node := range c.nodes {
				rc := slow
				tc.spoil(&rc)
				require.EqualError(t, node.raft.ReloadConfig(rc), tc.wantErr, tc.name)
				require.Equal(t, slow, node.raft.ReloadableConfig(), "%s: a refused reload changed %s", tc.name, node.id)
			}
		}

		// The slow values rule: no follower campaigns before a heartbeat
		// timeout has passed since it last heard from the leader, which
		// heartbeats at least every HeartbeatTimeout/5.
		applyN(t, leader.raft, "w", 10)
		c.shutdownNode(leader)
		stopped := time.Now()
		next := c.leader(c.others(leader)...)
		require.GreaterOrEqual(t, time.Since(stopped), slow.HeartbeatTimeout-slow.HeartbeatTimeout/5,
			"a follower campaigned sooner than the heartbeat timeout in force")
		applyN(t, next.raft, "after", 10)
	})
}
