//go:build go1.25

package rafttest

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// chaosTrace is what one chaos schedule did, in virtual time since its
// start: every nemesis step with its outcome, every client operation with
// its result (one sequence per client: two clients acting at the same
// virtual instant have no order to compare), and the nodes' final state.
type chaosTrace struct {
	start time.Time
	// nemesis holds the steps in order.
	nemesis []string
	// clients holds each client's operations in order; when set before
	// the run, its length is how many clients run.
	clients [][]string
	final   string
}

// at prefixes an event with the virtual time since the start, in seconds
// to the nanosecond, always 13 characters wide so that events sort by time.
func (tr *chaosTrace) at() string { return fmt.Sprintf("%12.9f ", time.Since(tr.start).Seconds()) }

var (
	replaysFlag = flag.Int("rafttest.replays", 0,
		"TestChaosReplays runs the chaos schedule of -rafttest.seed (default 1) this many times more and compares each run with the first")
	replayClientsFlag = flag.Int("rafttest.replayclients", 0,
		"clients of TestChaosReplays (0: as many as the schedule picks)")
)

// TestClusterReplaysFromItsSeed runs one seeded schedule twice, each in a
// bubble of its own, and requires the two to match event for event, at the
// same virtual instants: the nemesis crashes and isolates leaders and
// partitions the cluster at moments the seed picks, and after every step a
// writer commits one command on whichever node leads. Every choice that
// decides the run comes from the seed: the nemesis', the links', and the
// nodes' election and heartbeat timeouts.
//
// Lossy links are left out: a lost heartbeat and a lost AppendEntries sent
// at one instant back off by the same fixed wait and retry at one instant,
// and which the follower handles first is then up to the Go scheduler
// (measured: 13 of 100 seeds part when the nemesis also drops messages).
func TestClusterReplaysFromItsSeed(t *testing.T) {
	seed := int64(1)
	if s, ok := SeedFromFlag(); ok {
		seed = s
	}
	run := func() (events []string) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			rng := newRand(seed, stream("replay"))
			c := NewCluster(t, Options{Voters: 5, Seed: seed, Config: func(conf *raft.Config) {
				conf.SnapshotThreshold = 8
				conf.TrailingLogs = 4
				conf.SnapshotInterval = 20 * time.Millisecond
			}})
			var crashed []raft.ServerID
			for step := range 30 {
				time.Sleep(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
				action := "heal"
				leader, err := c.Leader(time.Second)
				switch k := rng.IntN(5); {
				case k <= 2 && err != nil:
					action = "no leader"
				case k == 0 && len(crashed) < 2:
					require.NoError(t, c.Crash(leader.ID()))
					crashed = append(crashed, leader.ID())
					action = "crash " + string(leader.ID())
				case k == 1 && len(crashed) > 0:
					id := crashed[0]
					require.NoError(t, c.Restart(id))
					crashed = crashed[1:]
					action = "restart " + string(id)
				case k == 2:
					c.Isolate(leader.ID())
					action = "isolate " + string(leader.ID())
				case k == 3:
					ids := []raft.ServerID{"node1", "node2", "node3", "node4", "node5"}
					rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
					c.Partition(ids[:2], ids[2:])
					action = fmt.Sprint("partition ", ids[:2], ids[2:])
				default:
					c.Heal()
				}
				f, err := c.Apply([]byte(fmt.Sprintf("step %d", step)), time.Second)
				applied := ""
				if err == nil {
					applied = fmt.Sprintf("at index %d", f.Index())
				}
				events = append(events, fmt.Sprintf("%12.9f %s; apply: %v %s", time.Since(start).Seconds(), action, err, applied))
			}
			c.Heal()
			for _, id := range crashed {
				require.NoError(t, c.Restart(id))
			}
			c.CheckConsistent()
			events = append(events, strings.Split(replayState(c), "\n")...)
		})
		return events
	}
	first, second := run(), run()
	if testing.Verbose() {
		t.Logf("seed %d:\n%s", seed, strings.Join(first, "\n"))
	}
	require.Equal(t, first, second, "seed %d: two runs differ; first difference:\n%s", seed, firstDifference(first, second))
}

// TestChaosReplays replays one chaos schedule: with -rafttest.replays=N it
// runs the schedule of -rafttest.seed (default 1) N+1 times, each in a
// bubble of its own, and compares every run's trace with the first's. It
// is a tool, off by default: a chaos schedule's clients and nemesis race
// the cluster, and where two goroutines are ready at the same virtual
// instant their order is the Go scheduler's (select picks a ready case at
// random), not the seed's. Measured: 52 of 60 seeds replay event for
// event with one client (-rafttest.replayclients=1), 24 of 30 with the
// schedule's clients; the others part somewhere, mostly by one sync delay
// or poll interval in an operation's latency.
func TestChaosReplays(t *testing.T) {
	if *replaysFlag <= 0 {
		t.Skip("a measurement, not a check: run with -rafttest.replays=N")
	}
	seed := int64(1)
	if s, ok := SeedFromFlag(); ok {
		seed = s
	}
	run := func() *chaosTrace {
		trace := &chaosTrace{}
		if *replayClientsFlag > 0 {
			trace.clients = make([][]string, *replayClientsFlag)
		}
		synctest.Test(t, func(t *testing.T) { runChaos(t, seed, trace) })
		return trace
	}
	first := run().events()
	same := 0
	for i := range *replaysFlag {
		if d := firstDifference(first, run().events()); d != "" {
			t.Errorf("seed %d: replay %d parts from the first run at:\n%s", seed, i+1, d)
		} else {
			same++
		}
	}
	t.Logf("seed %d: %d of %d replays identical to the first run", seed, same, *replaysFlag)
}

// replayState describes every node at the end of a schedule: role, term,
// log, commit and applied indexes, configuration and FSM contents. It
// leaves out the index of each node's last snapshot: replays showed it
// differing by an entry or a few between two runs of one seed whose every
// other event matched (6 seeds of 30), a race inside a node between the
// snapshot runner and the FSM runner that the seed does not decide.
//
// It first waits for the nodes to agree on their last, commit and applied
// indexes: CheckConsistent returns once the FSMs match, which a node
// installing a snapshot reaches before it has recorded the snapshot and
// trimmed its log.
func replayState(c *Cluster) string {
	c.t.Helper()
	deadline := time.Now().Add(c.opts.WaitTimeout)
	for !c.indexesAgree() {
		if !time.Now().Before(deadline) {
			c.t.Fatalf("rafttest: after %v the nodes still disagree on their indexes:\n%s", c.opts.WaitTimeout, c.describeNodes())
		}
		time.Sleep(pollInterval)
	}
	var b strings.Builder
	for _, n := range c.Nodes() {
		r, fsm := n.running()
		if r == nil {
			fmt.Fprintf(&b, "%s: crashed\n", n.id)
			continue
		}
		st := r.Stats()
		state, err := c.fsmState(fsm)
		fmt.Fprintf(&b, "%s: %s term=%s last_index=%d commit=%s applied=%d config=%s fsm=%q (%v)\n",
			n.id, st["state"], st["term"], r.LastIndex(), st["commit_index"], r.AppliedIndex(),
			st["latest_configuration"], state, err)
	}
	return b.String()
}

// events returns the trace as one sequence in virtual-time order, each
// client event tagged with its client.
func (tr *chaosTrace) events() []string {
	events := slices.Clone(tr.nemesis)
	for i, c := range tr.clients {
		for _, e := range c {
			events = append(events, fmt.Sprintf("%s client %d: %s", e[:13], i, e[13:]))
		}
	}
	slices.Sort(events) // each event starts with its time, padded to one width
	return append(events, strings.Split(tr.final, "\n")...)
}

// firstDifference shows where two event sequences part, with the events
// just before; "" if they are equal.
func firstDifference(a, b []string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) && i == len(b) {
		return ""
	}
	var out strings.Builder
	for _, e := range a[max(i-5, 0):i] {
		fmt.Fprintf(&out, "    %s\n", e)
	}
	at := func(events []string) string {
		if i < len(events) {
			return events[i]
		}
		return "(end)"
	}
	fmt.Fprintf(&out, "  - %s\n  + %s\n", at(a), at(b))
	return out.String()
}

// indexesAgree reports whether every live member of the newest
// configuration has the same last, commit and applied index.
func (c *Cluster) indexesAgree() bool {
	var want string
	for i, n := range c.memberNodes() {
		r := n.Raft()
		if r == nil {
			return false
		}
		got := fmt.Sprint(r.LastIndex(), r.Stats()["commit_index"], r.AppliedIndex())
		if i > 0 && got != want {
			return false
		}
		want = got
	}
	return true
}
