//go:build go1.25

package raft

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// slowApplyFSM is a testFSM whose Apply takes a millisecond of virtual time,
// so the FSM runner lags behind the commit index.
type slowApplyFSM struct{ testFSM }

func (f *slowApplyFSM) Apply(l *Log) interface{} {
	time.Sleep(time.Millisecond)
	return f.testFSM.Apply(l)
}

// A leader that removes itself with ShutdownOnRemove answers the
// RemoveServer future with the change's outcome (nil), not ErrRaftShutdown,
// even when its FSM is still busy with earlier entries as the change commits.
func TestRemovedLeaderWithShutdownOnRemoveAnswersItsRemoveFuture(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{tweak: func(conf *Config) { conf.ShutdownOnRemove = true }})
		defer c.close()
		old := c.leader()
		// Restart the leader with an FSM that applies slowly.
		c.shutdownNode(old)
		slow := &slowApplyFSM{}
		_, old.trans = NewInmemTransport(old.addr)
		c.fullyConnect()
		old.runStore, old.runTrans = old.store, old.trans
		old.fsm = &slow.testFSM
		c.startWith(old, slow)

		l := c.leader()
		if l != old {
			require.NoError(t, l.raft.LeadershipTransferToServer(old.id, old.addr).Error())
			require.Equal(t, old, c.leader())
		}
		base := old.raft.LastIndex()
		var applies []ApplyFuture
		for i := range 200 {
			applies = append(applies, old.raft.Apply([]byte(fmt.Sprintf("x-%d", i)), 0))
		}
		// Wait until the entries are committed but not yet applied.
		c.waitFor(time.Second, "commands committed", func() bool {
			return old.raft.getCommitIndex() >= base+200
		})
		require.Less(t, old.raft.AppliedIndex(), old.raft.getCommitIndex(), "the FSM should still be behind")
		remove := old.raft.RemoveServer(old.id, 0, 0)
		require.NoError(t, remove.Error(), "the future of the change that removed the leader")
		for i, f := range applies {
			require.NoError(t, f.Error(), "apply %d", i)
		}
		require.NoError(t, c.stopNode(old))
		require.Equal(t, Shutdown, old.raft.State())
		require.Equal(t, 200, slow.len())
	})
}
