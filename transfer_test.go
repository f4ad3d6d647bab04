//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLeadershipTransferToChosenServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		old := c.leader()
		applyN(t, old.raft, "before", 50)
		target := c.others(old)[0]

		require.NoError(t, old.raft.LeadershipTransferToServer(target.id, target.addr).Error())
		newLeader := c.leader()
		require.Equal(t, target.id, newLeader.id, "leadership went to %s, asked for %s", newLeader.id, target.id)
		require.NotEqual(t, Leader, old.raft.State())

		applyN(t, newLeader.raft, "after", 50)
		c.waitApplied(100)
		c.requireSameFSMs()
	})
}

func TestLeadershipTransferToSelfIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		err := leader.raft.LeadershipTransferToServer(leader.id, leader.addr).Error()
		require.EqualError(t, err, "cannot transfer leadership to itself")
	})
}

func TestLeadershipTransferTimesOutWhenTargetUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		target := c.others(leader)[0]
		leader.trans.Disconnect(target.addr)
		// The target falls behind, so the transfer waits for a catch-up
		// that cannot happen.
		applyN(t, leader.raft, "behind", 10)
		start := time.Now()
		err := leader.raft.LeadershipTransferToServer(target.id, target.addr).Error()
		require.EqualError(t, err, "leadership transfer timeout")
		require.LessOrEqual(t, time.Since(start), 2*leader.conf.ElectionTimeout)
		// Applies are taken again once the transfer has failed.
		require.NoError(t, leader.raft.Apply([]byte("x"), time.Second).Error())
	})
}

// A transfer to a follower that was unreachable for a while succeeds at
// once: the transfer cuts short the replicator's back-off (up to 10.24s),
// which would otherwise outlast the transfer's ElectionTimeout.
func TestTransferToARecentlyUnreachableTargetCutsItsBackoffShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		l := settledLeader(c)
		target := c.others(l)[0]
		c.isolate(target)
		for range 30 {
			applyN(t, l.raft, "while-away", 1)
			time.Sleep(time.Second)
		}
		c.fullyConnect()
		c.waitFor(time.Second, "the target to hear from the leader", func() bool {
			_, id := target.raft.LeaderWithID()
			return id == l.id
		})
		require.NoError(t, l.raft.LeadershipTransferToServer(target.id, target.addr).Error())
		require.Equal(t, target, c.leader())
	})
}
