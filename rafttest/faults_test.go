//go:build go1.25

package rafttest

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// sendVote sends one RequestVote from one node to another through the
// sender's fault-injecting transport and returns how long it took.
func sendVote(t *testing.T, c *Cluster, from, to raft.ServerID) (time.Duration, error) {
	t.Helper()
	sender, target := c.Node(from), c.Node(to)
	c.mu.Lock()
	trans := &faultTransport{c: c, from: from, inner: sender.trans}
	c.mu.Unlock()
	start := time.Now()
	var resp raft.RequestVoteResponse
	// Term 0 is below every node's term: the vote is refused and changes
	// nothing, but it is answered.
	req := &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(from), Addr: []byte(sender.addr)},
		Term:      0,
	}
	err := trans.RequestVote(target.id, target.addr, req, &resp)
	return time.Since(start), err
}

func TestLinksFollowPartitionsAndHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 3})
		c.WaitForLeader()
		c.Partition([]raft.ServerID{"node1"}, []raft.ServerID{"node2", "node3"})
		_, err := sendVote(t, c, "node1", "node2")
		require.ErrorIs(t, err, errLinkDown)
		_, err = sendVote(t, c, "node3", "node1")
		require.ErrorIs(t, err, errLinkDown)
		_, err = sendVote(t, c, "node2", "node3")
		require.NoError(t, err, "nodes of one group still talk")

		c.Heal()
		c.CutLink("node2", "node3")
		_, err = sendVote(t, c, "node2", "node3")
		require.ErrorIs(t, err, errLinkDown)
		_, err = sendVote(t, c, "node3", "node2")
		require.NoError(t, err, "a cut link is cut in one direction only")

		c.Heal()
		c.Isolate("node3")
		for _, other := range []raft.ServerID{"node1", "node2"} {
			_, err = sendVote(t, c, "node3", other)
			require.ErrorIs(t, err, errLinkDown)
			_, err = sendVote(t, c, other, "node3")
			require.ErrorIs(t, err, errLinkDown)
		}
		c.Heal()
		_, err = sendVote(t, c, "node1", "node3")
		require.NoError(t, err)
	})
}

func TestLinkFaultsDelayAndDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 2})
		c.WaitForLeader()
		c.SetLinkFault("node1", "node2", LinkFault{Delay: 30 * time.Millisecond})
		took, err := sendVote(t, c, "node1", "node2")
		require.NoError(t, err)
		require.GreaterOrEqual(t, took, 30*time.Millisecond)

		c.SetLinkFault("node1", "node2", LinkFault{Drop: 1})
		for range 20 {
			_, err := sendVote(t, c, "node1", "node2")
			require.ErrorIs(t, err, errDropped)
		}
		c.SetLinkFault("node1", "node2", LinkFault{Drop: 0.5})
		dropped := 0
		for range 200 {
			if _, err := sendVote(t, c, "node1", "node2"); err != nil {
				require.ErrorIs(t, err, errDropped)
				dropped++
			}
		}
		require.InDelta(t, 100, dropped, 40, "about half of the messages are lost")
	})
}

func TestCrashedNodeIsUnreachableAndRestartsFromItsStores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 3})
		index := put(t, c, "k", "v")
		c.WaitForApplied(index)
		victim := c.Followers()[0]
		require.NoError(t, c.Crash(victim.ID()))
		require.False(t, victim.Live())
		require.Nil(t, victim.Raft())
		require.NoError(t, c.Crash(victim.ID()), "crashing a crashed node does nothing")
		for _, other := range c.live() {
			_, err := sendVote(t, c, other.ID(), victim.ID())
			require.ErrorIs(t, err, errLinkDown)
		}
		require.NoError(t, c.Restart(victim.ID()))
		require.True(t, victim.Live())
		require.NoError(t, c.Restart(victim.ID()), "restarting a live node does nothing")
		c.WaitForApplied(index)
		require.Equal(t, "v", victim.FSM().(*KV).Get("k"), "the restarted node rebuilt its state from its stores")
	})
}

func TestCallsAfterCloseFailCleanly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 1})
		c.WaitForLeader()
		c.Close()
		c.Close()
		_, err := c.Apply([]byte("x"), time.Second)
		require.ErrorIs(t, err, ErrClosed)
		_, err = c.Leader(time.Second)
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, c.Restart("node1"), ErrClosed)
		_, err = c.AddNode()
		require.ErrorIs(t, err, ErrClosed)
		require.Error(t, c.Crash("nope"))
	})
}

func TestApplyFollowsTheLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 3})
		first := c.WaitForLeader()
		put(t, c, "a", "1")
		require.NoError(t, c.TransferLeadership("", time.Second))
		second := c.WaitForLeader()
		require.NotEqual(t, first.ID(), second.ID())
		index := put(t, c, "b", "2")
		c.WaitForApplied(index)
		c.CheckConsistent()
	})
}

func TestApplyWithoutQuorumReportsNoLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 3})
		c.WaitForLeader()
		c.Partition() // every node alone
		time.Sleep(time.Second)
		_, err := c.Apply(EncodeKV(KVInput{Op: KVPut, Key: "k", Value: "v"}), 500*time.Millisecond)
		require.ErrorIs(t, err, ErrNoLeader)
		require.True(t, NotApplied(err))
	})
}

func TestWaitsFailTheTestAfterClose(t *testing.T) {
	checks := map[string]func(c *Cluster){
		"WaitForLeader":   func(c *Cluster) { c.WaitForLeader() },
		"WaitForApplied":  func(c *Cluster) { c.WaitForApplied(1) },
		"CheckConsistent": func(c *Cluster) { c.CheckConsistent() },
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &fatalTB{TB: t}
				c := NewCluster(t, Options{Voters: 1})
				c.WaitForLeader()
				c.Close()
				c.t = rec
				var wg sync.WaitGroup
				wg.Go(func() { check(c) }) // Fatalf ends the goroutine
				wg.Wait()
				require.Len(t, rec.fatals, 1)
				require.Contains(t, rec.fatals[0], ErrClosed.Error())
			})
		})
	}
}

// fatalTB records Fatalf and ends the calling goroutine, like a test does.
type fatalTB struct {
	testing.TB
	fatals []string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
