//go:build go1.25

package rafttest

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
	"github.com/stretchr/testify/require"
)

var (
	schedulesFlag = flag.Int("rafttest.schedules", 30,
		"how many seeded chaos schedules TestChaos runs (seeds 1..N); -rafttest.seed=N runs only schedule N")
	checkTimeoutFlag = flag.Duration("rafttest.checktimeout", time.Minute,
		"how long the linearizability check of one chaos schedule may search (a broken history can take long to refute)")
)

// TestChaos runs seeded schedules of a five-node KV cluster under
// concurrent clients and a nemesis, and checks that the clients' history is
// linearizable and that every replica ends with the same state. All of it
// runs in a testing/synctest bubble, on virtual time.
func TestChaos(t *testing.T) {
	var seeds []int64
	if seed, ok := SeedFromFlag(); ok {
		seeds = []int64{seed}
	} else {
		for i := 1; i <= *schedulesFlag; i++ {
			seeds = append(seeds, int64(i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) { runChaos(t, seed, nil) })
		})
	}
}

// chaosSchedule holds the knobs one seed picks.
type chaosSchedule struct {
	clients           int
	duration          time.Duration
	snapshotThreshold uint64
	trailingLogs      uint64
	snapshotInterval  time.Duration
	syncDelay         time.Duration
	store             StoreKind
	readMode          ReadMode
	// maxAppendEntries caps the entries per AppendEntries (0: raft's
	// default). Small batches make a new leader bring followers up to date
	// over many rounds, so that it learns of earlier terms' entries on a
	// majority before its own term's first entry gets there.
	maxAppendEntries int
	// preVoteDisabled runs elections without prevote, so that the vote's
	// own checks stand alone (prevote would otherwise stop a stale
	// candidate first).
	preVoteDisabled bool
}

func newChaosSchedule(rng *rand.Rand) chaosSchedule {
	return chaosSchedule{
		clients:           3 + rng.IntN(3),
		duration:          2 * time.Second,
		snapshotThreshold: uint64(4 + rng.IntN(29)),
		trailingLogs:      uint64(rng.IntN(17)),
		snapshotInterval:  time.Duration(5+rng.IntN(46)) * time.Millisecond,
		syncDelay:         []time.Duration{0, 100 * time.Microsecond, time.Millisecond}[rng.IntN(3)],
		// One schedule in ten runs on wal stores, so crashes also exercise
		// the wal's close and recovery. They skip fsync: the crash model
		// sits above the store (CrashableStore), and real syncs would only
		// slow the run down.
		store: []StoreKind{MemStores, WALStores}[min(rng.IntN(10), 1)^1],
	}
}

// runChaos runs the schedule of seed, recording what happens into trace
// when it is not nil.
func runChaos(t *testing.T, seed int64, trace *chaosTrace) {
	replaying := trace != nil
	if !replaying {
		trace = &chaosTrace{}
	}
	trace.start = time.Now()
	rng := newRand(seed, stream("chaos"))
	sched := newChaosSchedule(rng)
	// The read path comes from a stream of its own, so the other knobs
	// and the nemesis of each seed stay what they were before reads had
	// modes.
	sched.readMode = ReadMode(newRand(seed, stream("chaos", "reads")).IntN(3))
	if batches := newRand(seed, stream("chaos", "batches")); batches.IntN(2) == 0 {
		sched.maxAppendEntries = 1 + batches.IntN(4)
	}
	sched.preVoteDisabled = newRand(seed, stream("chaos", "prevote")).IntN(3) == 0
	if trace.clients != nil {
		sched.clients = len(trace.clients)
	}
	t.Logf("schedule: %+v", sched)
	clockDrift := chaosClockDrift(seed)
	c := NewCluster(t, Options{
		Voters:    5,
		Seed:      seed,
		SyncDelay: sched.syncDelay,
		Store:     sched.store,
		WAL:       wal.Options{Sync: wal.SyncNever},
		ReadMode:  sched.readMode,
		Config: func(conf *raft.Config) {
			conf.SnapshotThreshold = sched.snapshotThreshold
			conf.TrailingLogs = sched.trailingLogs
			conf.SnapshotInterval = sched.snapshotInterval
			conf.PreVoteDisabled = sched.preVoteDisabled
			if sched.maxAppendEntries > 0 {
				conf.MaxAppendEntries = sched.maxAppendEntries
			}
		},
		ClockDrift:  clockDrift,
		WaitTimeout: 20 * time.Second,
	})
	h := NewHistory()

	stop := make(chan struct{})
	var clients sync.WaitGroup
	stopClients := sync.OnceFunc(func() {
		close(stop)
		clients.Wait()
	})
	// A nemesis step that fails the test ends this goroutine early. The
	// clients must stop then too: left running, the bubble would report
	// them as deadlocked and the panic would end every other schedule of
	// the run.
	defer stopClients()
	if trace.clients == nil {
		trace.clients = make([][]string, sched.clients)
	}
	for i := range sched.clients {
		clientRand := newRand(seed, stream("client", fmt.Sprint(i)))
		client := c.NewKVClient(h)
		client.Timeout = 500 * time.Millisecond
		record := func(event string) { trace.clients[i] = append(trace.clients[i], trace.at()+event) }
		clients.Go(func() { runChaosClient(client, clientRand, i, stop, record) })
	}

	n := newNemesis(c, rng)
	batch := sched.maxAppendEntries
	if batch == 0 {
		batch = raft.DefaultConfig().MaxAppendEntries
	}
	n.burst = 2*batch + 4
	n.record = func(event string) { trace.nemesis = append(trace.nemesis, trace.at()+event) }
	deadline := time.Now().Add(sched.duration)
	for time.Now().Before(deadline) {
		time.Sleep(10*time.Millisecond + time.Duration(rng.Int64N(int64(150*time.Millisecond))))
		n.step(t)
	}
	n.recover(t)
	// Clients keep running through recovery, so the healed cluster proves it
	// still makes progress with them before they stop.
	time.Sleep(200 * time.Millisecond)
	stopClients()
	n.quietCatchUp(t)

	ok, unknown := h.Summary()
	t.Logf("nemesis: %v; operations: %d ok, %d unknown", n.actions, ok, unknown)
	require.Positive(t, ok, "no client operation succeeded in the whole schedule")
	c.CheckConsistent()
	if replaying {
		trace.final = replayState(c)
	}
	h.CheckLinearizable(t, KVModel(), *checkTimeoutFlag)
}

// chaosClockDrift gives every start of a node a clock that runs fast or
// slow, drawn from the seed within ±SafeClockDrift of the kit's timeouts
// (50ms heartbeat, 5ms MaxClockDrift with ReadLease): every pair of clocks
// stays within the drift lease reads allow, so no schedule may see a stale
// read. The draws follow the order of the starts, which the nemesis makes
// one at a time.
func chaosClockDrift(seed int64) func(raft.ServerID) float64 {
	bound := SafeClockDrift(50*time.Millisecond, 5*time.Millisecond)
	rng := newRand(seed, stream("chaos", "clocks"))
	var mu sync.Mutex
	return func(raft.ServerID) float64 {
		mu.Lock()
		defer mu.Unlock()
		return bound * (2*rng.Float64() - 1)
	}
}

// runChaosClient issues random operations on a few keys until stop closes.
func runChaosClient(client *KVClient, rng *rand.Rand, id int, stop <-chan struct{}, record func(string)) {
	keys := []string{"x", "y", "z"}
	// seen is the value of each key this client last read or wrote: the
	// guess of its swaps. It comes from the client's own operations, not
	// from peeking at a replica, whose state at a virtual instant can
	// depend on which goroutine the scheduler ran first.
	seen := map[string]string{}
	for seq := 0; ; seq++ {
		// Pauses in nanoseconds, not whole milliseconds, so that two
		// clients rarely act at the same virtual instant, where the order
		// of their commands would be the scheduler's choice.
		time.Sleep(time.Millisecond + time.Duration(rng.Int64N(int64(9*time.Millisecond))))
		select {
		case <-stop:
			return
		default:
		}
		in := KVInput{Key: keys[rng.IntN(len(keys))]}
		value := fmt.Sprintf("%d.%d", id, seq)
		switch rng.IntN(4) {
		case 0:
			in.Op = KVGet
		case 1:
			in.Op, in.Value = KVPut, value
		case 2:
			in.Op, in.Value = KVAppend, "+"+value
		case 3:
			// Guess a recent value, so some swaps succeed.
			in.Op, in.Value, in.Expected = KVCAS, value, seen[in.Key]
		}
		out, err := client.Do(in)
		record(fmt.Sprintf("%v -> %+v, %v", in, out, err))
		if err == nil {
			switch in.Op {
			case KVGet:
				seen[in.Key] = out.Value
			case KVPut:
				seen[in.Key] = in.Value
			case KVAppend:
				seen[in.Key] += in.Value
			case KVCAS:
				if out.OK {
					seen[in.Key] = in.Value
				}
			}
		}
	}
}
