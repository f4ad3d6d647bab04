package raft

import (
	"slices"
	"sync"
)

// commitment tracks the leader's commit index from the match indexes of the
// voters of the latest configuration. Replicators and the log writer report
// matches from their goroutines; the leader loop is told through commitCh
// whenever the commit index moves.
type commitment struct {
	mu sync.Mutex
	// commitCh receives a value (without blocking) when commitIndex moves.
	commitCh chan struct{}
	// matchIndexes holds, per voter, the highest index known to be durable
	// on that server.
	matchIndexes map[ServerID]uint64
	// commitIndex is the highest committed index known to this leader.
	commitIndex uint64
	// startIndex is the first index of this leader's term. §5.4.2: entries
	// are committed by counting replicas only from here on; earlier ones
	// commit with it.
	startIndex uint64
	// waiters are woken when a server's match index reaches theirs.
	waiters []*matchWaiter
	// moved, when someone waits on it (ownWritesCommitted), is closed the
	// next time commitIndex moves.
	moved chan struct{}
}

// matchWaiter is one awaitMatch call.
type matchWaiter struct {
	server  ServerID
	index   uint64
	reached chan struct{}
}

func newCommitment(commitCh chan struct{}, configuration Configuration, startIndex uint64) *commitment {
	c := &commitment{
		commitCh:     commitCh,
		matchIndexes: map[ServerID]uint64{},
		startIndex:   startIndex,
	}
	c.setConfiguration(configuration)
	return c
}

// setConfiguration switches to the voters of a new latest configuration,
// keeping what is known of servers that stay.
func (c *commitment) setConfiguration(configuration Configuration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.matchIndexes
	c.matchIndexes = make(map[ServerID]uint64, len(configuration.Servers))
	for _, id := range votersOf(configuration).ids {
		c.matchIndexes[id] = old[id]
	}
	c.recalculate()
}

// getCommitIndex returns the commit index.
func (c *commitment) getCommitIndex() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commitIndex
}

// ownWritesCommitted reports whether everything server holds durably is
// committed; if not, it also returns a channel closed when the commit index
// next moves. A server that is not a voter holds nothing here, so it never
// waits.
func (c *commitment) ownWritesCommitted(server ServerID) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.commitIndex >= c.matchIndexes[server] {
		return true, nil
	}
	if c.moved == nil {
		c.moved = make(chan struct{})
	}
	return false, c.moved
}

// matchIndexOf returns what is known to be durable on server.
func (c *commitment) matchIndexOf(server ServerID) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.matchIndexes[server]
}

// match records that server holds every entry up to matchIndex durably.
// Reports of servers that are not voters are ignored.
func (c *commitment) match(server ServerID, matchIndex uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.matchIndexes[server]; ok && matchIndex > prev {
		c.matchIndexes[server] = matchIndex
		c.recalculate()
		if len(c.waiters) > 0 {
			c.wake(server, matchIndex)
		}
	}
}

// awaitMatch returns a channel that is closed once server, a voter, holds
// every entry up to index durably, and a function to call when no longer
// waiting. A leadership transfer waits on it for its target to catch up.
func (c *commitment) awaitMatch(server ServerID, index uint64) (reached <-chan struct{}, stop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &matchWaiter{server: server, index: index, reached: make(chan struct{})}
	if c.matchIndexes[server] >= index {
		close(w.reached)
		return w.reached, func() {}
	}
	c.waiters = append(c.waiters, w)
	return w.reached, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.waiters = slices.DeleteFunc(c.waiters, func(other *matchWaiter) bool { return other == w })
	}
}

// wake releases the waiters of server up to matchIndex. Callers hold mu.
func (c *commitment) wake(server ServerID, matchIndex uint64) {
	c.waiters = slices.DeleteFunc(c.waiters, func(w *matchWaiter) bool {
		if w.server != server || w.index > matchIndex {
			return false
		}
		close(w.reached)
		return true
	})
}

// recalculate moves the commit index forward when a quorum allows it.
// Callers hold mu.
func (c *commitment) recalculate() {
	if len(c.matchIndexes) == 0 {
		return
	}
	matched := make([]uint64, 0, len(c.matchIndexes))
	for _, idx := range c.matchIndexes {
		matched = append(matched, idx)
	}
	quorumMatch := quorumIndex(matched)
	if quorumMatch > c.commitIndex && quorumMatch >= c.startIndex {
		c.commitIndex = quorumMatch
		if c.moved != nil {
			close(c.moved)
			c.moved = nil
		}
		select {
		case c.commitCh <- struct{}{}:
		default:
		}
	}
}
