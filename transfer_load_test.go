//go:build go1.25

package raft

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLeadershipTransferFiftyTimesUnderLoadLosesNoAckedWrite moves
// leadership around a three-node cluster fifty times while clients write,
// alternating between a chosen target and the automatic choice; once, the
// chosen target is held 1,000 entries behind when the transfer starts.
func TestLeadershipTransferFiftyTimesUnderLoadLosesNoAckedWrite(t *testing.T) {
	seed := testSeed(t)
	synctest.Test(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(seed, 0))
		var gates []*gatedTransport
		c := newTestCluster(t, 3, clusterOptions{wrapTransport: func(node *testNode) Transport {
			g := newGatedTransport(node.trans)
			gates = append(gates, g)
			return g
		}})
		defer c.close()
		c.leader()
		load := startLoad(c, "w", 3, c.nodes...)
		load.waitAcked(10)

		const transfers = 50
		for i := range transfers {
			old := settledLeader(c)
			var target *testNode
			var f Future
			switch {
			case i == transfers/2:
				target = c.others(old)[rng.IntN(2)]
				f = transferToLaggingTarget(t, c, gates[c.indexOf(old)], old, target)
			case i%2 == 0:
				target = c.others(old)[rng.IntN(2)]
				f = old.raft.LeadershipTransferToServer(target.id, target.addr)
			default:
				f = old.raft.LeadershipTransfer()
			}
			require.NoError(t, f.Error(), "transfer %d from %s", i, old.id)
			require.NotEqual(t, Leader, old.raft.State(), "transfer %d: %s still leads", i, old.id)
			next := c.leader()
			require.NotEqual(t, old.id, next.id, "transfer %d", i)
			if target != nil {
				require.Equal(t, target.id, next.id, "transfer %d went to %s, asked for %s", i, next.id, target.id)
			}
			load.waitAcked(5)
		}
		acked := load.halt()

		leader := c.leader()
		require.NoError(t, leader.raft.Barrier(time.Second).Error())
		c.requireAckedEverywhere(acked, c.nodes...)
		c.waitApplied(leader.fsm.len())
		c.requireSameFSMs()
		// A failed write is one of the answers that say "not taken" or
		// "outcome unknown", never anything else.
		allowed := map[string]bool{
			ErrNotLeader.Error():                    true,
			ErrLeadershipTransferInProgress.Error(): true,
			ErrLeadershipLost.Error():               true,
			ErrEnqueueTimeout.Error():               true,
		}
		t.Logf("%d writes acknowledged; failures: %v", len(acked), load.errorCounts())
		for msg, n := range load.errorCounts() {
			require.True(t, allowed[msg], "%d writes failed with %q", n, msg)
		}
	})
}

// transferToLaggingTarget holds back entries from old to target, writes
// 1,000 entries, and starts a transfer to target. While the transfer waits
// for target to catch up, writes and membership changes on old are refused
// with ErrLeadershipTransferInProgress; then target is let through.
func transferToLaggingTarget(t *testing.T, c *testCluster, gate *gatedTransport, old, target *testNode) Future {
	t.Helper()
	gate.hold(target.addr)
	applyN(t, old.raft, "lag", 1000)
	require.GreaterOrEqual(t, old.raft.LastIndex()-target.raft.LastIndex(), uint64(1000),
		"the target is not 1,000 entries behind")

	f := old.raft.LeadershipTransferToServer(target.id, target.addr)
	require.ErrorIs(t, old.raft.Apply([]byte("during-transfer"), time.Second).Error(), ErrLeadershipTransferInProgress)
	require.ErrorIs(t, old.raft.Barrier(time.Second).Error(), ErrLeadershipTransferInProgress)
	require.ErrorIs(t, old.raft.AddNonvoter("x", "addr-x", 0, time.Second).Error(), ErrLeadershipTransferInProgress)
	require.ErrorIs(t, old.raft.LeadershipTransfer().Error(), ErrLeadershipTransferInProgress)
	gate.release(target.addr)
	return f
}
