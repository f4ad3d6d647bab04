//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClusterElectsLeaderAndReplicates(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(string(rune('0'+n))+"nodes", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newTestCluster(t, n, clusterOptions{})
				defer c.close()
				leader := c.leader()
				applyN(t, leader.raft, "cmd", 100)
				c.waitApplied(100)
				c.requireSameFSMs()
				require.NoError(t, leader.raft.Barrier(time.Second).Error())
				require.NoError(t, leader.raft.VerifyLeader().Error())
			})
		})
	}
}
