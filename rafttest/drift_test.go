//go:build go1.25

package rafttest

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// The lease trap under drifting clocks. A leader serves lease reads for
// HeartbeatTimeout - MaxClockDrift on its own clock after a quorum accepted
// what it sent; each of those followers refuses votes for HeartbeatTimeout
// on its own clock after it heard from the leader. With the kit's 50ms and
// 5ms, the lease ends before anyone else can be elected as long as
// (1+ε_follower)/(1+ε_leader) ≤ 50/45.
//
// In both cases below node1 leads with a slow clock, is cut off from the
// other four, and a client reads from it once the four have elected a new
// leader and committed a newer write:
//   - within the bound (node1 at -ε, the others at +ε, ε = SafeClockDrift,
//     the very edge): node1's lease has run out, the read finds no quorum
//     and fails, and the history is linearizable;
//   - beyond it (node1's clock at a tenth of the rate, the others true):
//     node1's 45ms lease lasts 450ms of real time, while the followers stop
//     refusing votes 50-150ms after they last heard from it; the read is
//     served from the lease, returns the old value, and the linearizability
//     checker must say so.
//
// Both run on a fixed seed, in virtual time, with a CommitTimeout of 1ms so
// that the slow leader still reaches its followers every 10-20ms of real
// time, well within their heartbeat timeout, until the partition.

func TestLeaseReadWithinMaxClockDriftIsNeverStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := SafeClockDrift(50*time.Millisecond, 5*time.Millisecond)
		require.InDelta(t, 5.0/95, eps, 1e-12)
		trap := runDriftedLeaseTrap(t, -eps, eps)
		require.Positive(t, trap.servedCutOff, "node1 served no read from its lease once cut off")
		// node1's 45ms lease runs from before the cut on a clock at 1-ε.
		leaseReal := time.Duration(float64(45*time.Millisecond) / (1 - eps))
		require.Less(t, trap.lastServed.Sub(trap.cut), leaseReal, "node1's lease outlived 45ms of its clock")
		require.True(t, trap.lastServed.Before(trap.elected),
			"node1 served a lease read at %v, not before the new leader at %v", trap.lastServed, trap.elected)
		require.Error(t, trap.finalErr, "node1 served a read (%q) after a new leader committed", trap.final)
		trap.history.CheckLinearizable(t, KVModel(), time.Minute)
	})
}

func TestLeaseReadBeyondMaxClockDriftIsCaughtByTheChecker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trap := runDriftedLeaseTrap(t, -0.9, 0)
		require.NoError(t, trap.finalErr, "the trap needs the slow leader to serve the read from its lease")
		require.Equal(t, "before", trap.final, "the slow leader's lease read")
		require.Equal(t, raft.Leader, trap.finalState, "node1 must serve the read as leader")
		rec := &recordingTB{TB: t}
		trap.history.CheckLinearizable(rec, KVModel(), time.Minute)
		require.Len(t, rec.errors, 1, "the checker must report the stale read: %q", rec.errors)
		require.Contains(t, rec.errors[0], "is not linearizable")
	})
}

// driftedLeaseTrap is what runDriftedLeaseTrap saw.
type driftedLeaseTrap struct {
	history *History
	// servedCutOff counts the reads node1 served after it was cut off;
	// lastServed is when the last of them returned.
	servedCutOff int
	lastServed   time.Time
	// cut is when node1 was cut off; elected is when the first of the
	// other four became leader.
	cut, elected time.Time
	// final and finalErr are the outcome of the read from node1 called
	// after the new leader's write returned; finalState is node1's state
	// right after it.
	final      string
	finalErr   error
	finalState raft.RaftState
}

// runDriftedLeaseTrap runs the trap with node1's clock at leaderDrift and
// the others' at othersDrift. A reader pinned to node1 reads in a loop
// from before the partition until the new leader exists.
func runDriftedLeaseTrap(t *testing.T, leaderDrift, othersDrift float64) driftedLeaseTrap {
	const oldID = raft.ServerID("node1")
	c := NewCluster(t, Options{
		Voters:   5,
		Seed:     1,
		ReadMode: ReadLease,
		Config:   func(conf *raft.Config) { conf.CommitTimeout = time.Millisecond },
		ClockDrift: func(id raft.ServerID) float64 {
			if id == oldID {
				return leaderDrift
			}
			return othersDrift
		},
	})
	if c.WaitForLeader().ID() != oldID {
		require.NoError(t, c.TransferLeadership(oldID, 5*time.Second))
	}
	old := c.Node(oldID)
	require.Eventually(t, func() bool { return old.Raft().State() == raft.Leader }, 5*time.Second, pollInterval)

	trap := driftedLeaseTrap{history: NewHistory()}
	writer := c.NewKVClient(trap.history)
	require.NoError(t, writer.Put("x", "before"))

	// The instant the first of the others wins, from an observer filter,
	// which runs as the winner changes state.
	elected := make(chan time.Time, 1)
	for _, n := range c.Nodes() {
		if n == old {
			continue
		}
		n.Raft().RegisterObserver(raft.NewObserver(make(chan raft.Observation, 1), false, func(o *raft.Observation) bool {
			if o.Data == raft.Leader {
				select {
				case elected <- time.Now():
				default:
				}
			}
			return false
		}))
	}

	cutOff := make(chan struct{})
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	pinned := c.NewKVClient(trap.history)
	pinned.ReadFrom = oldID
	pinned.Timeout = 10 * time.Millisecond
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pinned.Get("x"); err == nil {
				select {
				case <-cutOff:
					trap.servedCutOff++
					trap.lastServed = time.Now()
				default:
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	time.Sleep(5 * time.Millisecond)
	c.Isolate(oldID)
	trap.cut = time.Now()
	close(cutOff)

	select {
	case trap.elected = <-elected:
	case <-time.After(5 * time.Second):
		t.Fatal("the other four elected no leader")
	}
	close(stop)
	<-readerDone
	require.NoError(t, writer.Put("x", "after"))

	trap.final, trap.finalErr = pinned.Get("x")
	trap.finalState = old.Raft().State()
	t.Logf("cut at +0: node1 served %d reads since, the last at +%v; new leader at +%v; read after the new write: %q, %v (node1 %v)",
		trap.servedCutOff, trap.lastServed.Sub(trap.cut), trap.elected.Sub(trap.cut), trap.final, trap.finalErr, trap.finalState)
	c.Heal()
	c.CheckConsistent()
	return trap
}
