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
}

// watch registers the recorder on r, the new run of node id.
func (l *leaderships) watch(id raft.ServerID, r *raft.Raft) {
	r.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		if state, ok := o.Data.(raft.RaftState); ok && state == raft.Leader {
			l.won(id, o.Raft.CurrentTerm())
		}
		return false
	}))
}

func (l *leaderships) won(id raft.ServerID, term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byTerm == nil {
		l.byTerm = map[uint64][]raft.ServerID{}
	}
	if !slices.Contains(l.byTerm[term], id) {
		l.byTerm[term] = append(l.byTerm[term], id)
	}
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
