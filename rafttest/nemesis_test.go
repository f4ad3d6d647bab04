//go:build go1.25

package rafttest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// The nemesis of the chaos schedules (chaos_test.go): the faults it
// injects, one step at a time, and the recovery at the end.

// nemesis injects one fault per step, keeping at most two of the five
// voters crashed or removed at a time so that the cluster can make
// progress between faults.
type nemesis struct {
	c       *Cluster
	rng     *rand.Rand
	ids     []raft.ServerID
	crashed []raft.ServerID
	removed []raft.ServerID
	actions map[string]int
	// record, when set, is told every step taken.
	record func(event string)
	// burst is how many entries figure8 and quietCatchUp append at once,
	// to a key the clients never touch: enough for three AppendEntries.
	burst int
}

func newNemesis(c *Cluster, rng *rand.Rand) *nemesis {
	n := &nemesis{c: c, rng: rng, actions: map[string]int{}, record: func(string) {}}
	for _, node := range c.Nodes() {
		n.ids = append(n.ids, node.ID())
	}
	return n
}

// did counts a step taken and records it with its details.
func (n *nemesis) did(action string, details ...any) {
	n.actions[action]++
	n.record(strings.TrimSpace(fmt.Sprintln(append([]any{action}, details...)...)))
}

func (n *nemesis) pick(from []raft.ServerID) raft.ServerID { return from[n.rng.IntN(len(from))] }

func (n *nemesis) down() int { return len(n.crashed) + len(n.removed) }

// up returns the nodes neither crashed nor removed.
func (n *nemesis) up() []raft.ServerID {
	var out []raft.ServerID
	for _, id := range n.ids {
		if !slices.Contains(n.crashed, id) && !slices.Contains(n.removed, id) {
			out = append(out, id)
		}
	}
	return out
}

func (n *nemesis) leader() (raft.ServerID, bool) {
	l, err := n.c.Leader(100 * time.Millisecond)
	if err != nil {
		return "", false
	}
	return l.ID(), true
}

func (n *nemesis) step(t *testing.T) {
	const changeTimeout = 300 * time.Millisecond
	action := n.rng.IntN(15)
	switch {
	case action >= 11:
		n.compoundStep(t, action, changeTimeout)
	case action == 0:
		n.c.Heal()
		n.did("heal")
	case action == 1:
		ids := slices.Clone(n.ids)
		n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := 1 + n.rng.IntN(2)
		n.c.Partition(ids[:k], ids[k:])
		n.did("partition", ids[:k], ids[k:])
	case action == 2:
		if id, ok := n.leader(); ok {
			n.c.Isolate(id)
			n.did("isolate-leader", id)
		}
	case action == 3 || action == 4:
		var id raft.ServerID
		if action == 4 {
			var ok bool
			if id, ok = n.leader(); !ok {
				return
			}
		} else {
			id = n.pick(n.ids)
		}
		if n.down() >= 2 || slices.Contains(n.crashed, id) || slices.Contains(n.removed, id) {
			return
		}
		require.NoError(t, n.c.Crash(id))
		n.crashed = append(n.crashed, id)
		n.did("crash", id)
	case action == 5 || action == 6:
		if len(n.crashed) == 0 {
			return
		}
		i := n.rng.IntN(len(n.crashed))
		require.NoError(t, n.c.Restart(n.crashed[i]))
		n.did("restart", n.crashed[i])
		n.crashed = slices.Delete(n.crashed, i, i+1)
	case action == 7:
		if n.down() >= 2 {
			return
		}
		id := n.pick(n.up())
		err := n.c.RemoveServer(id, changeTimeout)
		if err == nil {
			n.removed = append(n.removed, id)
			n.did("remove", id)
		} else {
			n.record(fmt.Sprintf("remove %s: %v", id, err))
		}
	case action == 8:
		if len(n.removed) == 0 {
			return
		}
		i := n.rng.IntN(len(n.removed))
		id := n.removed[i]
		err := n.c.AddVoter(id, changeTimeout)
		if err == nil {
			n.removed = slices.Delete(n.removed, i, i+1)
			n.did("add", id)
		} else {
			n.record(fmt.Sprintf("add %s: %v", id, err))
		}
	case action == 9:
		if err := n.c.TransferLeadership("", changeTimeout); err == nil {
			n.did("transfer")
		} else {
			n.record(fmt.Sprintf("transfer: %v", err))
		}
	case action == 10:
		fault := LinkFault{
			Drop:   float64(n.rng.IntN(20)) / 100,
			Delay:  time.Duration(n.rng.IntN(3)) * time.Millisecond,
			Jitter: time.Duration(n.rng.IntN(5)) * time.Millisecond,
		}
		n.c.SetAllLinkFaults(fault)
		n.did("lossy-links", fault)
	}
}

// compoundStep takes one of the nemesis steps made of several faults in a
// row: the shapes the simple steps reach only by luck.
func (n *nemesis) compoundStep(t *testing.T, action int, changeTimeout time.Duration) {
	switch action {
	case 11:
		// Membership churn while a node is cut off: it misses the
		// removal and the re-addition of another, and must learn both
		// once it is back.
		if n.down() > 0 {
			return
		}
		up := n.up()
		n.rng.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
		cutOff, churned := up[0], up[1]
		n.c.Isolate(cutOff)
		n.did("isolate", cutOff)
		if err := n.c.RemoveServer(churned, changeTimeout); err != nil {
			n.record(fmt.Sprintf("remove %s while %s is cut off: %v", churned, cutOff, err))
			return
		}
		n.removed = append(n.removed, churned)
		n.did("remove-while-cut-off", churned)
		if err := n.c.AddVoter(churned, changeTimeout); err != nil {
			n.record(fmt.Sprintf("add %s while %s is cut off: %v", churned, cutOff, err))
			return
		}
		n.removed = slices.DeleteFunc(n.removed, func(id raft.ServerID) bool { return id == churned })
		n.did("add-while-cut-off", churned)
	case 12:
		// A crash in the middle of a snapshot write: cut a follower off
		// while the clients write (the leader compacts past it), let it
		// back, and crash it as it makes the snapshot it gets durable.
		leader, ok := n.leader()
		if !ok || n.down() >= 2 {
			return
		}
		followers := without(n.up(), leader)
		if len(followers) == 0 {
			return
		}
		id := n.pick(followers)
		n.c.Isolate(id)
		time.Sleep(50*time.Millisecond + time.Duration(n.rng.Int64N(int64(150*time.Millisecond))))
		n.c.Heal()
		switch err := n.c.CrashDuringSnapshot(id, 300*time.Millisecond); {
		case err == nil:
			n.crashed = append(n.crashed, id)
			n.did("crash-during-snapshot", id)
		case errors.Is(err, ErrNoSnapshotWrite):
			n.record(fmt.Sprintf("crash %s during a snapshot: %v", id, err))
		default:
			require.NoError(t, err)
		}
	case 13:
		// Leadership transfer while the cluster is partitioned: the
		// target may be unreachable, or win where the leader cannot.
		ids := slices.Clone(n.ids)
		n.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := 1 + n.rng.IntN(2)
		n.c.Partition(ids[:k], ids[k:])
		n.did("partition", ids[:k], ids[k:])
		if err := n.c.TransferLeadership("", changeTimeout); err == nil {
			n.did("transfer-while-partitioned")
		} else {
			n.record(fmt.Sprintf("transfer while partitioned: %v", err))
		}
	case 14:
		if n.rng.IntN(2) == 0 {
			n.figure8(t)
			return
		}
		// Figure 8 of the Raft paper, loosely: leaders replaced in quick
		// succession, each cut off with one follower so that the pair
		// keeps an uncommitted tail of its term that the next leaders
		// lack; the last may be crashed just after it wins, before its
		// own term's entry is replicated.
		rounds := 2 + n.rng.IntN(3)
		for range rounds {
			leader, ok := n.leader()
			if !ok {
				break
			}
			others := without(n.up(), leader)
			if len(others) == 0 {
				break
			}
			partner := n.pick(others)
			n.c.Partition([]raft.ServerID{leader, partner}, without(n.ids, leader, partner))
			n.did("figure8-cut", leader, partner)
			time.Sleep(time.Millisecond + time.Duration(n.rng.Int64N(int64(40*time.Millisecond))))
		}
		n.c.Heal()
		if leader, ok := n.leader(); ok && n.down() < 2 && n.rng.IntN(2) == 0 {
			time.Sleep(time.Duration(n.rng.Int64N(int64(5 * time.Millisecond))))
			require.NoError(t, n.c.Crash(leader))
			n.crashed = append(n.crashed, leader)
			n.did("figure8-crash-new-leader", leader)
		}
	}
}

// nextWinner runs then (if set), and waits up to two seconds for the next
// node to win an election; onWin (if set) runs on the winner's main loop
// the moment it wins, before it replicates anything.
func (n *nemesis) nextWinner(onWin func(id raft.ServerID), then ...func()) (raft.ServerID, bool) {
	won := make(chan raft.ServerID, 1)
	n.c.leaders.setOnNextWin(func(id raft.ServerID) {
		if onWin != nil {
			onWin(id)
		}
		won <- id
	})
	for _, f := range then {
		f()
	}
	select {
	case id := <-won:
		return id, true
	case <-time.After(2 * time.Second):
		n.c.leaders.setOnNextWin(nil)
		return "", false
	}
}

// without returns ids less drop, in order.
func without(ids []raft.ServerID, drop ...raft.ServerID) []raft.ServerID {
	var out []raft.ServerID
	for _, id := range ids {
		if !slices.Contains(drop, id) {
			out = append(out, id)
		}
	}
	return out
}

// figure8 drives the cluster through the shape of Figure 8 of the Raft
// paper, where a leader that commits an entry of an earlier term by
// counting its replicas loses it:
//  1. the leader (term a) is cut off with one partner, and is handed a tail
//     of burst entries (puts of a key the clients never touch) on
//     top of its clients' writes: both keep an uncommitted tail of term a;
//  2. the other three elect a leader (term b), which is cut off at the
//     moment it wins, its own entries on no one else;
//  3. the term-a pair rejoins the two that are left and one of the pair
//     wins (term c), catching the others up over slow links. The tail is
//     long enough that its first AppendEntries to them carry only term-a
//     entries; the pair is crashed as soon as the term-c leader's commit
//     index moves (and it has applied what it committed), or after a
//     while. Raft moves it only once the term-c entry is on a majority; a
//     leader that counts replicas of earlier terms moves it as soon as the
//     first term-a entries reach a third node, and applies them;
//  4. the term-b leader rejoins: its last term beats the term-a tails of
//     the two left, it wins and overwrites them. The entries the crashed
//     leader applied at those indexes differ from what the others apply
//     there, which CheckStateMachineSafety reports.
func (n *nemesis) figure8(t *testing.T) {
	if n.down() > 0 {
		return
	}
	first, ok := n.leader()
	if !ok {
		return
	}
	others := without(n.ids, first)
	n.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	partner := others[0]
	n.c.Partition([]raft.ServerID{first, partner}, others[1:])
	n.did("figure8-cut-pair", first, partner)
	if r := n.c.Node(first).Raft(); r != nil {
		n.appendBurst(r, "figure8")
		n.did("figure8-tail", n.burst)
	}
	// 2. The next leader is cut off as it wins, before it replicates.
	second, ok := n.nextWinner(func(id raft.ServerID) { n.c.Isolate(id) })
	if !ok {
		n.record("figure8: no second leader")
		return
	}
	n.did("figure8-cut-at-election", second)
	// 3. Everyone but the second leader is connected again, over slow
	// links that stretch the catching up over several milliseconds.
	n.c.SetAllLinkFaults(LinkFault{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond})
	var wonAt uint64
	third, ok := n.nextWinner(func(id raft.ServerID) {
		if r := n.c.Node(id).Raft(); r != nil {
			wonAt = r.CommitIndex()
		}
	}, func() { n.c.Partition(without(n.ids, second), []raft.ServerID{second}) })
	if !ok {
		n.record("figure8: no third leader")
		return
	}
	n.did("figure8-third", third, n.awaitFirstCommit(third, wonAt, 20*time.Millisecond+time.Duration(n.rng.Int64N(int64(80*time.Millisecond)))))
	// The third leader goes down, and with it the other node of the pair,
	// the one follower sure to hold the third leader's first entry: the
	// second leader then needs only the two that were catching up.
	for _, id := range []raft.ServerID{third, without([]raft.ServerID{first, partner}, third)[0]} {
		require.NoError(t, n.c.Crash(id))
		n.crashed = append(n.crashed, id)
		n.did("figure8-crash", id)
	}
	// 4. The second leader rejoins.
	n.c.Heal()
	n.did("heal")
}

// awaitFirstCommit waits until the leader id moves its commit index past
// wonAt, where it stood when it won, and has applied that far, or until
// timeout; it says which happened. It looks every 100µs: the step that
// follows must land between two AppendEntries of the leader.
func (n *nemesis) awaitFirstCommit(id raft.ServerID, wonAt uint64, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r := n.c.Node(id).Raft()
		if r == nil {
			return "crashed"
		}
		if commit := r.CommitIndex(); commit > wonAt && r.AppliedIndex() >= commit {
			return fmt.Sprintf("committed %d", commit)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return "no commit"
}

// appendBurst appends n.burst puts of key to r without waiting for them:
// their futures resolve when they commit or r loses leadership.
func (n *nemesis) appendBurst(r *raft.Raft, key string) {
	for i := range n.burst {
		r.Apply(EncodeKV(KVInput{Op: KVPut, Key: key, Value: fmt.Sprint(i)}), 0)
	}
}

// quietCatchUp runs once the clients have stopped: a follower is cut off
// while the leader commits a burst, and then catches up over several
// AppendEntries, each carrying a commit index past its last entry. No
// later write pushes the follower's commit index on, so the
// CheckConsistent that follows sees whether it applies everything from
// what those requests carried alone.
func (n *nemesis) quietCatchUp(t *testing.T) {
	leader, err := n.c.Leader(5 * time.Second)
	require.NoError(t, err, "no leader after recovery")
	followers := without(n.up(), leader.ID())
	if len(followers) == 0 {
		return
	}
	follower := n.pick(followers)
	n.c.Isolate(follower)
	if r := leader.Raft(); r != nil {
		n.appendBurst(r, "catch-up")
		// Bounded: a cluster broken by a mutation (scripts/mutate) may
		// never commit again, and the checks that follow should say so
		// rather than the run hang.
		err = n.c.await(r.Barrier(time.Second), time.Now().Add(5*time.Second))
	}
	n.c.Heal()
	n.did("quiet-catch-up", follower, err)
}

// recover heals the network, restarts crashed nodes and adds removed ones
// back, so that the end state can be compared on all five.
func (n *nemesis) recover(t *testing.T) {
	n.c.Heal()
	for _, id := range n.crashed {
		require.NoError(t, n.c.Restart(id))
	}
	n.crashed = nil
	for _, id := range n.removed {
		require.NoError(t, n.addBack(id, 10*time.Second), "adding back %s after healing", id)
	}
	n.removed = nil
}

// addBack makes id a voter again, trying until timeout. A change can fail
// with an unknown outcome even on a healed network: a transfer the nemesis
// started whose answer was lost may still depose the leader while it
// commits the change (raft.ErrLeadershipLost). Adding a voter that already
// is one changes nothing, so trying again is safe.
func (n *nemesis) addBack(id raft.ServerID, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := n.c.AddVoter(id, time.Until(deadline))
		if err == nil || errors.Is(err, ErrClosed) || !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}
