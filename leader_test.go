//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLeaderStepsDownWithoutQuorumWithinLeaseTimeout cuts the leader off
// from a majority of voters (check-quorum). It must stop leading within
// LeaderLeaseTimeout plus one lease-check interval, fail leadership checks
// and the applies it could not commit, while the majority elects a new
// leader. Once the partition heals, the lost command is nowhere.
//
// The bound: every peer on the far side last answered at some time c no
// later than the partition at t0 (RPCs in flight complete at t0 in virtual
// time). A lease check at time t with t-c <= lease still counts that peer,
// so its maxDiff is at least t-c and the next check comes no later than
// max(c+lease, t+minCheckInterval). Hence some check runs in
// (c+lease, c+lease+minCheckInterval], sees every far peer past the lease,
// and steps down: no later than t0+lease+minCheckInterval. Conversely a
// peer counts while its last answer is within the lease, and heartbeats
// (every [HT/10, HT/5)) and replication (every [CT, 2CT)) refresh it at
// least every max(HT/5, 2CT), so the leader must not give up before
// t0+lease-max(HT/5, 2CT).
func TestLeaderStepsDownWithoutQuorumWithinLeaseTimeout(t *testing.T) {
	cases := []struct {
		name string
		size int
		// minority is how many followers stay with the leader.
		minority int
	}{
		{name: "3 nodes, leader alone", size: 3, minority: 0},
		{name: "5 nodes, leader with one follower", size: 5, minority: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, tc.size, clusterOptions{})
				defer c.close()
				old := c.leader()
				applyN(t, old.raft, "before", 5)
				c.waitApplied(5)
				oldTerm := old.raft.CurrentTerm()
				conf := old.raft.config()

				followers := c.others(old)
				minoritySide := append([]*testNode{old}, followers[:tc.minority]...)
				majoritySide := followers[tc.minority:]
				_, stateCh := stateObserver(old.raft)

				partitionedAt := time.Now()
				c.partition(minoritySide, majoritySide)
				verify := old.raft.VerifyLeader()
				lost := old.raft.Apply([]byte("lost"), time.Second)

				_, steppedDownAt := awaitObservation(t, stateCh, 5*time.Second, "the old leader leaving Leader",
					func(o Observation) bool { s, ok := o.Data.(RaftState); return ok && s != Leader })
				elapsed := steppedDownAt.Sub(partitionedAt)
				upper := conf.LeaderLeaseTimeout + minCheckInterval
				lower := conf.LeaderLeaseTimeout - max(conf.HeartbeatTimeout/5, 2*conf.CommitTimeout)
				require.LessOrEqual(t, elapsed, upper, "leader cut off from the majority kept leading too long")
				require.GreaterOrEqual(t, elapsed, lower, "leader stepped down before its lease could have run out")
				require.NotEqual(t, Leader, old.raft.State())

				// The check started while it still led could not reach a
				// quorum; it ends with leadership.
				require.ErrorIs(t, verify.Error(), ErrLeadershipLost, "VerifyLeader started before the step-down")
				require.ErrorIs(t, old.raft.VerifyLeader().Error(), ErrNotLeader, "VerifyLeader after the step-down")
				require.ErrorIs(t, lost.Error(), ErrLeadershipLost, "Apply appended by the cut-off leader")
				require.ErrorIs(t, old.raft.Apply([]byte("refused"), time.Second).Error(), ErrNotLeader,
					"Apply on the stepped-down leader")

				newLeader := c.leader(majoritySide...)
				require.Greater(t, newLeader.raft.CurrentTerm(), oldTerm, "new leader's term")
				applyN(t, newLeader.raft, "after", 5)

				c.fullyConnect()
				c.waitApplied(10)
				c.waitFor(5*time.Second, "the old leader to follow the new one", func() bool {
					_, id := old.raft.LeaderWithID()
					return id == newLeader.id
				})
				c.requireSameFSMs()
				for _, node := range c.nodes {
					require.NotContains(t, node.fsm.commands(), []byte("lost"),
						"%s applied a command its leader never committed", node.id)
				}
			})
		})
	}
}

// TestLeaderWhoseLogStoreFailsStepsDown makes the leader's StoreLogs fail.
// The leader must not count the unwritten entries as its own replica: it
// steps down, and the applies it took fail with ErrLeadershipLost (their
// outcome unknown) without a panic. In a single-node cluster nothing else
// holds them, so they must fail; in three nodes the followers may still
// commit them. Once the disk heals the cluster serves applies again and
// every FSM agrees.
func TestLeaderWhoseLogStoreFailsStepsDown(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, stores := newFaultCluster(t, size, clusterOptions{})
				defer c.close()
				leader := c.leader()
				applyN(t, leader.raft, "before", 5)
				_, stateCh := stateObserver(leader.raft)

				stores[c.indexOf(leader)].failOn("StoreLogs", errInjected)
				futures := make([]ApplyFuture, 10)
				for i := range futures {
					futures[i] = leader.raft.Apply([]byte(fmt.Sprintf("doomed-%d", i)), time.Second)
				}
				awaitObservation(t, stateCh, 5*time.Second, "the leader stepping down",
					func(o Observation) bool { s, ok := o.Data.(RaftState); return ok && s != Leader })
				// The first apply entered the log. Later ones may have
				// reached the node after it stepped down and never entered.
				if size == 1 {
					require.ErrorIs(t, futures[0].Error(), ErrLeadershipLost, "first apply on a leader that could not write it")
				}
				for i, f := range futures {
					err := f.Error()
					if size == 1 {
						require.Error(t, err, "apply %d succeeded though no node could store it", i)
					}
					if err != nil && !errors.Is(err, ErrLeadershipLost) {
						require.ErrorIs(t, err, ErrNotLeader, "apply %d: a failure is ErrLeadershipLost or, if it never entered the log, ErrNotLeader", i)
					}
				}

				stores[c.indexOf(leader)].failOn("StoreLogs", nil)
				newLeader := c.leader()
				applyN(t, newLeader.raft, "after", 5)
				committed := newLeader.fsm.len()
				c.waitApplied(committed)
				c.requireSameFSMs()
				commands := newLeader.fsm.commands()
				require.Contains(t, commands, []byte("after-4"))
				if size == 1 {
					for _, cmd := range commands {
						require.NotContains(t, string(cmd), "doomed", "a command the disk refused was applied")
					}
				}
			})
		})
	}
}

// TestLeaderChAndNotifyChReportLeadership checks that LeaderCh and NotifyCh
// receive true when a node starts leading and false when it stops, here
// TestLeaderCountsItselfOnlyOnceItsOwnWriteIsDurable: the leader writes its
// new entries beside replication (dissertation §10.2.1) and counts its own
// copy toward a commit only once that write is durable. With one follower
// cut off and the other holding the entry at once, the entry must stay
// uncommitted, and its Apply unanswered, for as long as the leader's own
// write takes.
func TestLeaderCountsItselfOnlyOnceItsOwnWriteIsDurable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, stores := newBatchStoreCluster(t, 3)
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "before", 3)
		follower := c.others(leader)[0]
		c.isolate(c.others(leader)[1])
		const write = 50 * time.Millisecond
		stores[leader.id].setDelay(write)

		start := time.Now()
		future := leader.raft.Apply([]byte("waits-for-the-leader"), time.Second)
		time.Sleep(write / 2)
		synctest.Wait()
		entry := leader.raft.LastIndex()
		require.Equal(t, entry, follower.raft.LastIndex(), "the follower holds the entry")
		require.Less(t, leader.raft.CommitIndex(), entry,
			"committed on one follower's copy while the leader's own write was not durable")
		require.NoError(t, future.Error())
		require.Equal(t, entry, future.Index())
		require.GreaterOrEqual(t, time.Since(start), write, "answered before the leader's write was durable")
	})
}

// because it lost its quorum, and that a leader shut down tells NotifyCh.
func TestLeaderChAndNotifyChReportLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		notify := map[ServerID]chan bool{}
		c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) {
			ch := make(chan bool, 8)
			notify[conf.LocalID] = ch
			conf.NotifyCh = ch
		}})
		defer c.close()
		old := c.leader()

		receive := func(ch <-chan bool, what string) bool {
			t.Helper()
			select {
			case v := <-ch:
				return v
			case <-time.After(time.Second):
				t.Fatalf("nothing on %s", what)
				return false
			}
		}
		require.True(t, receive(old.raft.LeaderCh(), "LeaderCh of the new leader"), "LeaderCh of the new leader")
		require.True(t, receive(notify[old.id], "NotifyCh of the new leader"), "NotifyCh of the new leader")

		c.isolate(old)
		require.False(t, receive(old.raft.LeaderCh(), "LeaderCh of the cut-off leader"), "LeaderCh of the cut-off leader")
		require.False(t, receive(notify[old.id], "NotifyCh of the cut-off leader"), "NotifyCh of the cut-off leader")

		next := c.leader(c.others(old)...)
		require.True(t, receive(notify[next.id], "NotifyCh of the second leader"), "NotifyCh of the second leader")
		c.shutdownNode(next)
		require.False(t, receive(notify[next.id], "NotifyCh of a leader shut down"), "NotifyCh of a leader shut down")
	})
}

// TestObserverSeesStateAndLeaderChanges registers observers before the
// first election and checks what they see: the winner goes through
// Candidate to Leader and names itself, the others name it; when the leader
// is cut off it becomes a follower with no leader. A deregistered observer
// sees nothing more.
func TestObserverSeesStateAndLeaderChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		observers := map[ServerID]*Observer{}
		channels := map[ServerID]chan Observation{}
		for _, node := range c.nodes {
			observers[node.id], channels[node.id] = stateObserver(node.raft)
		}
		leader := c.leader()
		// Let every follower hear from the leader.
		require.NoError(t, leader.raft.Barrier(time.Second).Error())
		c.waitFor(time.Second, "followers to learn the leader", func() bool {
			for _, node := range c.others(leader) {
				if _, id := node.raft.LeaderWithID(); id != leader.id {
					return false
				}
			}
			return true
		})

		leaderSeen := drainObservations(channels[leader.id])
		require.Contains(t, leaderSeen, Candidate, "leader's observations: %v", leaderSeen)
		require.Contains(t, leaderSeen, Leader, "leader's observations: %v", leaderSeen)
		require.Equal(t, Leader, lastState(leaderSeen), "leader's last observed state: %v", leaderSeen)
		self := LeaderObservation{Leader: leader.addr, LeaderAddr: leader.addr, LeaderID: leader.id}
		require.Equal(t, self, lastLeader(leaderSeen), "leader's last observed leader: %v", leaderSeen)
		for _, node := range c.others(leader) {
			seen := drainObservations(channels[node.id])
			require.Equal(t, self, lastLeader(seen), "%s's last observed leader: %v", node.id, seen)
			require.Zero(t, observers[node.id].GetNumDropped())
			require.GreaterOrEqual(t, observers[node.id].GetNumObserved(), uint64(len(seen)))
		}

		c.isolate(leader)
		awaitObservation(t, channels[leader.id], 5*time.Second, "the cut-off leader becoming follower",
			func(o Observation) bool { return o.Data == Follower })
		c.waitFor(time.Second, "the cut-off leader to forget itself", func() bool {
			_, id := leader.raft.LeaderWithID()
			return id == ""
		})
		seen := drainObservations(channels[leader.id])
		require.Contains(t, seen, LeaderObservation{}, "cut-off leader's observations after the step-down: %v", seen)

		follower := c.others(leader)[0]
		leader.raft.DeregisterObserver(observers[leader.id])
		follower.raft.DeregisterObserver(observers[follower.id])
		drainObservations(channels[follower.id])
		c.leader(c.others(leader)...)
		c.fullyConnect()
		c.waitFor(5*time.Second, "the old leader to follow again", func() bool {
			_, id := leader.raft.LeaderWithID()
			return id != ""
		})
		require.Empty(t, drainObservations(channels[leader.id]), "observer deregistered from the old leader")
		require.Empty(t, drainObservations(channels[follower.id]), "observer deregistered from a follower")
	})
}

func lastState(seen []interface{}) RaftState {
	state := RaftState(255)
	for _, o := range seen {
		if s, ok := o.(RaftState); ok {
			state = s
		}
	}
	return state
}

func lastLeader(seen []interface{}) LeaderObservation {
	var leader LeaderObservation
	for _, o := range seen {
		if l, ok := o.(LeaderObservation); ok {
			leader = l
		}
	}
	return leader
}

// TestStatsReportEveryKey checks every key of docs/COMPATIBILITY.md §6 on a leader, a
// follower and a node that never joined a cluster.
func TestStatsReportEveryKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "cmd", 20)
		c.waitApplied(20)
		require.NoError(t, leader.raft.Barrier(time.Second).Error())
		follower := c.others(leader)[0]
		c.waitFor(time.Second, "the follower to apply the barrier", func() bool {
			return follower.raft.AppliedIndex() == leader.raft.AppliedIndex()
		})

		lone := newTestCluster(t, 1, clusterOptions{noBootstrap: true})
		defer lone.close()

		keys := []string{
			"state", "term", "last_log_index", "last_log_term", "commit_index", "applied_index",
			"fsm_pending", "last_snapshot_index", "last_snapshot_term",
			"protocol_version", "protocol_version_min", "protocol_version_max",
			"snapshot_version_min", "snapshot_version_max",
			"latest_configuration_index", "latest_configuration", "num_peers", "last_contact",
		}
		wantConfiguration := "[{Suffrage:Voter ID:node0 Address:addr0} {Suffrage:Voter ID:node1 Address:addr1} {Suffrage:Voter ID:node2 Address:addr2}]"
		cases := []struct {
			name  string
			node  *testNode
			state string
			// joined is whether the node is a voter of the cluster.
			joined bool
		}{
			{name: "leader", node: leader, state: "Leader", joined: true},
			{name: "follower", node: follower, state: "Follower", joined: true},
			{name: "never bootstrapped", node: lone.nodes[0], state: "Follower"},
		}
		for _, tc := range cases {
			stats := tc.node.raft.Stats()
			for _, key := range keys {
				require.Contains(t, stats, key, "%s stats", tc.name)
			}
			require.Len(t, stats, len(keys), "%s stats hold keys outside the spec: %v", tc.name, stats)
			uintOf := func(key string) uint64 {
				v, err := strconv.ParseUint(stats[key], 10, 64)
				require.NoError(t, err, "%s stat %s=%q", tc.name, key, stats[key])
				return v
			}
			r := tc.node.raft
			require.Equal(t, tc.state, stats["state"], tc.name)
			require.Equal(t, r.CurrentTerm(), uintOf("term"), tc.name)
			require.Equal(t, r.LastIndex(), uintOf("last_log_index"), tc.name)
			require.Equal(t, r.CommitIndex(), uintOf("commit_index"), tc.name)
			require.Equal(t, r.AppliedIndex(), uintOf("applied_index"), tc.name)
			require.Equal(t, uint64(0), uintOf("fsm_pending"), "%s has nothing left for its FSM", tc.name)
			require.Equal(t, uint64(0), uintOf("last_snapshot_index"), tc.name)
			require.Equal(t, uint64(0), uintOf("last_snapshot_term"), tc.name)
			require.Equal(t, "3", stats["protocol_version"], tc.name)
			require.Equal(t, "0", stats["protocol_version_min"], tc.name)
			require.Equal(t, "3", stats["protocol_version_max"], tc.name)
			require.Equal(t, "0", stats["snapshot_version_min"], tc.name)
			require.Equal(t, "1", stats["snapshot_version_max"], tc.name)
			require.Equal(t, strconv.FormatUint(r.GetConfiguration().Index(), 10), stats["latest_configuration_index"], tc.name)
			if tc.joined {
				require.Equal(t, uint64(leader.raft.CurrentTerm()), uintOf("last_log_term"), tc.name)
				require.Equal(t, uint64(23), uintOf("last_log_index"), "%s: bootstrap, no-op, 20 commands, barrier", tc.name)
				require.Equal(t, uint64(23), uintOf("applied_index"), tc.name)
				require.Equal(t, "1", stats["latest_configuration_index"], "%s: the bootstrap entry", tc.name)
				require.Equal(t, wantConfiguration, stats["latest_configuration"], tc.name)
				require.Equal(t, "2", stats["num_peers"], tc.name)
			} else {
				require.Equal(t, uint64(0), uintOf("term"), tc.name)
				require.Equal(t, uint64(0), uintOf("last_log_index"), tc.name)
				require.Equal(t, "0", stats["latest_configuration_index"], tc.name)
				require.Equal(t, "[]", stats["latest_configuration"], tc.name)
				require.Equal(t, "0", stats["num_peers"], tc.name)
			}
		}
		require.Equal(t, "0", leader.raft.Stats()["last_contact"], "leader")
		require.Equal(t, "never", lone.nodes[0].raft.Stats()["last_contact"], "never bootstrapped")
		sinceContact, err := time.ParseDuration(follower.raft.Stats()["last_contact"])
		require.NoError(t, err, "follower's last_contact must be a duration")
		require.Less(t, sinceContact, follower.conf.HeartbeatTimeout, "follower of a live leader")
	})
}

// TestRemovedPeerReplicatorStopsWithLeadership removes a follower while the
// leader's AppendEntries to it is under way (slow link), then ends the
// leader's term by shutting it down. The removed peer's replicator must be
// finished before the term's state is torn down: its late answer must not
// reach a torn-down (or the next term's) leader state. Today the node
// panics with a nil pointer in commitment.match (see the report).
func TestRemovedPeerReplicatorStopsWithLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := newFaultClusterWithTransports(t, 3, clusterOptions{})
		c := fc.testCluster
		defer c.close()
		leader := c.leader()
		applyN(t, leader.raft, "before", 3)
		removed := c.others(leader)[0]
		fc.transports[c.indexOf(leader)].slowTo(removed.addr, 200*time.Millisecond)
		// Let the replicator start a slow send.
		time.Sleep(20 * time.Millisecond)

		require.NoError(t, leader.raft.RemoveServer(removed.id, 0, time.Second).Error())
		c.shutdownNode(leader)
		// The slow send is answered now, after the term ended.
		time.Sleep(time.Second)
		require.Equal(t, Shutdown, leader.raft.State())
	})
}
