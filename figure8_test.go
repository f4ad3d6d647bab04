//go:build go1.25

package raft

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// figure8 is the state of Figure 8 (c) of the Raft paper, built on five
// nodes (MaxAppendEntries 1, so that entries travel one per request):
//
//   - x, the "old" entry, was appended by old in its term xTerm and reached
//     no one else before old was cut off;
//   - newer won the next election without old, appended its no-op at
//     x's index in a later term, and was cut off before sending it;
//   - old won again in a term after newer's, and re-sent x to b and c, so x
//     is on old, b and c: a majority. The no-op of old's new term, at
//     noopIndex, is held back from b and c by old's transport.
//
// d stayed apart since newer's election.
type figure8 struct {
	c                 *testCluster
	faulty            map[*testNode]*faultyTransport
	old, newer, b, cc *testNode
	d                 *testNode
	xIndex, noopIndex uint64
	xTerm, newerTerm  uint64
	oldTerm           uint64
	electionTimeout   time.Duration
	commandsBeforeX   int
	dropEntriesAfterX dropRule
	dropEveryNewEntry dropRule
}

// entryAt reads the entry at index from node's store, or a zero Log.
func entryAt(node *testNode, index uint64) Log {
	var entry Log
	if err := node.store.GetLog(index, &entry); err != nil {
		return Log{}
	}
	return entry
}

func fsmHolds(node *testNode, data string) bool {
	for _, applied := range appliedEntries(node.fsm) {
		if applied.data == data {
			return true
		}
	}
	return false
}

func newFigure8(t *testing.T) *figure8 {
	c, transports := newFaultyCluster(t, 5, 0, func(conf *Config) { conf.MaxAppendEntries = 1 })
	// A cleanup, not a defer in the caller: the nodes must stop even when
	// building the scenario fails, or the bubble reports them as leaked.
	t.Cleanup(c.close)
	f := &figure8{c: c, faulty: map[*testNode]*faultyTransport{}, electionTimeout: c.nodes[0].conf.ElectionTimeout}
	for i, node := range c.nodes {
		f.faulty[node] = transports[i]
	}
	f.dropEveryNewEntry = func(ServerAddress, *AppendEntriesRequest) bool { return true }
	byAddr := map[ServerAddress]*testNode{}
	for _, node := range c.nodes {
		byAddr[node.addr] = node
	}
	// Entries beyond x may not reach a peer that already holds x; x itself
	// and heartbeats pass.
	f.dropEntriesAfterX = func(target ServerAddress, req *AppendEntriesRequest) bool {
		n := len(req.Entries)
		if n == 0 || req.Entries[n-1].Index <= f.xIndex {
			return false
		}
		last, err := byAddr[target].store.LastIndex()
		return err == nil && last >= f.xIndex
	}

	// (a) old leads and commits a few commands everywhere, then is cut off
	// alone and appends x, which reaches no one.
	f.old = c.leader()
	f.commandsBeforeX = 3
	applyN(t, f.old.raft, "base", f.commandsBeforeX)
	c.waitApplied(f.commandsBeforeX)
	rest := c.others(f.old)
	for _, node := range rest {
		// Whoever wins next keeps its no-op to itself.
		f.faulty[node].setRule(f.dropEveryNewEntry)
	}
	c.partition([]*testNode{f.old}, rest)
	f.xIndex = f.old.raft.LastIndex() + 1
	x := f.old.raft.Apply([]byte("x"), 0)
	require.ErrorIs(t, x.Error(), ErrLeadershipLost, "x cannot commit on a leader cut off from the others")
	xEntry := entryAt(f.old, f.xIndex)
	require.Equal(t, "x", string(xEntry.Data), "old holds x at index %d", f.xIndex)
	f.xTerm = xEntry.Term

	// (b) newer wins among the rest and appends its no-op at x's index.
	f.newer = c.leader(rest...)
	c.waitFor(time.Second, "newer's no-op to be durable", func() bool {
		return entryAt(f.newer, f.xIndex).Type == LogNoop
	})
	f.newerTerm = entryAt(f.newer, f.xIndex).Term
	require.Greater(t, f.newerTerm, f.xTerm)
	others := c.others(f.newer)
	others = slices.DeleteFunc(others, func(n *testNode) bool { return n == f.old })
	f.b, f.cc, f.d = others[0], others[1], others[2]
	for _, node := range others {
		require.Equal(t, f.xIndex-1, node.raft.LastIndex(), "%s must not have received newer's no-op", node.id)
	}

	// (c) newer and d are cut off; old, b and c elect old, the only one of
	// them holding x, in a term above newer's.
	for _, node := range c.nodes {
		f.faulty[node].setRule(nil)
	}
	f.faulty[f.old].setRule(f.dropEntriesAfterX)
	c.partition([]*testNode{f.old, f.b, f.cc}, []*testNode{f.d}, []*testNode{f.newer})
	require.Same(t, f.old, c.leader(f.old, f.b, f.cc), "only old's log is up to date enough to win")
	f.oldTerm = f.old.raft.CurrentTerm()
	require.Greater(t, f.oldTerm, f.newerTerm)
	f.noopIndex = f.xIndex + 1
	c.waitFor(time.Second, "x on b and c, and old's no-op on old", func() bool {
		noop := entryAt(f.old, f.noopIndex)
		return entryAt(f.b, f.xIndex).Term == f.xTerm && entryAt(f.cc, f.xIndex).Term == f.xTerm &&
			noop.Type == LogNoop && noop.Term == f.oldTerm
	})

	// x is on a majority, but no entry of old's term is: for twenty
	// election timeouts nothing may commit x.
	time.Sleep(20 * f.electionTimeout)
	require.Equal(t, Leader, f.old.raft.State(), "old must still lead, or the check below proves nothing")
	require.Equal(t, f.oldTerm, f.old.raft.CurrentTerm())
	for _, node := range []*testNode{f.b, f.cc} {
		require.Equal(t, f.xIndex, node.raft.LastIndex(), "%s must hold x but not old's no-op", node.id)
	}
	for _, node := range c.nodes {
		require.Less(t, node.raft.CommitIndex(), f.xIndex,
			"%s: x (term %d) is on 3 of 5 servers but only the no-op of term %d at index %d may commit it",
			node.id, f.xTerm, f.oldTerm, f.noopIndex)
		require.False(t, fsmHolds(node, "x"), "%s applied x before it committed", node.id)
	}
	return f
}

// healAndSettle reconnects everything, waits for a leader, and commits a few
// more commands through it.
func (f *figure8) healAndSettle(t *testing.T) *testNode {
	for _, node := range f.c.nodes {
		f.faulty[node].setRule(nil)
	}
	f.c.fullyConnect()
	leader := settledLeader(f.c)
	applyN(t, leader.raft, "after", 3)
	require.NoError(t, leader.raft.Barrier(time.Second).Error())
	final := leader.raft.LastIndex()
	f.c.waitFor(10*time.Second, fmt.Sprintf("every node to apply index %d", final), func() bool {
		for _, node := range f.c.nodes {
			if node.raft.AppliedIndex() < final || node.raft.LastIndex() != final {
				return false
			}
		}
		return true
	})
	f.c.requireSameFSMs()
	logs := make([]nodeLog, len(f.c.nodes))
	for i, node := range f.c.nodes {
		logs[i] = readLog(t, node)
	}
	requireLogMatching(t, logs)
	return leader
}

func TestFigure8OldTermEntryCommitsOnlyWithAnEntryOfTheLeadersTerm(t *testing.T) {
	t.Run("old leader keeps its majority", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFigure8(t)

			// Let the no-op through: x commits together with it.
			f.faulty[f.old].setRule(nil)
			f.c.waitFor(30*time.Second, "old's no-op to commit", func() bool {
				return f.old.raft.CommitIndex() >= f.noopIndex
			})
			f.c.waitFor(10*time.Second, "x applied on old, b and c", func() bool {
				return fsmHolds(f.old, "x") && fsmHolds(f.b, "x") && fsmHolds(f.cc, "x")
			})

			// Once committed, x is never overwritten: newer and d rejoin
			// and take it, newer giving up its own no-op at x's index.
			leader := f.healAndSettle(t)
			require.NotSame(t, f.newer, leader, "newer's log lacks a committed entry; it cannot lead")
			for _, node := range f.c.nodes {
				entry := entryAt(node, f.xIndex)
				require.Equal(t, "x", string(entry.Data), "%s: committed x was overwritten at index %d", node.id, f.xIndex)
				require.Equal(t, f.xTerm, entry.Term, "%s: x keeps its original term", node.id)
				require.Contains(t, appliedEntries(node.fsm), appliedEntry{index: f.xIndex, data: "x"}, "%s must apply x at its index", node.id)
			}
		})
	})

	t.Run("a newer leader overwrites the uncommitted entry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFigure8(t)

			// Figure 8 (d): old is cut off before its no-op spreads; newer,
			// whose last term beats x's, wins c's and d's votes and
			// replaces x with its own no-op. Had old counted replicas of x,
			// it would have committed an entry that is now gone.
			f.faulty[f.newer].setRule(nil)
			f.c.partition([]*testNode{f.old}, []*testNode{f.b}, []*testNode{f.cc, f.d, f.newer})
			require.Same(t, f.newer, f.c.leader(f.cc, f.d, f.newer), "only newer's log is up to date enough to win")
			f.c.waitFor(10*time.Second, "newer to commit past x's index", func() bool {
				return f.newer.raft.CommitIndex() > f.xIndex
			})
			require.Equal(t, f.newerTerm, entryAt(f.cc, f.xIndex).Term, "c's copy of x is replaced by newer's no-op")

			f.healAndSettle(t)
			for _, node := range f.c.nodes {
				entry := entryAt(node, f.xIndex)
				require.Equal(t, LogNoop, entry.Type, "%s: index %d holds newer's no-op in the end", node.id, f.xIndex)
				require.Equal(t, f.newerTerm, entry.Term, "%s: index %d has newer's term", node.id, f.xIndex)
				require.False(t, fsmHolds(node, "x"), "%s applied x, which never committed", node.id)
				require.Equal(t, 2*f.commandsBeforeX, node.fsm.len(), "%s applies the commands before and after, nothing else", node.id)
			}
		})
	})
}
