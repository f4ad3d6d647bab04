package rafttest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/quorumkit/raft"
)

// leaderships records every leadership a node of the cluster won, by term,
// from an observer on every run of every node. The observer's filter runs
// on the node's main loop at the moment it becomes leader, so the term read
// there is the term it won.
type leaderships struct {
	mu     sync.Mutex
	byTerm map[uint64][]raft.ServerID
	// onNextWin, when set, runs once, on the main loop of the next node to
	// win an election, before it starts to replicate.
	onNextWin func(id raft.ServerID)
}

// watch registers the recorder on r, the new run of node id.
func (l *leaderships) watch(id raft.ServerID, r *raft.Raft) {
	r.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if state, ok := o.Data.(raft.RaftState); ok && state == raft.Leader {
			if hook := l.won(id, o.Raft.CurrentTerm()); hook != nil {
				hook(id)
			}
		}
		return false
	}))
}

// setOnNextWin arms hook for the next election won (nil disarms).
func (l *leaderships) setOnNextWin(hook func(id raft.ServerID)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onNextWin = hook
}

// won records a leadership and returns the armed hook, disarming it.
func (l *leaderships) won(id raft.ServerID, term uint64) (hook func(raft.ServerID)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byTerm == nil {
		l.byTerm = map[uint64][]raft.ServerID{}
	}
	if !slices.Contains(l.byTerm[term], id) {
		l.byTerm[term] = append(l.byTerm[term], id)
	}
	hook, l.onNextWin = l.onNextWin, nil
	return hook
}

// violations describes every term that had more than one leader (§5.2,
// Election Safety), oldest first.
func (l *leaderships) violations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for term, ids := range l.byTerm {
		if len(ids) > 1 {
			out = append(out, fmt.Sprintf("term %d had %d leaders: %v", term, len(ids), ids))
		}
	}
	slices.Sort(out)
	return out
}

// CheckElectionSafety fails the test if two nodes of the cluster ever led
// in the same term. CheckConsistent calls it too.
func (c *Cluster) CheckElectionSafety() {
	c.t.Helper()
	if v := c.leaders.violations(); len(v) > 0 {
		c.t.Errorf("rafttest: election safety broken: %v", v)
	}
}

// appliedLedger records, for every index, the first entry a node of the
// cluster applied there, to check State Machine Safety (§5.4.3): no two
// servers ever apply different entries at the same index. Nodes running a
// KV feed it.
type appliedLedger struct {
	mu         sync.Mutex
	byIndex    map[uint64]appliedEntry
	violations []string
}

type appliedEntry struct {
	node raft.ServerID
	term uint64
	data string
}

// watch makes fsm, the FSM of a new run of node id, report to the ledger.
func (a *appliedLedger) watch(id raft.ServerID, fsm raft.FSM) {
	kv, ok := fsm.(*KV)
	if !ok {
		return
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.onApply = func(l *raft.Log) { a.applied(id, l) }
}

func (a *appliedLedger) applied(id raft.ServerID, l *raft.Log) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byIndex == nil {
		a.byIndex = map[uint64]appliedEntry{}
	}
	entry := appliedEntry{node: id, term: l.Term, data: string(l.Data)}
	first, ok := a.byIndex[l.Index]
	if !ok {
		a.byIndex[l.Index] = entry
		return
	}
	if (first.term != entry.term || first.data != entry.data) && len(a.violations) < 10 {
		a.violations = append(a.violations, fmt.Sprintf("index %d: %s applied term %d %q, %s applied term %d %q",
			l.Index, first.node, first.term, first.data, id, entry.term, entry.data))
	}
}

// CheckStateMachineSafety fails the test if two nodes running a KV applied
// different entries at the same index. CheckConsistent calls it too.
func (c *Cluster) CheckStateMachineSafety() {
	c.t.Helper()
	c.applied.mu.Lock()
	v := slices.Clone(c.applied.violations)
	c.applied.mu.Unlock()
	if len(v) > 0 {
		c.t.Errorf("rafttest: state machine safety broken (different entries applied at one index): %v", v)
	}
}
