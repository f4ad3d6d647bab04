//go:build go1.25

package raft

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Linearizable reads per second on a 3-node in-memory cluster, in real time
// (a benchmark measures the machine, so no synctest bubble), with the
// default timeouts a deployment would use:
//
//	go test -run '^$' -bench BenchmarkReads -count 3 .
//
// Each read is what an application does before it reads its FSM: ReadIndex
// (one heartbeat round shared by the reads waiting for it), ReadIndex with
// Config.LeaseReads (no round while the lease is valid), or Barrier (a log
// entry, committed and applied, per read). The read of the FSM itself is a
// lock and a length, the same for all three.

// concurrentReaders is how many goroutines read at once.
const concurrentReaders = 64

// BenchmarkReads runs each read path on two stores: "mem", the plain
// InmemStore, where a log write costs nothing, and "disk1ms", where every
// log write takes a millisecond, as an fsync does on a real disk. Besides
// ns/op and reads/s, it reports reads/round: how many reads one heartbeat
// round confirmed on average (counted from the leader's heartbeats).
func BenchmarkReads(b *testing.B) {
	readIndex := func(r *Raft) error { return r.ReadIndex(0).Error() }
	stores := []struct {
		name      string
		syncDelay time.Duration
	}{
		{name: "mem"},
		{name: "disk1ms", syncDelay: time.Millisecond},
	}
	cases := []struct {
		name  string
		lease bool
		read  func(r *Raft) error
	}{
		{name: "ReadIndex", read: readIndex},
		{name: "Lease", lease: true, read: readIndex},
		{name: "Barrier", read: func(r *Raft) error { return r.Barrier(0).Error() }},
	}
	for _, store := range stores {
		for _, bc := range cases {
			// One cluster per case, started on the parent benchmark so
			// that the runs with growing b.N share it instead of each
			// waiting for an election at the default timeouts.
			rc := newReadBenchCluster(b, bc.lease, store.syncDelay)
			b.Run(store.name+"/"+bc.name, func(b *testing.B) {
				before := rc.heartbeats.sent.Load()
				runReaders(b, concurrentReaders, func() error {
					if err := bc.read(rc.leader.raft); err != nil {
						return err
					}
					_ = rc.leader.fsm.len()
					return nil
				})
				// Two followers: two heartbeats per round.
				if rounds := (rc.heartbeats.sent.Load() - before) / 2; rounds > 0 && bc.name != "Barrier" {
					b.ReportMetric(float64(b.N)/float64(rounds), "reads/round")
				}
			})
			rc.close()
		}
	}
}

// readBenchCluster is a 3-node in-memory cluster with its leader, whose
// heartbeats are counted.
type readBenchCluster struct {
	*testCluster
	leader     *testNode
	heartbeats *heartbeatCounter
}

// newReadBenchCluster starts a cluster with the default timeouts whose log
// writes take syncDelay each, and returns it once its leader has committed
// an entry of its term.
func newReadBenchCluster(b *testing.B, lease bool, syncDelay time.Duration) *readBenchCluster {
	b.Helper()
	defaults := DefaultConfig()
	opts := clusterOptions{
		tweak: func(conf *Config) {
			conf.HeartbeatTimeout = defaults.HeartbeatTimeout
			conf.ElectionTimeout = defaults.ElectionTimeout
			conf.LeaderLeaseTimeout = defaults.LeaderLeaseTimeout
			conf.CommitTimeout = defaults.CommitTimeout
			conf.BatchApplyCh = true
			conf.LeaseReads = lease
			conf.MaxClockDrift = defaults.MaxClockDrift
		},
	}
	if syncDelay > 0 {
		opts.wrapStore = func(node *testNode) raftStore { return slowLogStore{node.store, syncDelay} }
	}
	c, counters := newReadCluster(b, 3, opts)
	leader := c.leader()
	if err := leader.raft.Barrier(0).Error(); err != nil {
		c.close()
		b.Fatal(err)
	}
	return &readBenchCluster{testCluster: c, leader: leader, heartbeats: counters[leader.id]}
}

// slowLogStore is an InmemStore whose log writes take delay, like a sync
// to disk.
type slowLogStore struct {
	*InmemStore
	delay time.Duration
}

func (s slowLogStore) StoreLog(log *Log) error { return s.StoreLogs([]*Log{log}) }

func (s slowLogStore) StoreLogs(logs []*Log) error {
	time.Sleep(s.delay)
	return s.InmemStore.StoreLogs(logs)
}

// runReaders runs read b.N times in all, spread over the given number of
// goroutines, and reports the rate as reads/s beside ns/op (which is the
// wall time per read of the whole group, so the inverse of the rate).
func runReaders(b *testing.B, readers int, read func() error) {
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range readers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) && !failed.Load() {
				if err := read(); err != nil {
					failed.Store(true)
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if elapsed := b.Elapsed(); elapsed > 0 {
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reads/s")
	}
}
