package benchload

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// LeaderTracker remembers which node of a cluster leads, so that clients
// send Apply straight to it, and finds the new one after a failure says the
// leader changed. N is the library's node type (a pointer).
type LeaderTracker[N comparable] struct {
	nodes    []N
	isLeader func(N) bool
	current  atomic.Pointer[N]
	search   sync.Mutex // one search at a time; the others wait for its answer
}

// NewLeaderTracker returns a tracker over nodes; isLeader must report
// whether a node believes it leads, without blocking.
func NewLeaderTracker[N comparable](nodes []N, isLeader func(N) bool) *LeaderTracker[N] {
	return &LeaderTracker[N]{nodes: nodes, isLeader: isLeader}
}

// leaderPoll is how often Refresh looks at the nodes while waiting for an
// election.
const leaderPoll = 2 * time.Millisecond

// Current returns the last leader found, and false before the first
// Refresh succeeds.
func (t *LeaderTracker[N]) Current() (N, bool) {
	p := t.current.Load()
	if p == nil {
		var zero N
		return zero, false
	}
	return *p, true
}

// Refresh is called when stale turned out not to lead (pass the zero N at
// start): it waits up to timeout for a node that believes it leads and
// records it. If another caller already replaced stale, Refresh returns
// that node at once.
func (t *LeaderTracker[N]) Refresh(stale N, timeout time.Duration) (N, error) {
	t.search.Lock()
	defer t.search.Unlock()
	if p := t.current.Load(); p != nil && *p != stale {
		return *p, nil
	}
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range t.nodes {
			if t.isLeader(n) {
				t.current.Store(&n)
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			var zero N
			return zero, fmt.Errorf("benchload: no leader within %s", timeout)
		}
		time.Sleep(leaderPoll)
	}
}
