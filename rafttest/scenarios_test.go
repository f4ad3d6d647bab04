//go:build go1.25

package rafttest

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// The core cluster scenarios, run on both in-memory and wal stores: the
// root package's own cluster tests cannot import wal, so this is where the
// library is shown to work on its durable store too. Every scenario runs in
// a testing/synctest bubble; with WALStores the disk I/O is real, the
// timers virtual.

type scenario struct {
	name string
	opts Options
	run  func(t *testing.T, c *Cluster)
}

var scenarios = []scenario{
	{name: "NewLeaderAfterLeaderCrash", opts: Options{Voters: 3}, run: scenarioLeaderCrash},
	{name: "MajorityCommitsWhileMinorityIsPartitioned", opts: Options{Voters: 5}, run: scenarioPartition},
	{name: "RestartedFollowerCatchesUpFromItsLog", opts: Options{Voters: 3}, run: scenarioRestartCatchUp},
	{name: "LaggingFollowerCatchesUpBySnapshot", run: scenarioSnapshotInstall, opts: Options{
		Voters: 3,
		Config: func(conf *raft.Config) {
			conf.SnapshotThreshold = 8
			conf.SnapshotInterval = 10 * time.Millisecond
			conf.TrailingLogs = 2
		},
	}},
	{name: "CrashInTheMiddleOfASnapshotInstallLosesOnlyThatSnapshot", run: scenarioCrashDuringInstall, opts: Options{
		Voters:    3,
		SyncDelay: time.Millisecond,
		Config: func(conf *raft.Config) {
			conf.SnapshotThreshold = 8
			conf.SnapshotInterval = 10 * time.Millisecond
			conf.TrailingLogs = 2
		},
	}},
	{name: "WholeClusterRestartKeepsCommittedState", opts: Options{Voters: 3, SyncDelay: time.Millisecond}, run: scenarioFullRestart},
	{name: "MembershipChangeAddsAndRemovesNodes", opts: Options{Voters: 3}, run: scenarioMembership},
}

func TestScenarios(t *testing.T) {
	for _, kind := range []StoreKind{MemStores, WALStores} {
		for _, sc := range scenarios {
			t.Run(kind.String()+"/"+sc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					opts := sc.opts
					opts.Store = kind
					c := NewCluster(t, opts)
					c.WaitForLeader()
					sc.run(t, c)
				})
			})
		}
	}
}

// putN writes n keys "<prefix>-<i>" and returns the index of the last.
func putN(t *testing.T, c *Cluster, prefix string, n int) uint64 {
	t.Helper()
	var last uint64
	for i := range n {
		last = put(t, c, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprint(i))
	}
	return last
}

// requireKey checks a key on every live member's KV.
func requireKey(t *testing.T, c *Cluster, key, want string) {
	t.Helper()
	for _, n := range c.memberNodes() {
		require.Equal(t, want, n.FSM().(*KV).Get(key), "key %s on %s", key, n.ID())
	}
}

func scenarioLeaderCrash(t *testing.T, c *Cluster) {
	last := putN(t, c, "before", 5)
	c.WaitForApplied(last)
	old := c.WaitForLeader()
	require.NoError(t, c.Crash(old.ID()))

	leader := c.WaitForLeader()
	require.NotEqual(t, old.ID(), leader.ID())
	require.Greater(t, leader.Raft().CurrentTerm(), uint64(1), "the new leader was elected in a later term")
	last = putN(t, c, "after", 5)

	require.NoError(t, c.Restart(old.ID()))
	c.WaitForApplied(last)
	c.CheckConsistent()
	requireKey(t, c, "before-4", "4")
	requireKey(t, c, "after-4", "4")
}

func scenarioPartition(t *testing.T, c *Cluster) {
	leader := c.WaitForLeader()
	var majority, minority []raft.ServerID
	majority = append(majority, leader.ID())
	for _, n := range c.Nodes() {
		if n != leader {
			if len(minority) < 2 {
				minority = append(minority, n.ID())
			} else {
				majority = append(majority, n.ID())
			}
		}
	}
	c.Partition(majority, minority)
	last := putN(t, c, "split", 10)
	for _, id := range minority {
		require.Less(t, c.Node(id).Raft().AppliedIndex(), last, "%s is cut off and cannot have applied index %d", id, last)
	}

	c.Heal()
	c.WaitForApplied(last)
	c.CheckConsistent()
	requireKey(t, c, "split-9", "9")
}

func scenarioRestartCatchUp(t *testing.T, c *Cluster) {
	follower := c.Followers()[0]
	require.NoError(t, c.Crash(follower.ID()))
	last := putN(t, c, "missed", 10)
	require.NoError(t, c.Restart(follower.ID()))
	c.WaitForApplied(last)
	c.CheckConsistent()
	require.Equal(t, "9", follower.FSM().(*KV).Get("missed-9"))
}

// scenarioCrashDuringInstall cuts a follower off until it needs a
// snapshot, and crashes it while it writes the one the leader sends: the
// half-written snapshot is lost, and after a restart the follower installs
// a whole one and catches up.
func scenarioCrashDuringInstall(t *testing.T, c *Cluster) {
	follower := c.Followers()[0]
	c.Isolate(follower.ID())
	needed := follower.Raft().LastIndex() + 1
	others := c.others(follower)
	var last uint64
	for i := 0; !compactedPast(t, others, needed); i++ {
		require.Less(t, i, 500, "the nodes never compacted their logs")
		last = put(t, c, fmt.Sprintf("compacted-%d", i), fmt.Sprint(i))
		time.Sleep(5 * time.Millisecond) // give the snapshot timer a chance
	}
	for _, n := range others { // only the stores can serve the follower now
		require.NoError(t, c.Crash(n.ID()))
		require.NoError(t, c.Restart(n.ID()))
	}
	c.Heal()
	require.NoError(t, c.CrashDuringSnapshot(follower.ID(), 10*time.Second))
	for _, meta := range listSnapshots(t, follower) {
		require.Less(t, meta.Index, needed, "the snapshot the crash cut short was kept")
	}
	require.NoError(t, c.Restart(follower.ID()))
	c.WaitForApplied(last)
	c.CheckConsistent()
	snaps := listSnapshots(t, follower)
	require.NotEmpty(t, snaps)
	require.GreaterOrEqual(t, snaps[0].Index, needed, "the follower caught up without installing a snapshot")
}

func listSnapshots(t *testing.T, n *Node) []*raft.SnapshotMeta {
	t.Helper()
	snaps, err := n.snaps.List()
	require.NoError(t, err)
	return snaps
}

// others returns every node but n.
func (c *Cluster) others(n *Node) []*Node {
	var out []*Node
	for _, o := range c.Nodes() {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

func scenarioSnapshotInstall(t *testing.T, c *Cluster) {
	follower := c.Followers()[0]
	c.Isolate(follower.ID())
	followerLast := follower.Raft().LastIndex()
	var others []*Node
	for _, n := range c.Nodes() {
		if n != follower {
			others = append(others, n)
		}
	}
	// Write until both other nodes have compacted away the entries the
	// follower needs next.
	var last uint64
	for i := 0; !compactedPast(t, others, followerLast+1); i++ {
		require.Less(t, i, 500, "the nodes never compacted their logs")
		last = put(t, c, fmt.Sprintf("compacted-%d", i), fmt.Sprint(i))
		time.Sleep(5 * time.Millisecond) // give the snapshot timer a chance
	}
	// Nodes keep recent entries in memory and may still send them from
	// there; a restart leaves only what the stores hold, so the follower
	// can catch up only by snapshot.
	for _, n := range others {
		require.NoError(t, c.Crash(n.ID()))
		require.NoError(t, c.Restart(n.ID()))
	}
	c.Heal()
	c.WaitForApplied(last)
	c.CheckConsistent()
	snaps, err := follower.snaps.List()
	require.NoError(t, err)
	require.NotEmpty(t, snaps, "the follower caught up without installing a snapshot")
	require.Greater(t, snaps[0].Index, followerLast+1)
}

// compactedPast reports whether every node's log starts after index.
func compactedPast(t *testing.T, nodes []*Node, index uint64) bool {
	for _, n := range nodes {
		first, err := n.store.FirstIndex()
		require.NoError(t, err)
		if first <= index {
			return false
		}
	}
	return true
}

func scenarioFullRestart(t *testing.T, c *Cluster) {
	last := putN(t, c, "durable", 10)
	c.WaitForApplied(last)
	for _, n := range c.Nodes() {
		require.NoError(t, c.Crash(n.ID()))
	}
	for _, n := range c.Nodes() {
		require.NoError(t, c.Restart(n.ID()))
	}
	c.WaitForLeader()
	last = put(t, c, "after-restart", "yes")
	c.WaitForApplied(last)
	c.CheckConsistent()
	requireKey(t, c, "durable-9", "9")
}

func scenarioMembership(t *testing.T, c *Cluster) {
	putN(t, c, "early", 5)
	n4, err := c.AddNode()
	require.NoError(t, err)
	require.NoError(t, c.AddVoter(n4.ID(), 5*time.Second))
	leader := c.WaitForLeader()
	var removed raft.ServerID
	for _, n := range c.Nodes() {
		if n != leader && n != n4 {
			removed = n.ID()
			break
		}
	}
	require.NoError(t, c.RemoveServer(removed, 5*time.Second))
	last := putN(t, c, "late", 5)
	c.WaitForApplied(last)
	c.CheckConsistent()
	var ids []raft.ServerID
	for _, s := range c.Configuration().Servers {
		ids = append(ids, s.ID)
	}
	require.Contains(t, ids, n4.ID())
	require.NotContains(t, ids, removed)
	require.Equal(t, "4", n4.FSM().(*KV).Get("early-4"), "the added node received the entries from before it joined")
}
