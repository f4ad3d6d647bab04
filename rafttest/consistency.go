package rafttest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/quorumkit/raft"
)

// Waiting for replicas and comparing them.

// members returns the newest configuration any live node knows (by
// configuration index), and whether there was one.
func (c *Cluster) members() (raft.Configuration, bool) {
	var best raft.Configuration
	var bestIndex uint64
	found := false
	for _, n := range c.live() {
		r := n.Raft()
		if r == nil {
			continue
		}
		f := r.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		if !found || f.Index() > bestIndex {
			best, bestIndex, found = f.Configuration(), f.Index(), true
		}
	}
	return best, found
}

// memberNodes returns the live nodes of the newest configuration.
func (c *Cluster) memberNodes() []*Node {
	configuration, ok := c.members()
	if !ok {
		return nil
	}
	var out []*Node
	for _, s := range configuration.Servers {
		if n := c.Node(s.ID); n != nil && n.Live() {
			out = append(out, n)
		}
	}
	return out
}

// WaitForApplied waits until every live member of the newest configuration
// has applied index, and fails the test after Options.WaitTimeout. Heal
// partitions first: an isolated member cannot catch up.
func (c *Cluster) WaitForApplied(index uint64) {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	for {
		if c.isClosed() {
			c.t.Fatalf("rafttest: WaitForApplied(%d): %v", index, ErrClosed)
		}
		behind := c.behind(index)
		if len(behind) == 0 && len(c.memberNodes()) > 0 {
			return
		}
		if !time.Now().Before(deadline) {
			c.t.Fatalf("rafttest: after %v, nodes still below applied index %d: %v", c.opts.WaitTimeout, index, behind)
		}
		time.Sleep(pollInterval)
	}
}

// behind describes the members that have not applied index.
func (c *Cluster) behind(index uint64) []string {
	var out []string
	for _, n := range c.memberNodes() {
		if r := n.Raft(); r != nil && r.AppliedIndex() < index {
			out = append(out, fmt.Sprintf("%s at %d", n.id, r.AppliedIndex()))
		}
	}
	return out
}

// CheckConsistent waits until every live member of the newest
// configuration has applied everything the leader has committed, then
// checks that their FSMs hold the same state (Options.FSMState, by default
// the FSM's snapshot bytes). An FSM with an `Err() error` method (like KV)
// is also asked for a breach it detected. It fails the test on a
// difference, or if the cluster does not settle within Options.WaitTimeout;
// heal partitions and stop writers first. It also runs CheckElectionSafety
// and CheckStateMachineSafety.
func (c *Cluster) CheckConsistent() {
	c.t.Helper()
	// Checked last, so that what the nodes did while settling counts too.
	defer c.CheckStateMachineSafety()
	defer c.CheckElectionSafety()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	var lastProblem string
	for time.Now().Before(deadline) {
		if c.isClosed() {
			c.t.Fatalf("rafttest: CheckConsistent: %v", ErrClosed)
		}
		problem, settled := c.compareOnce(deadline)
		if settled && problem == "" {
			return
		}
		if settled {
			c.t.Fatalf("rafttest: replicas differ: %s", problem)
		}
		lastProblem = problem
		time.Sleep(pollInterval)
	}
	c.t.Fatalf("rafttest: cluster did not settle within %v: %s\n%s", c.opts.WaitTimeout, lastProblem, c.describeNodes())
}

// describeNodes renders every node's view, for failure messages.
func (c *Cluster) describeNodes() string {
	var b strings.Builder
	for _, n := range c.Nodes() {
		r := n.Raft()
		if r == nil {
			fmt.Fprintf(&b, "  %s: crashed\n", n.id)
			continue
		}
		st := r.Stats()
		fmt.Fprintf(&b, "  %s: %s term=%s last_log=%s commit=%s applied=%s snapshot=%s last_contact=%s config=%s\n",
			n.id, st["state"], st["term"], st["last_log_index"], st["commit_index"], st["applied_index"],
			st["last_snapshot_index"], st["last_contact"], st["latest_configuration"])
	}
	return b.String()
}

// compareOnce makes one attempt; settled is false when the cluster moved
// (or was not ready) and the attempt should be repeated.
func (c *Cluster) compareOnce(deadline time.Time) (problem string, settled bool) {
	leader, err := c.Leader(time.Until(deadline))
	if err != nil {
		return err.Error(), false
	}
	r := leader.Raft()
	if r == nil {
		return "leader crashed", false
	}
	if err := c.await(r.Barrier(time.Until(deadline)), deadline); err != nil {
		return fmt.Sprintf("barrier on %s: %v", leader.id, err), false
	}
	target := r.AppliedIndex()
	for time.Now().Before(deadline) && len(c.behind(target)) > 0 {
		time.Sleep(pollInterval)
	}
	if behind := c.behind(target); len(behind) > 0 {
		return fmt.Sprintf("below leader %s's applied index %d: %v", leader.id, target, behind), false
	}
	members := c.memberNodes()
	states := make([]any, len(members))
	var applied []uint64
	for i, n := range members {
		r := n.Raft()
		if r == nil {
			return fmt.Sprintf("%s crashed", n.id), false
		}
		before := r.AppliedIndex()
		fsm := n.FSM()
		if e, ok := fsm.(interface{ Err() error }); ok && e.Err() != nil {
			return fmt.Sprintf("FSM of %s: %v", n.id, e.Err()), true
		}
		st, err := c.fsmState(fsm)
		if err != nil {
			return fmt.Sprintf("state of %s: %v", n.id, err), true
		}
		if r.AppliedIndex() != before {
			return fmt.Sprintf("%s applied more while being read", n.id), false
		}
		states[i] = st
		applied = append(applied, before)
	}
	for i := range members {
		if applied[i] != applied[0] {
			return fmt.Sprintf("applied indexes differ: %v", applied), false
		}
	}
	for i := 1; i < len(members); i++ {
		if !reflect.DeepEqual(states[0], states[i]) {
			return fmt.Sprintf("at applied index %d, %s has %s and %s has %s", applied[0],
				members[0].id, describeState(states[0]), members[i].id, describeState(states[i])), true
		}
	}
	return "", true
}

func describeState(st any) string {
	if b, ok := st.([]byte); ok {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%+v", st)
}

// fsmState returns what CheckConsistent compares for one FSM.
func (c *Cluster) fsmState(fsm raft.FSM) (any, error) {
	if c.opts.FSMState != nil {
		return c.opts.FSMState(fsm)
	}
	snap, err := fsm.Snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	sink := &memorySink{}
	if err := snap.Persist(sink); err != nil {
		return nil, err
	}
	if !sink.closed {
		return nil, errors.New("snapshot not closed by Persist")
	}
	return sink.buf.Bytes(), nil
}

// memorySink collects a snapshot's bytes for comparison.
type memorySink struct {
	buf    bytes.Buffer
	closed bool
}

func (s *memorySink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *memorySink) Close() error                { s.closed = true; return nil }
func (s *memorySink) ID() string                  { return "rafttest-compare" }
func (s *memorySink) Cancel() error               { return nil }
