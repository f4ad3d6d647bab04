package rafttest

import (
	"time"

	"github.com/quorumkit/raft"
)

// Finding the leader and handing it work: Leader, WaitForLeader and
// Followers look for roles among the live nodes; Apply and the membership
// calls of membership.go submit through onLeader, which tries again on the
// current leader while the command certainly was not applied (NotApplied).

// Leader waits up to timeout for a live node in the Leader state and
// returns it; if several believe they lead (a deposed leader has not
// noticed yet), the one with the highest term. It returns ErrNoLeader when
// none appears in time.
func (c *Cluster) Leader(timeout time.Duration) (*Node, error) {
	deadline := time.Now().Add(timeout)
	for {
		if c.isClosed() {
			return nil, ErrClosed
		}
		var best *Node
		var bestTerm uint64
		for _, n := range c.live() {
			r := n.Raft()
			if r == nil || r.State() != raft.Leader {
				continue
			}
			if term := r.CurrentTerm(); best == nil || term > bestTerm {
				best, bestTerm = n, term
			}
		}
		if best != nil {
			return best, nil
		}
		if !time.Now().Before(deadline) {
			return nil, ErrNoLeader
		}
		time.Sleep(pollInterval)
	}
}

// WaitForLeader is Leader with Options.WaitTimeout that fails the test when
// no leader appears.
func (c *Cluster) WaitForLeader() *Node {
	c.t.Helper()
	n, err := c.Leader(c.opts.WaitTimeout)
	if err != nil {
		c.t.Fatalf("rafttest: waiting for a leader for %v: %v", c.opts.WaitTimeout, err)
	}
	return n
}

// Followers returns the live nodes in the Follower state.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.live() {
		if r := n.Raft(); r != nil && r.State() == raft.Follower {
			out = append(out, n)
		}
	}
	return out
}

// Apply submits cmd to the leader, following leadership as it moves, and
// waits for the outcome, all within timeout.
//
// It retries only on errors for which NotApplied is true (the command never
// entered a log), so a command is applied at most once. It returns the
// successful future, or an error: NotApplied(err) if the command certainly
// did not happen, otherwise the outcome is unknown (raft.ErrLeadershipLost,
// raft.ErrRaftShutdown, ErrTimeout, ...) and the future is returned too.
func (c *Cluster) Apply(cmd []byte, timeout time.Duration) (raft.ApplyFuture, error) {
	var f raft.ApplyFuture
	err := c.onLeader(timeout, func(r *raft.Raft, remaining time.Duration) raft.Future {
		f = r.Apply(cmd, remaining)
		return f
	})
	if err != nil && NotApplied(err) {
		return nil, err
	}
	return f, err
}

// onLeader runs submit on the leader until it succeeds, fails with an
// error that does not satisfy NotApplied, or timeout passes.
func (c *Cluster) onLeader(timeout time.Duration, submit func(r *raft.Raft, remaining time.Duration) raft.Future) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.Leader(time.Until(deadline))
		if err != nil {
			return err
		}
		r := n.Raft()
		if r == nil {
			continue // crashed since Leader looked
		}
		err = c.await(submit(r, time.Until(deadline)), deadline)
		if err == nil || !NotApplied(err) {
			return err
		}
		if !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(pollInterval) // let leadership settle before the next try
	}
}

// await waits for f until deadline; ErrTimeout if it has not resolved.
func (c *Cluster) await(f raft.Future, deadline time.Time) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return f.Error() // Close has shut every node down: f is resolved
	}
	c.waiters.Add(1)
	c.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer c.waiters.Done()
		done <- f.Error()
	}()
	timer := time.NewTimer(max(time.Until(deadline), 0))
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return ErrTimeout
	}
}
