//go:build go1.25

package raft

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// minElections is how many leaderships each election safety case must see.
const minElections = 200

func TestElectionSafetyAtMostOneLeaderPerTerm(t *testing.T) {
	cases := []struct {
		name            string
		nodes           int
		preVoteDisabled bool
		// restarts lets rounds crash and restart a node, so that votes
		// and terms must survive on the stable store.
		restarts bool
	}{
		{name: "3nodes", nodes: 3},
		{name: "5nodes", nodes: 5},
		{name: "3nodes-restarts", nodes: 3, restarts: true},
		{name: "5nodes-prevote-disabled", nodes: 5, preVoteDisabled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(testSeed(t), 0))
				// Random latency lets elections overlap: candidates of the
				// same term, split votes, votes crossing a new leader's
				// first heartbeats.
				maxLatency := 10 * time.Millisecond
				c, _ := newFaultyCluster(t, tc.nodes, maxLatency, func(conf *Config) {
					conf.PreVoteDisabled = tc.preVoteDisabled
				})
				defer c.close()
				recorder := newLeaderRecorder()
				for _, node := range c.nodes {
					recorder.watch(node)
				}
				electionTimeout := c.nodes[0].conf.ElectionTimeout

				// Each round cuts the cluster anew and lets it run for half an
				// election timeout to four; a round may crash and restart a
				// node.
				const maxRounds = 20 * minElections
				rounds := 0
				for ; recorder.elections() < minElections && rounds < maxRounds; rounds++ {
					how := randomPartition(rng, c)
					if tc.restarts && rng.IntN(5) == 0 {
						node := c.nodes[rng.IntN(len(c.nodes))]
						c.shutdownNode(node)
						restartFaultyNode(c, node)
						recorder.watch(node)
						how += ", " + string(node.id) + " restarted"
					}
					time.Sleep(electionTimeout/2 + time.Duration(rng.Int64N(int64(7*electionTimeout/2))))
					recorder.requireNoViolation(t, fmt.Sprintf("round %d: %s", rounds, how))
				}
				require.GreaterOrEqual(t, recorder.elections(), minElections,
					"expected at least %d elections in %d rounds of random partitions", minElections, rounds)

				// Healed, the cluster still agrees on a single leader.
				c.fullyConnect()
				leader := settledLeader(c)
				applyN(t, leader.raft, "after", 3)
				recorder.requireNoViolation(t, "after healing")
				t.Logf("%d elections in %d rounds", recorder.elections(), rounds)
			})
		})
	}
}

// isolationTimeouts is how many election timeouts an isolated follower
// spends alone in the prevote tests.
const isolationTimeouts = 40

func TestPreVoteIsolatedFollowerRejoinsWithoutRaisingTermOrUnseatingLeader(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(clusterName(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, n, clusterOptions{})
				defer c.close()
				leader := c.leader()
				applyN(t, leader.raft, "before", 10)
				c.waitApplied(10)
				term := leader.raft.CurrentTerm()
				follower := c.others(leader)[0]

				c.isolate(follower)
				time.Sleep(isolationTimeouts * follower.conf.ElectionTimeout)
				require.Equal(t, term, follower.raft.CurrentTerm(),
					"an isolated follower with prevote must not raise its term")
				require.NotEqual(t, Leader, follower.raft.State())
				// The majority kept its leader meanwhile and still commits.
				applyN(t, leader.raft, "during", 10)

				c.fullyConnect()
				c.waitApplied(20)
				time.Sleep(isolationTimeouts * follower.conf.ElectionTimeout)
				require.Same(t, leader, settledLeader(c), "the leader must survive the follower's return")
				for _, node := range c.nodes {
					require.Equal(t, term, node.raft.CurrentTerm(),
						"%s: the term must not change when an isolated follower rejoins under prevote", node.id)
				}
				_, leaderID := follower.raft.LeaderWithID()
				require.Equal(t, leader.id, leaderID, "the rejoined follower follows the same leader")
				c.requireSameFSMs()
			})
		})
	}
}

func TestPreVoteDisabledIsolatedFollowerRaisesTermAndDisruptsOnRejoin(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(clusterName(n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, n, clusterOptions{tweak: func(conf *Config) {
					conf.PreVoteDisabled = true
				}})
				defer c.close()
				leader := c.leader()
				applyN(t, leader.raft, "before", 10)
				c.waitApplied(10)
				term := leader.raft.CurrentTerm()
				follower := c.others(leader)[0]

				c.isolate(follower)
				time.Sleep(isolationTimeouts * follower.conf.ElectionTimeout)
				isolatedTerm := follower.raft.CurrentTerm()
				require.Greater(t, isolatedTerm, term,
					"without prevote an isolated follower campaigns and raises its term")
				require.Equal(t, term, leader.raft.CurrentTerm(), "the majority keeps its term while the follower is away")

				c.fullyConnect()
				c.waitFor(10*time.Second, "every node to reach the isolated follower's term", func() bool {
					for _, node := range c.nodes {
						if node.raft.CurrentTerm() < isolatedTerm {
							return false
						}
					}
					return true
				})
				newLeader := settledLeader(c)
				require.GreaterOrEqual(t, newLeader.raft.CurrentTerm(), isolatedTerm,
					"the leader after the rejoin leads in a term at least the isolated follower's")
				applyN(t, newLeader.raft, "after", 10)
				c.waitApplied(20)
				c.requireSameFSMs()
			})
		})
	}
}

func clusterName(n int) string {
	return string(rune('0'+n)) + "nodes"
}
