package rafttest

import (
	"fmt"
	"time"

	"github.com/quorumkit/raft"
)

// AddVoter makes id (a node of the cluster, see AddNode) a voter, through
// the leader, following leadership as it moves. Like Apply, it retries
// only while the change certainly did not start, and returns the raft
// error otherwise.
func (c *Cluster) AddVoter(id raft.ServerID, timeout time.Duration) error {
	return c.changeMembership(id, timeout, func(r *raft.Raft, n *Node, remaining time.Duration) raft.Future {
		return r.AddVoter(n.id, n.addr, 0, remaining)
	})
}

// AddNonvoter makes id a nonvoter (see AddVoter).
func (c *Cluster) AddNonvoter(id raft.ServerID, timeout time.Duration) error {
	return c.changeMembership(id, timeout, func(r *raft.Raft, n *Node, remaining time.Duration) raft.Future {
		return r.AddNonvoter(n.id, n.addr, 0, remaining)
	})
}

// DemoteVoter turns voter id into a nonvoter (see AddVoter).
func (c *Cluster) DemoteVoter(id raft.ServerID, timeout time.Duration) error {
	return c.changeMembership(id, timeout, func(r *raft.Raft, n *Node, remaining time.Duration) raft.Future {
		return r.DemoteVoter(n.id, 0, remaining)
	})
}

// RemoveServer removes id from the configuration (see AddVoter). The node
// keeps running, outside the cluster; Crash it to stop it.
func (c *Cluster) RemoveServer(id raft.ServerID, timeout time.Duration) error {
	return c.changeMembership(id, timeout, func(r *raft.Raft, n *Node, remaining time.Duration) raft.Future {
		return r.RemoveServer(n.id, 0, remaining)
	})
}

func (c *Cluster) changeMembership(id raft.ServerID, timeout time.Duration, change func(r *raft.Raft, n *Node, remaining time.Duration) raft.Future) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("rafttest: no node %q", id)
	}
	return c.onLeader(timeout, func(r *raft.Raft, remaining time.Duration) raft.Future {
		return change(r, n, remaining)
	})
}

// TransferLeadership asks the current leader to hand leadership to another
// voter (to is "" for the most up-to-date one) and waits for the outcome.
func (c *Cluster) TransferLeadership(to raft.ServerID, timeout time.Duration) error {
	var target *Node
	if to != "" {
		if target = c.Node(to); target == nil {
			return fmt.Errorf("rafttest: no node %q", to)
		}
	}
	deadline := time.Now().Add(timeout)
	leader, err := c.Leader(timeout)
	if err != nil {
		return err
	}
	r := leader.Raft()
	if r == nil {
		return fmt.Errorf("rafttest: leader %s crashed", leader.id)
	}
	if target == nil {
		return c.await(r.LeadershipTransfer(), deadline)
	}
	return c.await(r.LeadershipTransferToServer(target.id, target.addr), deadline)
}

// Configuration returns the newest configuration a live node knows.
func (c *Cluster) Configuration() raft.Configuration {
	configuration, _ := c.members()
	return configuration
}
