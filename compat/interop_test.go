package compat

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run mixed clusters of quorumkit/raft and hashicorp/raft nodes
// over real TCP on 127.0.0.1. Real sockets cannot run in a synctest bubble,
// so they use real time; every wait is bounded by waitTimeout and polls
// rather than sleeping for a fixed time.

// compositions are the mixed 3-node clusters every test runs on.
var compositions = []struct {
	name  string
	kinds []kind
}{
	{"1 ours + 2 theirs", []kind{kindOurs, kindTheirs, kindTheirs}},
	{"2 ours + 1 theirs", []kind{kindOurs, kindOurs, kindTheirs}},
}

// forEachComposition runs test as a subtest on a fresh cluster of every
// composition.
func forEachComposition(t *testing.T, test func(t *testing.T, c *mixedCluster)) {
	for _, comp := range compositions {
		t.Run(comp.name, func(t *testing.T) {
			test(t, newMixedCluster(t, comp.kinds))
		})
	}
}

// mixedCluster is the set of current members and the commands the cluster
// acknowledged, in order: every replica must end up with exactly those.
type mixedCluster struct {
	t       *testing.T
	members []node
	want    []string
	nextID  int
	// newTimeFormat picks, by the node's sequence number, whether its
	// transport sends times in the msgpack timestamp format; nil means
	// never (the default of both libraries).
	newTimeFormat func(seq int) bool
}

// newMixedCluster starts one bootstrapped voter per kind given.
func newMixedCluster(t *testing.T, kinds []kind) *mixedCluster {
	return newMixedClusterWith(&mixedCluster{t: t}, kinds)
}

// newMixedClusterWith starts c with one bootstrapped voter per kind given.
func newMixedClusterWith(c *mixedCluster, kinds []kind) *mixedCluster {
	var servers []member
	for _, k := range kinds {
		n := c.newNode(k)
		c.members = append(c.members, n)
		servers = append(servers, member{id: n.id(), addr: n.addr()})
	}
	for _, n := range c.members {
		n.start(servers)
	}
	return c
}

// newNode makes a stopped node of kind k that is not yet a member.
func (c *mixedCluster) newNode(k kind) node {
	c.nextID++
	newTimeFormat := c.newTimeFormat != nil && c.newTimeFormat(c.nextID)
	return newNode(c.t, k, fmt.Sprintf("%s%d", k, c.nextID), newTimeFormat)
}

func (c *mixedCluster) live() []node {
	var out []node
	for _, n := range c.members {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func (c *mixedCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// waitLeader waits until exactly one live member leads and every live
// member names it as leader, and returns it.
func (c *mixedCluster) waitLeader() node {
	c.t.Helper()
	var leader node
	c.waitFor("one leader that every live member follows", func() bool {
		leader = nil
		live := c.live()
		for _, n := range live {
			if n.isLeader() {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range live {
			if n.leaderID() != leader.id() {
				return false
			}
		}
		return true
	})
	return leader
}

// apply writes count commands through leader, each acknowledged before the
// next, and records them as what every replica must hold.
func (c *mixedCluster) apply(leader node, count int) {
	c.t.Helper()
	for range count {
		cmd := fmt.Sprintf("key%d=value%d", len(c.want)%7, len(c.want))
		require.NoError(c.t, leader.apply(cmd), "apply %q on %s leader %s", cmd, leader.kind(), leader.id())
		c.want = append(c.want, cmd)
	}
}

// applyBatch submits count commands through leader all at once, each with
// extensions, so that they travel in batches and pipelined AppendEntries,
// and records them once all are acknowledged. valueSize pads each value.
func (c *mixedCluster) applyBatch(leader node, count, valueSize int, extensions []byte) {
	c.t.Helper()
	cmds := make([]string, count)
	for i := range cmds {
		seq := len(c.want) + i
		cmds[i] = fmt.Sprintf("key%d=value%d-%s", seq%7, seq, strings.Repeat("x", valueSize))
	}
	require.NoError(c.t, leader.applyAll(cmds, extensions), "batch of %d on %s leader %s", count, leader.kind(), leader.id())
	c.want = append(c.want, cmds...)
}

// requireConverged waits until every live member has applied exactly the
// acknowledged commands, in order, and holds the same map. A replica that
// applied anything else fails at once.
func (c *mixedCluster) requireConverged() {
	c.t.Helper()
	live := c.live()
	c.waitFor(fmt.Sprintf("%d commands applied on every live member", len(c.want)), func() bool {
		done := true
		for _, n := range live {
			got := n.fsm().commands()
			if len(got) > len(c.want) || !slices.Equal(got, c.want[:len(got)]) {
				c.t.Fatalf("%s (%s) applied %q, which is not a prefix of the acknowledged %q", n.id(), n.kind(), got, c.want)
			}
			done = done && len(got) == len(c.want)
		}
		return done
	})
	want := live[0].fsm().contents()
	for _, n := range live[1:] {
		require.Equal(c.t, want, n.fsm().contents(), "map of %s (%s) differs from %s (%s)", n.id(), n.kind(), live[0].id(), live[0].kind())
	}
}

// requireMembers waits until every live member's latest configuration
// lists exactly the cluster's members, all voters but those in nonvoters.
func (c *mixedCluster) requireMembers(nonvoters ...node) {
	c.t.Helper()
	want := map[string]string{}
	for _, n := range c.members {
		want[n.id()] = "Voter"
	}
	for _, n := range nonvoters {
		want[n.id()] = "Nonvoter"
	}
	for _, n := range c.live() {
		c.waitFor(fmt.Sprintf("%s to see members %v", n.id(), want), func() bool {
			got, err := n.servers()
			require.NoError(c.t, err)
			return maps.Equal(got, want)
		})
	}
}

// transfer moves leadership from leader to target and waits until target
// leads a settled cluster.
func (c *mixedCluster) transfer(leader, target node) node {
	c.t.Helper()
	require.NoError(c.t, leader.transferTo(target), "transfer from %s (%s) to %s (%s)", leader.id(), leader.kind(), target.id(), target.kind())
	now := c.waitLeader()
	require.Equal(c.t, target.id(), now.id(), "leader after transferring to %s", target.id())
	return now
}

// leaderOfKind returns the leader, first moving leadership to a member of
// kind k if the leader is of the other kind.
func (c *mixedCluster) leaderOfKind(k kind) node {
	c.t.Helper()
	leader := c.waitLeader()
	if leader.kind() == k {
		return leader
	}
	return c.transfer(leader, c.follower(leader, k))
}

// follower returns a live member of kind k other than leader.
func (c *mixedCluster) follower(leader node, k kind) node {
	c.t.Helper()
	for _, n := range c.live() {
		if n != leader && n.kind() == k {
			return n
		}
	}
	c.t.Fatalf("no live %s follower besides %s", k, leader.id())
	return nil
}

// minorityKind is the kind only one member has.
func (c *mixedCluster) minorityKind() kind {
	count := map[kind]int{}
	for _, n := range c.members {
		count[n.kind()]++
	}
	if count[kindOurs] == 1 {
		return kindOurs
	}
	return kindTheirs
}

func other(k kind) kind {
	if k == kindOurs {
		return kindTheirs
	}
	return kindOurs
}

// TestMixedClusterElectsAndReplicates: a bootstrapped mixed cluster elects
// one leader that every node follows, and every FSM applies the same
// commands in the same order.
func TestMixedClusterElectsAndReplicates(t *testing.T) {
	forEachComposition(t, func(t *testing.T, c *mixedCluster) {
		leader := c.waitLeader()
		t.Logf("elected %s (%s)", leader.id(), leader.kind())
		c.apply(leader, 50)
		c.requireConverged()
		c.requireMembers()
	})
}

// TestMixedClusterTransfersLeadershipBothWays: leadership moves from a node
// of one library to a node of the other and back; each new leader confirms
// its leadership with heartbeats answered by both libraries, replicates to
// all, and a barrier on it returns once its FSM is up to date.
func TestMixedClusterTransfersLeadershipBothWays(t *testing.T) {
	forEachComposition(t, func(t *testing.T, c *mixedCluster) {
		leader := c.waitLeader()
		c.apply(leader, 5)
		for range 2 {
			from := leader
			leader = c.transfer(leader, c.follower(leader, other(leader.kind())))
			t.Logf("transferred from %s (%s) to %s (%s)", from.id(), from.kind(), leader.id(), leader.kind())
			require.NoError(t, leader.verifyLeader(), "%s leader %s verifies its leadership", leader.kind(), leader.id())
			c.applyBatch(leader, 20, 0, nil)
			require.NoError(t, leader.barrier(), "barrier on %s leader %s", leader.kind(), leader.id())
			require.Equal(t, c.want, leader.fsm().commands(), "after a barrier the leader's FSM holds every write")
			c.requireConverged()
		}
	})
}

// TestMixedClusterMembershipAndSnapshots: a leader of each library removes
// a member of the other library and adds a fresh one; the leader has
// compacted its log after a snapshot, so the new member catches up by
// InstallSnapshot, streamed across the libraries in both directions.
func TestMixedClusterMembershipAndSnapshots(t *testing.T) {
	forEachComposition(t, func(t *testing.T, c *mixedCluster) {
		for _, leaderKind := range []kind{kindOurs, kindTheirs} {
			leader := c.leaderOfKind(leaderKind)
			c.apply(leader, 20)
			require.NoError(t, leader.snapshot(), "snapshot on %s leader", leaderKind)
			c.apply(leader, trailingLogs+2)

			removed := c.follower(leader, other(leaderKind))
			require.NoError(t, leader.removeServer(removed), "%s leader removes %s", leaderKind, removed.id())
			removed.stop()
			c.members = slices.DeleteFunc(c.members, func(n node) bool { return n == removed })
			c.requireMembers()

			added := c.newNode(other(leaderKind))
			added.start(nil)
			require.NoError(t, leader.addVoter(added), "%s leader adds %s", leaderKind, added.id())
			c.members = append(c.members, added)
			c.apply(leader, 5)
			c.requireConverged()
			c.requireMembers()
			require.GreaterOrEqual(t, added.fsm().restoreCount(), 1,
				"new %s member %s caught up by a snapshot from the %s leader", added.kind(), added.id(), leaderKind)
		}
	})
}

// TestMixedClusterFailsOverAndRejoins: the leader, the only node of its
// library, stops; the two nodes of the other library elect a leader by a
// real election and keep writing, compacting their log; the old leader
// restarts from its stores and catches up by a snapshot sent by the new
// leader's library.
func TestMixedClusterFailsOverAndRejoins(t *testing.T) {
	forEachComposition(t, func(t *testing.T, c *mixedCluster) {
		minority := c.minorityKind()
		old := c.leaderOfKind(minority)
		c.apply(old, 10)
		c.requireConverged()
		old.stop()

		leader := c.waitLeader()
		require.Equal(t, other(minority), leader.kind(), "only %s nodes are left to elect", other(minority))
		c.apply(leader, 20)
		require.NoError(t, leader.snapshot(), "snapshot on the new %s leader", leader.kind())
		c.apply(leader, trailingLogs+2)
		c.requireConverged()

		old.start(nil)
		c.apply(leader, 5)
		c.requireConverged()
		require.GreaterOrEqual(t, old.fsm().restoreCount(), 1,
			"restarted %s node %s caught up by a snapshot from the %s leader", old.kind(), old.id(), leader.kind())
		require.Equal(t, leader.id(), c.waitLeader().id(), "the rejoining node did not disturb the leader")
	})
}

// TestMixedClusterReplicatesEveryLogField: a leader of each library
// replicates a burst of entries, submitted at once so that they go out in
// batches over the pipeline, and every follower of either library stores
// each entry field for field as the leader does: index, term, type, data,
// extensions, and the leader's AppendedAt time to the nanosecond.
func TestMixedClusterReplicatesEveryLogField(t *testing.T) {
	forEachComposition(t, requireLogFieldsReplicated)
}

// TestMixedClusterMixedTimeFormats: as TestMixedClusterReplicatesEveryLogField,
// with some transports of each library sending AppendedAt in the msgpack
// timestamp format (MsgpackUseNewTimeFormat) and the others in the legacy
// one, as during a rolling change of that setting.
func TestMixedClusterMixedTimeFormats(t *testing.T) {
	for _, comp := range compositions {
		t.Run(comp.name, func(t *testing.T) {
			c := &mixedCluster{t: t, newTimeFormat: func(seq int) bool { return seq%2 == 0 }}
			requireLogFieldsReplicated(t, newMixedClusterWith(c, comp.kinds))
		})
	}
}

// requireLogFieldsReplicated has a leader of each library replicate a burst
// and checks every member's copy of each entry, field for field.
func requireLogFieldsReplicated(t *testing.T, c *mixedCluster) {
	for _, leaderKind := range []kind{kindOurs, kindTheirs} {
		leader := c.leaderOfKind(leaderKind)
		first := leader.lastIndex() + 1
		start := time.Now()
		c.applyBatch(leader, 300, 0, []byte("ext from "+string(leaderKind)))
		c.requireConverged()
		last := leader.lastIndex()
		require.GreaterOrEqual(t, last, first+299)
		for index := first; index <= last; index++ {
			want, err := leader.storedLog(index)
			require.NoError(t, err, "leader %s entry %d", leader.id(), index)
			require.False(t, want.AppendedAt.Before(start.Add(-time.Second)), "leader %s stamps entry %d when it appends it", leader.id(), index)
			for _, n := range c.live() {
				got, err := n.storedLog(index)
				require.NoError(t, err, "%s (%s) entry %d", n.id(), n.kind(), index)
				require.True(t, want.AppendedAt.Equal(got.AppendedAt), "%s (%s) entry %d AppendedAt: want %v, got %v",
					n.id(), n.kind(), index, want.AppendedAt, got.AppendedAt)
				wantFields, gotFields := want, got
				wantFields.AppendedAt, gotFields.AppendedAt = time.Time{}, time.Time{}
				require.Equal(t, wantFields, gotFields, "%s (%s) entry %d", n.id(), n.kind(), index)
			}
		}
	}
}

// TestMixedClusterLargeEntriesAndSnapshots: entries of a few hundred KiB
// replicate across the libraries, and a snapshot of over a MiB streams
// from a leader of each library to a new member of the other.
func TestMixedClusterLargeEntriesAndSnapshots(t *testing.T) {
	forEachComposition(t, func(t *testing.T, c *mixedCluster) {
		for _, leaderKind := range []kind{kindOurs, kindTheirs} {
			leader := c.leaderOfKind(leaderKind)
			c.applyBatch(leader, 4, 256<<10, nil)
			require.NoError(t, leader.snapshot(), "snapshot on %s leader", leaderKind)
			c.apply(leader, trailingLogs+2)

			removed := c.follower(leader, other(leaderKind))
			require.NoError(t, leader.removeServer(removed), "%s leader removes %s", leaderKind, removed.id())
			removed.stop()
			c.members = slices.DeleteFunc(c.members, func(n node) bool { return n == removed })

			added := c.newNode(other(leaderKind))
			added.start(nil)
			require.NoError(t, leader.addVoter(added), "%s leader adds %s", leaderKind, added.id())
			c.members = append(c.members, added)
			c.requireConverged()
			require.GreaterOrEqual(t, added.fsm().restoreCount(), 1,
				"new %s member %s caught up by a snapshot from the %s leader", added.kind(), added.id(), leaderKind)
		}
	})
}

// TestMixedClusterNonvoterPromotedAndRemoved: a leader of each library adds
// a node of the other library as a nonvoter, which replicates without
// voting, then promotes it to voter and finally removes it.
func TestMixedClusterNonvoterPromotedAndRemoved(t *testing.T) {
	forEachComposition(t, func(t *testing.T, c *mixedCluster) {
		for _, leaderKind := range []kind{kindOurs, kindTheirs} {
			leader := c.leaderOfKind(leaderKind)
			c.apply(leader, 5)

			learner := c.newNode(other(leaderKind))
			learner.start(nil)
			require.NoError(t, leader.addNonvoter(learner), "%s leader adds nonvoter %s", leaderKind, learner.id())
			c.members = append(c.members, learner)
			c.requireMembers(learner)
			c.apply(leader, 5)
			c.requireConverged()

			require.NoError(t, leader.addVoter(learner), "%s leader promotes %s", leaderKind, learner.id())
			c.requireMembers()
			c.apply(leader, 5)
			c.requireConverged()

			require.NoError(t, leader.removeServer(learner), "%s leader removes %s", leaderKind, learner.id())
			learner.stop()
			c.members = slices.DeleteFunc(c.members, func(n node) bool { return n == learner })
			c.requireMembers()
			c.apply(leader, 5)
			c.requireConverged()
		}
	})
}
