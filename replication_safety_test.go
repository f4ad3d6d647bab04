//go:build go1.25

package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// majorityIndex is the oracle for quorumIndex: the highest value that at
// least a majority of matchIndexes reach, found by trying every candidate.
func majorityIndex(matchIndexes []uint64) uint64 {
	var best uint64
	for _, candidate := range matchIndexes {
		reached := 0
		for _, m := range matchIndexes {
			if m >= candidate {
				reached++
			}
		}
		if reached >= len(matchIndexes)/2+1 {
			best = max(best, candidate)
		}
	}
	return best
}

func TestQuorumIndexIsHighestIndexAMajorityHolds(t *testing.T) {
	cases := []struct {
		matchIndexes []uint64
		want         uint64
	}{
		{nil, 0},
		{[]uint64{7}, 7},
		{[]uint64{3, 9}, 3},
		{[]uint64{9, 3}, 3},
		{[]uint64{0, 5, 8}, 5},
		{[]uint64{8, 0, 0}, 0},
		{[]uint64{4, 4, 4}, 4},
		{[]uint64{1, 2, 3, 4}, 2},
		{[]uint64{10, 10, 10, 0}, 10},
		{[]uint64{5, 1, 4, 2, 3}, 3},
		{[]uint64{9, 9, 0, 0, 0}, 0},
		{[]uint64{9, 9, 9, 0, 0}, 9},
		{[]uint64{6, 5, 4, 3, 2, 1}, 3},
		{[]uint64{6, 6, 6, 0, 0, 0}, 0},
		{[]uint64{6, 6, 6, 6, 0, 0}, 6},
		{[]uint64{7, 6, 5, 4, 3, 2, 1}, 4},
		{[]uint64{100, 100, 100, 1, 1, 1, 1}, 1},
		{[]uint64{100, 100, 100, 100, 1, 1, 1}, 100},
	}
	for _, tc := range cases {
		input := slices.Clone(tc.matchIndexes)
		require.Equal(t, tc.want, quorumIndex(tc.matchIndexes), "quorumIndex(%v)", tc.matchIndexes)
		require.Equal(t, input, tc.matchIndexes, "quorumIndex must not reorder its argument")
	}

	// Every vector of 1 to 7 voters over a few distinct values.
	rng := rand.New(rand.NewPCG(1, 2))
	for voters := 1; voters <= 7; voters++ {
		for range 500 {
			matchIndexes := make([]uint64, voters)
			for i := range matchIndexes {
				matchIndexes[i] = rng.Uint64N(6)
			}
			require.Equal(t, majorityIndex(matchIndexes), quorumIndex(matchIndexes), "quorumIndex(%v)", matchIndexes)
		}
	}
}

// voters returns a configuration of n voters named v0, v1, ...
func voters(n int) Configuration {
	var configuration Configuration
	for i := range n {
		id := ServerID(fmt.Sprintf("v%d", i))
		configuration.Servers = append(configuration.Servers, Server{Suffrage: Voter, ID: id, Address: ServerAddress(id)})
	}
	return configuration
}

// Figure 8 of the Raft paper, at the level of the commitment tracker: a
// leader whose term starts at startIndex may find entries of earlier terms
// on a majority, but they commit only once an entry of its own term does.
func TestCommitmentNeverCommitsEarlierTermEntriesByCountingReplicas(t *testing.T) {
	type match struct {
		server ServerID
		index  uint64
		// wantCommit is the commit index expected after this match.
		wantCommit uint64
	}
	cases := []struct {
		name       string
		voters     int
		startIndex uint64
		matches    []match
	}{
		{
			name: "3 voters: majority below startIndex, then on it", voters: 3, startIndex: 5,
			matches: []match{
				{"v0", 4, 0}, {"v1", 4, 0}, {"v2", 4, 0},
				{"v0", 5, 0}, {"v1", 5, 5},
			},
		},
		{
			name: "5 voters: Figure 8 (c), the old entry on 3 of 5, the new one on 1", voters: 5, startIndex: 3,
			matches: []match{
				{"v0", 3, 0}, {"v1", 2, 0}, {"v2", 2, 0},
				{"v1", 3, 0}, {"v2", 3, 3},
			},
		},
		{
			name: "5 voters: a jump past startIndex commits everything up to the quorum", voters: 5, startIndex: 10,
			matches: []match{
				{"v0", 12, 0}, {"v1", 9, 0}, {"v2", 9, 0}, {"v3", 9, 0},
				{"v1", 14, 0}, {"v2", 11, 11}, {"v3", 12, 12},
			},
		},
		{
			name: "single voter: its own write of the first entry of the term commits", voters: 1, startIndex: 7,
			matches: []match{{"v0", 6, 0}, {"v0", 7, 7}, {"v0", 8, 8}},
		},
		{
			name: "matches of strangers and older matches are ignored", voters: 3, startIndex: 2,
			matches: []match{
				{"v0", 4, 0}, {"stranger", 9, 0}, {"other", 9, 0},
				{"v1", 3, 3}, {"v1", 1, 3}, {"v2", 2, 3},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			commitCh := make(chan struct{}, 1)
			c := newCommitment(commitCh, voters(tc.voters), tc.startIndex)
			for i, m := range tc.matches {
				before := c.getCommitIndex()
				c.match(m.server, m.index)
				got := c.getCommitIndex()
				require.Equal(t, m.wantCommit, got,
					"step %d: after %s matched %d (startIndex %d): commit index", i, m.server, m.index, tc.startIndex)
				moved := false
				select {
				case <-commitCh:
					moved = true
				default:
				}
				require.Equal(t, got != before, moved, "step %d: commitCh must be signalled exactly when the commit index moves", i)
			}
		})
	}
}

func TestCommitmentRecountsOnConfigurationChangeButNotBelowStartIndex(t *testing.T) {
	commitCh := make(chan struct{}, 1)
	c := newCommitment(commitCh, voters(3), 4)
	c.match("v0", 3)
	c.match("v1", 3)
	require.Zero(t, c.getCommitIndex(), "entries below startIndex on a majority of 3 do not commit")

	// Dropping v2 leaves v0 and v1 as the majority: still below startIndex.
	two := voters(2)
	c.setConfiguration(two)
	require.Zero(t, c.getCommitIndex(), "recounting must honour startIndex too")

	c.match("v0", 4)
	require.Zero(t, c.getCommitIndex(), "one of two voters is not a majority")
	c.match("v1", 5)
	require.Equal(t, uint64(4), c.getCommitIndex(), "both voters hold index 4")
	require.Equal(t, uint64(5), c.matchIndexOf("v1"))

	// With four voters, two of whom hold nothing yet, no new index has a
	// majority; the commit index stays where it is.
	c.setConfiguration(voters(4))
	require.Equal(t, uint64(4), c.getCommitIndex(), "the commit index never moves back")
	require.Zero(t, c.matchIndexOf("v3"))
}

// ackedWrite is a write whose Apply succeeded: it must never be lost.
type ackedWrite struct {
	index uint64
	data  string
}

// writeTracker records the outcome of writes issued from many goroutines.
type writeTracker struct {
	mu     sync.Mutex
	issued map[string]bool
	acked  []ackedWrite
	failed int
}

func (w *writeTracker) issue(data string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.issued[data] = true
}

func (w *writeTracker) done(data string, f ApplyFuture) {
	err := f.Error()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failed++
		return
	}
	w.acked = append(w.acked, ackedWrite{index: f.Index(), data: data})
}

func (w *writeTracker) snapshot() (acked []ackedWrite, issued map[string]bool, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked), clonedSet(w.issued), w.failed
}

func clonedSet(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// requireSafety checks the safety properties of Raft on a still cluster
// (call it right after synctest.Wait, so no node moves meanwhile): Log
// Matching, State Machine Safety (committed and applied entries agree
// everywhere, only committed entries are applied), and for every
// acknowledged write: durable on a majority, present wherever it is
// committed, and held by every leader of a later term (Leader
// Completeness).
func requireSafety(t testing.TB, c *testCluster, acked []ackedWrite, context string) {
	t.Helper()
	logs := make([]nodeLog, len(c.nodes))
	for i, node := range c.nodes {
		logs[i] = readLog(t, node)
	}
	requireLogMatching(t, logs)

	for i, a := range c.nodes {
		for j := i + 1; j < len(c.nodes); j++ {
			b := c.nodes[j]
			upTo := min(a.raft.CommitIndex(), b.raft.CommitIndex())
			for index := max(logs[i].first, logs[j].first, 1); index <= upTo; index++ {
				ea, okA := logs[i].at(index)
				eb, okB := logs[j].at(index)
				require.True(t, okA && okB && sameEntry(ea, eb),
					"%s: %s and %s both committed index %d but hold %+v and %+v", context, a.id, b.id, index, ea, eb)
			}
		}
	}

	appliedAt := map[uint64]string{}
	for i, node := range c.nodes {
		for _, applied := range appliedEntries(node.fsm) {
			require.LessOrEqual(t, applied.index, node.raft.CommitIndex(),
				"%s: %s applied index %d beyond its commit index", context, node.id, applied.index)
			if entry, ok := logs[i].at(applied.index); ok {
				require.Equal(t, applied.data, string(entry.Data),
					"%s: %s applied at index %d something other than its log holds", context, node.id, applied.index)
			}
			if other, ok := appliedAt[applied.index]; ok {
				require.Equal(t, other, applied.data, "%s: two nodes applied different commands at index %d", context, applied.index)
			}
			appliedAt[applied.index] = applied.data
		}
	}

	quorum := len(c.nodes)/2 + 1
	for _, w := range acked {
		var holders []ServerID
		var term uint64
		for _, l := range logs {
			if entry, ok := l.at(w.index); ok && entry.Type == LogCommand && string(entry.Data) == w.data {
				holders = append(holders, l.id)
				term = entry.Term
			}
		}
		require.GreaterOrEqual(t, len(holders), quorum,
			"%s: acknowledged write %q at index %d is held only by %v", context, w.data, w.index, holders)
		for i, node := range c.nodes {
			entry, _ := logs[i].at(w.index)
			if node.raft.CommitIndex() >= w.index {
				require.Equal(t, w.data, string(entry.Data),
					"%s: %s committed index %d with something other than the acknowledged write", context, node.id, w.index)
			}
			if node.raft.State() == Leader && node.raft.CurrentTerm() > term {
				require.Equal(t, w.data, string(entry.Data),
					"%s: leader %s of term %d lacks the write %q acknowledged in term %d at index %d",
					context, node.id, node.raft.CurrentTerm(), w.data, term, w.index)
			}
		}
	}
}

func TestLogMatchingAndLeaderCompletenessAfterPartitionsHeal(t *testing.T) {
	const rounds = 40
	cases := []struct {
		name string
		n    int
		// preVoteDisabled leaves the vote's own log check (§5.4.1) as the
		// only guard against a stale candidate.
		preVoteDisabled bool
	}{
		{name: "3nodes", n: 3},
		{name: "5nodes", n: 5},
		{name: "3nodes-prevote-disabled", n: 3, preVoteDisabled: true},
		{name: "5nodes-prevote-disabled", n: 5, preVoteDisabled: true},
	}
	for _, tc := range cases {
		n := tc.n
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(testSeed(t), 0))
				// Latency lets writes, elections and catch-up overlap; two
				// entries per request make a lagging follower catch up over
				// many requests, each proving only part of its log.
				const maxLatency = 5 * time.Millisecond
				c, _ := newFaultyCluster(t, n, maxLatency, func(conf *Config) {
					conf.PreVoteDisabled = tc.preVoteDisabled
					conf.MaxAppendEntries = 2
				})
				defer c.close()
				electionTimeout := c.nodes[0].conf.ElectionTimeout
				writes := &writeTracker{issued: map[string]bool{}}
				var pending sync.WaitGroup
				nextWrite := 0

				for round := range rounds {
					how := randomPartition(rng, c)
					if rng.IntN(8) == 0 {
						node := c.nodes[rng.IntN(n)]
						c.shutdownNode(node)
						restartFaultyNode(c, node)
						how += ", " + string(node.id) + " restarted"
					}
					// Writes go to whichever nodes believe they lead, stale
					// leaders included; their futures resolve on their own.
					for range rng.IntN(8) {
						var leaders []*Raft
						for _, node := range c.nodes {
							if node.raft.State() == Leader {
								leaders = append(leaders, node.raft)
							}
						}
						if len(leaders) > 0 {
							r := leaders[rng.IntN(len(leaders))]
							data := fmt.Sprintf("w%d", nextWrite)
							nextWrite++
							writes.issue(data)
							pending.Add(1)
							go func() {
								defer pending.Done()
								writes.done(data, r.Apply([]byte(data), time.Second))
							}()
						}
						time.Sleep(time.Duration(rng.Int64N(int64(electionTimeout))))
					}
					time.Sleep(time.Duration(rng.Int64N(int64(3 * electionTimeout))))
					synctest.Wait()
					acked, _, _ := writes.snapshot()
					requireSafety(t, c, acked, fmt.Sprintf("round %d (%s)", round, how))
				}

				// Heal, let every write resolve and leadership settle.
				c.fullyConnect()
				pending.Wait()
				leader := settledLeader(c)
				// Overwrite every stale tail: the leader's log must reach
				// past the longest log before all logs can be equal.
				var longest uint64
				for _, node := range c.nodes {
					longest = max(longest, node.raft.LastIndex())
				}
				for i := 0; leader.raft.LastIndex() < longest; i++ {
					applyN(t, leader.raft, fmt.Sprintf("fill%d", i), 1)
				}
				require.NoError(t, leader.raft.Barrier(time.Second).Error())
				final := leader.raft.LastIndex()
				c.waitFor(10*time.Second, fmt.Sprintf("every node to hold, commit and apply index %d", final), func() bool {
					for _, node := range c.nodes {
						if node.raft.LastIndex() != final || node.raft.CommitIndex() < final || node.raft.AppliedIndex() < final {
							return false
						}
					}
					return true
				})
				synctest.Wait()

				acked, issued, failed := writes.snapshot()
				t.Logf("%d writes acknowledged, %d failed", len(acked), failed)
				require.NotEmpty(t, acked, "the test must acknowledge some writes to check anything")
				requireSafety(t, c, acked, "healed")

				// Every log holds the same entry, term included, at every index.
				logs := make([]nodeLog, n)
				for i, node := range c.nodes {
					logs[i] = readLog(t, node)
				}
				for _, l := range logs[1:] {
					require.Equal(t, logs[0].last, l.last, "%s and %s end at different indexes", logs[0].id, l.id)
					for index := max(logs[0].first, l.first); index <= final; index++ {
						want, _ := logs[0].at(index)
						got, _ := l.at(index)
						require.True(t, sameEntry(want, got), "index %d: %s holds %+v, %s holds %+v", index, logs[0].id, want, l.id, got)
					}
				}

				// Every acknowledged write is in every FSM exactly once, at
				// its index, and nothing was applied that was never written.
				c.requireSameFSMs()
				for _, node := range c.nodes {
					applied := appliedEntries(node.fsm)
					seen := map[string]int{}
					for _, a := range applied {
						seen[a.data]++
						require.True(t, issued[a.data] || isFill(a.data), "%s applied %q, which no one wrote", node.id, a.data)
					}
					for _, w := range acked {
						require.Equal(t, 1, seen[w.data], "%s must apply acknowledged write %q exactly once", node.id, w.data)
						require.Contains(t, applied, appliedEntry{index: w.index, data: w.data},
							"%s must apply %q at its index %d", node.id, w.data, w.index)
					}
				}
			})
		})
	}
}

func isFill(data string) bool {
	var i, j int
	_, err := fmt.Sscanf(data, "fill%d-%d", &i, &j)
	return err == nil
}

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
