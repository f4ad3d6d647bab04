//go:build go1.25

package rafttest

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// Linearizable reads without log writes: the clusters here serve every get
// through (*raft.Raft).ReadIndex, confirmed by a heartbeat round or by the
// leader's lease, and read the leader's local KV. Everything runs in
// testing/synctest bubbles, on virtual time.

// readModes are the read paths that write nothing to the log.
var readModes = []ReadMode{ReadIndex, ReadLease}

var readSchedulesFlag = flag.Int("rafttest.readschedules", 10,
	"how many seeded schedules TestReadIndexReadsAreLinearizableUnderFaults runs per read mode (seeds 1..N); -rafttest.seed=N runs only schedule N")

func TestClientReadRecordsOnlySuccessfulReads(t *testing.T) {
	h := NewHistory()
	cl := h.NewClient()
	get := KVInput{Op: KVGet, Key: "k"}
	for _, err := range []error{raft.ErrNotLeader, raft.ErrLeadershipLost, raft.ErrReadTimeout, ErrTimeout} {
		_, got := cl.Read(get, func() (any, error) { return nil, err })
		require.ErrorIs(t, got, err)
	}
	out, err := cl.Read(get, func() (any, error) { return KVOutput{Value: "v", OK: true}, nil })
	require.NoError(t, err)
	require.Equal(t, KVOutput{Value: "v", OK: true}, out)
	ops := h.Operations()
	require.Len(t, ops, 1, "failed reads had no effect and are left out")
	require.Equal(t, KVOutput{Value: "v", OK: true}, ops[0].Output)
	require.Less(t, ops[0].Call, ops[0].Return)
	require.Equal(t, cl.id, ops[0].ClientId, "a failed read leaves no open operation, so the client keeps its id")
}

// Every read mode sees the writes that completed before it; only ReadLog
// puts reads in the log.
func TestReadModesSeeCompletedWrites(t *testing.T) {
	for _, mode := range []ReadMode{ReadLog, ReadIndex, ReadLease} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewCluster(t, Options{Voters: 3, ReadMode: mode})
				h := NewHistory()
				client := c.NewKVClient(h)
				require.Equal(t, mode, client.ReadMode)
				for i := range 5 {
					value := fmt.Sprint(i)
					require.NoError(t, client.Put("x", value))
					got, err := client.Get("x")
					require.NoError(t, err)
					require.Equal(t, value, got)
				}
				gets := logGets(t, c)
				if mode == ReadLog {
					require.Equal(t, 5, gets, "reads through the log are log entries")
				} else {
					require.Zero(t, gets, "%v reads wrote log entries", mode)
				}
				h.CheckLinearizable(t, KVModel(), time.Minute)
			})
		})
	}
}

// A client pinned with ReadFrom to a follower gets no read: the follower
// refuses the get (ReadIndex or Apply), and the failed read is not in the
// history. Pinned to the leader, it reads.
func TestReadFromPinsReadsToOneNode(t *testing.T) {
	for _, mode := range []ReadMode{ReadLog, ReadIndex, ReadLease} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewCluster(t, Options{Voters: 3, ReadMode: mode})
				h := NewHistory()
				require.NoError(t, c.NewKVClient(h).Put("x", "1"))
				c.CheckConsistent()
				client := c.NewKVClient(h)
				client.ReadFrom = c.Followers()[0].ID()
				client.Timeout = 100 * time.Millisecond
				_, err := client.Get("x")
				require.ErrorIs(t, err, raft.ErrNotLeader)
				require.Len(t, h.Operations(), 1, "only the put is recorded")

				client.ReadFrom = c.WaitForLeader().ID()
				got, err := client.Get("x")
				require.NoError(t, err)
				require.Equal(t, "1", got)
				require.Len(t, h.Operations(), 2)
			})
		})
	}
}

// TestReadIndexReadsAreLinearizableUnderFaults runs seeded schedules of a
// five-node cluster whose clients read only through ReadIndex (or lease
// reads) while the network splits, the leader is isolated or crashed, and
// leadership is transferred; the history must be linearizable, and no read
// may have written a log entry.
func TestReadIndexReadsAreLinearizableUnderFaults(t *testing.T) {
	var seeds []int64
	if seed, ok := SeedFromFlag(); ok {
		seeds = []int64{seed}
	} else {
		for i := int64(1); i <= int64(*readSchedulesFlag); i++ {
			seeds = append(seeds, i)
		}
	}
	for _, mode := range readModes {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%v/seed=%d", mode, seed), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) { runReadSchedule(t, mode, seed) })
			})
		}
	}
}

// readFault is one step of a read schedule's nemesis.
type readFault string

const (
	faultPartition     readFault = "partition"
	faultIsolateLeader readFault = "isolate-leader"
	faultTransfer      readFault = "transfer"
	faultCrashLeader   readFault = "crash-leader"
	faultLossyLinks    readFault = "lossy-links"
	faultHeal          readFault = "heal" // also restarts crashed nodes
)

func runReadSchedule(t *testing.T, mode ReadMode, seed int64) {
	rng := newRand(seed, stream("reads", mode.String()))
	c := NewCluster(t, Options{Voters: 5, Seed: seed, ReadMode: mode, WaitTimeout: 20 * time.Second})
	c.WaitForLeader()
	h := NewHistory()

	stop := make(chan struct{})
	var clients sync.WaitGroup
	for i := range 4 {
		client := c.NewKVClient(h)
		client.Timeout = 300 * time.Millisecond
		clientRand := newRand(seed, stream("reads", "client", fmt.Sprint(i)))
		clients.Go(func() { runReadHeavyClient(client, clientRand, i, stop) })
	}

	// Every schedule meets every fault at least once, in a seeded order.
	faults := []readFault{
		faultPartition, faultPartition, faultIsolateLeader, faultIsolateLeader,
		faultTransfer, faultTransfer, faultCrashLeader, faultLossyLinks, faultHeal, faultHeal,
	}
	rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })
	var crashed []raft.ServerID
	for _, fault := range faults {
		time.Sleep(time.Duration(20+rng.IntN(130)) * time.Millisecond)
		crashed = injectReadFault(t, c, rng, fault, crashed)
	}
	injectReadFault(t, c, rng, faultHeal, crashed)
	// The healed cluster serves the clients for a while before they stop.
	time.Sleep(200 * time.Millisecond)
	close(stop)
	clients.Wait()

	reads, writes := countOutcomes(h)
	t.Logf("faults: %v; %d reads and %d writes succeeded", faults, reads, writes)
	require.Positive(t, reads, "no read succeeded in the whole schedule")
	require.Positive(t, writes, "no write succeeded in the whole schedule")
	require.Zero(t, logGets(t, c), "%v reads wrote log entries", mode)
	c.CheckConsistent()
	h.CheckLinearizable(t, KVModel(), time.Minute)
}

// injectReadFault applies one fault and returns the nodes now crashed.
func injectReadFault(t *testing.T, c *Cluster, rng *rand.Rand, fault readFault, crashed []raft.ServerID) []raft.ServerID {
	t.Helper()
	switch fault {
	case faultPartition:
		var ids []raft.ServerID
		for _, n := range c.Nodes() {
			ids = append(ids, n.ID())
		}
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := 1 + rng.IntN(2)
		c.Partition(ids[:k], ids[k:])
	case faultIsolateLeader:
		if l, err := c.Leader(100 * time.Millisecond); err == nil {
			c.Isolate(l.ID())
		}
	case faultTransfer:
		// A transfer may fail (no leader, a cut target); the schedule
		// goes on either way.
		_ = c.TransferLeadership("", 300*time.Millisecond)
	case faultCrashLeader:
		if l, err := c.Leader(100 * time.Millisecond); err == nil {
			require.NoError(t, c.Crash(l.ID()))
			crashed = append(crashed, l.ID())
		}
	case faultLossyLinks:
		c.SetAllLinkFaults(LinkFault{
			Drop:   float64(rng.IntN(15)) / 100,
			Delay:  time.Duration(rng.IntN(3)) * time.Millisecond,
			Jitter: time.Duration(rng.IntN(4)) * time.Millisecond,
		})
	case faultHeal:
		c.Heal()
		for _, id := range crashed {
			require.NoError(t, c.Restart(id))
		}
		crashed = nil
	}
	return crashed
}

// runReadHeavyClient issues mostly gets, and puts and appends, on two keys
// until stop closes.
func runReadHeavyClient(client *KVClient, rng *rand.Rand, id int, stop <-chan struct{}) {
	keys := []string{"x", "y"}
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		key := keys[rng.IntN(len(keys))]
		switch op := rng.IntN(4); {
		case op < 2:
			_, _ = client.Get(key)
		case op == 2:
			_ = client.Put(key, fmt.Sprintf("%d.%d", id, seq))
		default:
			_ = client.Append(key, fmt.Sprintf("+%d.%d", id, seq))
		}
		time.Sleep(time.Duration(1+rng.IntN(5)) * time.Millisecond)
	}
}

// countOutcomes counts the successful gets and writes of a history.
func countOutcomes(h *History) (reads, writes int) {
	for _, op := range h.Operations() {
		if op.Output == Unknown {
			continue
		}
		if op.Input.(KVInput).Op == KVGet {
			reads++
		} else {
			writes++
		}
	}
	return reads, writes
}

// logGets counts the get commands in the log of the live node with the
// longest log. The kit's clusters snapshot rarely (raft's default
// threshold), so the log holds every entry of a short test.
func logGets(t *testing.T, c *Cluster) int {
	t.Helper()
	var longest *CrashableStore
	var longestID raft.ServerID
	var longestLast uint64
	for _, n := range c.live() {
		c.mu.Lock()
		store := n.store
		c.mu.Unlock()
		last, err := store.LastIndex()
		require.NoError(t, err)
		if longest == nil || last > longestLast {
			longest, longestID, longestLast = store, n.ID(), last
		}
	}
	require.NotNil(t, longest, "no live node")
	first, err := longest.FirstIndex()
	require.NoError(t, err)
	require.LessOrEqual(t, first, uint64(1), "the log of %s was compacted; the count would miss entries", longestID)
	gets := 0
	for i := first; i <= longestLast && longestLast > 0; i++ {
		var entry raft.Log
		require.NoError(t, longest.GetLog(i, &entry))
		if entry.Type != raft.LogCommand {
			continue
		}
		var in KVInput
		require.NoError(t, json.Unmarshal(entry.Data, &in), "entry %d", i)
		if in.Op == KVGet {
			gets++
		}
	}
	return gets
}

// The classic stale-read trap: the leader is cut off into a minority with
// clients still reading from it, while the majority elects a new leader
// and commits newer writes. The old leader must not serve a single read
// called after the new leader exists, and the whole history must stay
// linearizable.
//
// With ReadIndex the old leader is made slow to notice (its timeouts are a
// second, the others' 50ms), so it keeps believing it leads, and keeps
// trying heartbeat rounds, long after the majority moved on. Lease reads
// need every voter's HeartbeatTimeout at least the leader's, so there all
// nodes keep the kit's timeouts and the trap is the lease itself: it must
// run out before the majority can elect.
func TestDeposedLeaderInAMinorityNeverServesARead(t *testing.T) {
	cases := []struct {
		name    string
		mode    ReadMode
		slowOld bool
	}{
		{name: "readindex-old-leader-slow-to-step-down", mode: ReadIndex, slowOld: true},
		{name: "lease", mode: ReadLease},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { runStaleReadTrap(t, tc.mode, tc.slowOld) })
		})
	}
}

func runStaleReadTrap(t *testing.T, mode ReadMode, slowOld bool) {
	const slowID = raft.ServerID("node1")
	c := NewCluster(t, Options{Voters: 5, ReadMode: mode, Config: func(conf *raft.Config) {
		if slowOld && conf.LocalID == slowID {
			conf.HeartbeatTimeout = time.Second
			conf.ElectionTimeout = time.Second
			conf.LeaderLeaseTimeout = time.Second
		}
	}})
	old := c.WaitForLeader()
	if slowOld && old.ID() != slowID {
		require.NoError(t, c.TransferLeadership(slowID, 5*time.Second))
		old = c.Node(slowID)
		require.Eventually(t, func() bool { return old.Raft().State() == raft.Leader }, 5*time.Second, pollInterval)
	}
	h := NewHistory()
	writer := c.NewKVClient(h)
	require.NoError(t, writer.Put("x", "before"))
	stale := c.NewKVClient(h)
	stale.ReadFrom = old.ID()
	got, err := stale.Get("x")
	require.NoError(t, err, "the leader serves reads before the partition")
	require.Equal(t, "before", got)

	var minority, majority []raft.ServerID
	minority = append(minority, old.ID())
	for _, n := range c.Nodes() {
		if n == old {
			continue
		}
		if len(minority) < 2 {
			minority = append(minority, n.ID())
		} else {
			majority = append(majority, n.ID())
		}
	}
	c.Partition(minority, majority)

	// Readers pinned to the old leader keep trying. A read called after a
	// new leader was seen must fail; one called earlier may succeed (the
	// old leader could still be the only one).
	var newLeaderSeen atomic.Bool
	var lateAttempts, lateServed atomic.Int64
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		reader := c.NewKVClient(h)
		reader.ReadFrom = old.ID()
		reader.Timeout = 30 * time.Millisecond
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				late := newLeaderSeen.Load()
				_, err := reader.Get("x")
				if late {
					lateAttempts.Add(1)
					if err == nil {
						lateServed.Add(1)
					}
				}
				time.Sleep(time.Millisecond)
			}
		})
	}

	require.Eventually(t, func() bool {
		for _, id := range majority {
			if r := c.Node(id).Raft(); r != nil && r.State() == raft.Leader {
				return true
			}
		}
		return false
	}, 5*time.Second, pollInterval, "the majority elects a new leader")
	newLeaderSeen.Store(true)
	for i := range 5 {
		require.NoError(t, writer.Put("x", fmt.Sprintf("after-%d", i)))
	}
	if slowOld {
		require.Equal(t, raft.Leader, old.Raft().State(),
			"the trap is set only if the old leader still believes it leads while the majority commits")
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	readers.Wait()

	require.Positive(t, lateAttempts.Load(), "no read was tried on the old leader after the new leader was elected")
	require.Zero(t, lateServed.Load(), "the deposed leader served reads called after a new leader existed")
	// A reader that follows the leader sees the majority's writes.
	got, err = c.NewKVClient(h).Get("x")
	require.NoError(t, err)
	require.Equal(t, "after-4", got)
	c.Heal()
	c.CheckConsistent()
	h.CheckLinearizable(t, KVModel(), time.Minute)
}

// Lease reads with a drift bound: an isolated leader serves reads from its
// lease for a while, and the last of them is served at least MaxClockDrift
// before any other node becomes leader. The instants are exact: the bubble's
// clock does not move while nodes compute, and the election is timed by an
// observer filter, which runs as the new leader changes state.
func TestLeaseReadsEndMaxClockDriftBeforeANewLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 3, ReadMode: ReadLease})
		old := c.WaitForLeader()
		h := NewHistory()
		require.NoError(t, c.NewKVClient(h).Put("x", "1"))
		var elected atomic.Pointer[time.Time]
		for _, n := range c.Nodes() {
			if n == old {
				continue
			}
			n.Raft().RegisterObserver(raft.NewObserver(make(chan raft.Observation, 1), false, func(o *raft.Observation) bool {
				if o.Data == raft.Leader {
					now := time.Now()
					elected.CompareAndSwap(nil, &now)
				}
				return false
			}))
		}

		var isolatedAt time.Time
		var lastServed atomic.Pointer[time.Time]
		var servedIsolated atomic.Int64
		isolated := make(chan struct{})
		stop := make(chan struct{})
		var readers sync.WaitGroup
		for range 2 {
			reader := c.NewKVClient(h)
			reader.ReadFrom = old.ID()
			reader.Timeout = 10 * time.Millisecond
			readers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := reader.Get("x"); err == nil {
						now := time.Now()
						lastServed.Store(&now)
						select {
						case <-isolated:
							servedIsolated.Add(1)
						default:
						}
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		c.Isolate(old.ID())
		isolatedAt = time.Now()
		close(isolated)
		// The followers' last contact with the old leader is the send time
		// of its last request they accepted (the links have no delay).
		time.Sleep(time.Millisecond)
		var quorumContact time.Time
		for _, n := range c.Nodes() {
			if n != old && n.Raft().LastContact().After(quorumContact) {
				quorumContact = n.Raft().LastContact()
			}
		}
		require.Eventually(t, func() bool { return elected.Load() != nil }, 5*time.Second, pollInterval, "a new leader")
		time.Sleep(50 * time.Millisecond)
		close(stop)
		readers.Wait()

		require.Positive(t, servedIsolated.Load(), "the isolated leader served no read from its lease")
		last, at := *lastServed.Load(), *elected.Load()
		heartbeatTimeout := old.Raft().ReloadableConfig().HeartbeatTimeout
		const maxClockDrift = 5 * time.Millisecond // what Options.ReadMode = ReadLease sets
		leaseEnd := quorumContact.Add(heartbeatTimeout - maxClockDrift)
		t.Logf("isolated at +0, last contact +%v, last read +%v, lease end +%v, new leader +%v", quorumContact.Sub(isolatedAt),
			last.Sub(isolatedAt), leaseEnd.Sub(isolatedAt), at.Sub(isolatedAt))
		// With three voters the quorum is the old leader and one follower,
		// so the lease runs from the latest contact.
		require.True(t, last.Before(leaseEnd), "a lease read at %v, after the lease ended at %v", last, leaseEnd)
		require.False(t, at.Before(quorumContact.Add(heartbeatTimeout)),
			"a new leader at %v, before the followers stopped refusing votes at %v", at, quorumContact.Add(heartbeatTimeout))
		require.GreaterOrEqual(t, at.Sub(last), maxClockDrift,
			"the old leader's last lease read (%v) must precede the new leader (%v) by the drift bound", last, at)
		c.Heal()
		c.CheckConsistent()
		h.CheckLinearizable(t, KVModel(), time.Minute)
	})
}
