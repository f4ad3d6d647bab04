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
				load := &partitionedWrites{
					rng:             rng,
					c:               c,
					electionTimeout: c.nodes[0].conf.ElectionTimeout,
					writes:          &writeTracker{issued: map[string]bool{}},
				}
				for round := range rounds {
					how := load.round()
					synctest.Wait()
					acked, _, _ := load.writes.snapshot()
					requireSafety(t, c, acked, fmt.Sprintf("round %d (%s)", round, how))
				}

				// Heal, let every write resolve and leadership settle.
				c.fullyConnect()
				load.pending.Wait()
				final := overwriteStaleTails(t, c)
				synctest.Wait()

				acked, issued, failed := load.writes.snapshot()
				t.Logf("%d writes acknowledged, %d failed", len(acked), failed)
				require.NotEmpty(t, acked, "the test must acknowledge some writes to check anything")
				requireSafety(t, c, acked, "healed")
				requireIdenticalLogs(t, c, final)
				requireAckedWritesAppliedOnce(t, c, acked, issued)
			})
		})
	}
}

// partitionedWrites drives one round of TestLogMatchingAndLeaderCompletenessAfterPartitionsHeal
// at a time: a random partition, sometimes a restart, and writes to whoever
// believes it leads.
type partitionedWrites struct {
	rng             *rand.Rand
	c               *testCluster
	electionTimeout time.Duration
	writes          *writeTracker
	pending         sync.WaitGroup // writes whose futures have not resolved
	nextWrite       int
}

// round partitions the cluster at random, restarts a node one time in
// eight, issues up to seven writes spread over the round, and lets up to
// three election timeouts pass. It returns what it did, for messages.
func (p *partitionedWrites) round() string {
	how := randomPartition(p.rng, p.c)
	if p.rng.IntN(8) == 0 {
		node := p.c.nodes[p.rng.IntN(len(p.c.nodes))]
		p.c.shutdownNode(node)
		restartFaultyNode(p.c, node)
		how += ", " + string(node.id) + " restarted"
	}
	for range p.rng.IntN(8) {
		p.writeToSomeLeader()
		time.Sleep(time.Duration(p.rng.Int64N(int64(p.electionTimeout))))
	}
	time.Sleep(time.Duration(p.rng.Int64N(int64(3 * p.electionTimeout))))
	return how
}

// writeToSomeLeader sends one write to a node that believes it leads, stale
// leaders included; its future resolves on its own.
func (p *partitionedWrites) writeToSomeLeader() {
	var leaders []*Raft
	for _, node := range p.c.nodes {
		if node.raft.State() == Leader {
			leaders = append(leaders, node.raft)
		}
	}
	if len(leaders) == 0 {
		return
	}
	r := leaders[p.rng.IntN(len(leaders))]
	data := fmt.Sprintf("w%d", p.nextWrite)
	p.nextWrite++
	p.writes.issue(data)
	p.pending.Add(1)
	go func() {
		defer p.pending.Done()
		p.writes.done(data, r.Apply([]byte(data), time.Second))
	}()
}

// overwriteStaleTails makes the settled leader's log reach past the longest
// log (every log can be equal only then), waits until every node holds,
// commits and applies the leader's last index, and returns that index.
func overwriteStaleTails(t *testing.T, c *testCluster) uint64 {
	t.Helper()
	leader := settledLeader(c)
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
	return final
}

// requireIdenticalLogs checks that every log holds the same entry, term
// included, at every index up to final.
func requireIdenticalLogs(t *testing.T, c *testCluster, final uint64) {
	t.Helper()
	logs := make([]nodeLog, len(c.nodes))
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
}

// requireAckedWritesAppliedOnce checks that every acknowledged write is in
// every FSM exactly once, at its index, and that nothing was applied that
// was never written (issued) or filled in by overwriteStaleTails.
func requireAckedWritesAppliedOnce(t *testing.T, c *testCluster, acked []ackedWrite, issued map[string]bool) {
	t.Helper()
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
}

func isFill(data string) bool {
	var i, j int
	_, err := fmt.Sscanf(data, "fill%d-%d", &i, &j)
	return err == nil
}
