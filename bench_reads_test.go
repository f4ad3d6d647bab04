package raft

import (
	"sync"
	"sync/atomic"
	"testing"
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

func BenchmarkReads(b *testing.B) {
	readIndex := func(r *Raft) error { return r.ReadIndex(0).Error() }
	cases := []struct {
		name  string
		lease bool
		read  func(r *Raft) error
	}{
		{name: "ReadIndex", read: readIndex},
		{name: "Lease", lease: true, read: readIndex},
		{name: "Barrier", read: func(r *Raft) error { return r.Barrier(0).Error() }},
	}
	for _, bc := range cases {
		// One cluster per case, started on the parent benchmark so that
		// the runs with growing b.N share it instead of each waiting for
		// an election at the default timeouts.
		c, leader := readBenchCluster(b, bc.lease)
		b.Run(bc.name, func(b *testing.B) {
			runReaders(b, concurrentReaders, func() error {
				if err := bc.read(leader.raft); err != nil {
					return err
				}
				_ = leader.fsm.len()
				return nil
			})
		})
		c.close()
	}
}

// readBenchCluster starts a 3-node in-memory cluster with the default
// timeouts and returns it with its leader, once the leader has committed an
// entry of its term.
func readBenchCluster(b *testing.B, lease bool) (*testCluster, *testNode) {
	b.Helper()
	defaults := DefaultConfig()
	c := newTestCluster(b, 3, clusterOptions{tweak: func(conf *Config) {
		conf.HeartbeatTimeout = defaults.HeartbeatTimeout
		conf.ElectionTimeout = defaults.ElectionTimeout
		conf.LeaderLeaseTimeout = defaults.LeaderLeaseTimeout
		conf.CommitTimeout = defaults.CommitTimeout
		conf.BatchApplyCh = true
		conf.LeaseReads = lease
		conf.MaxClockDrift = defaults.MaxClockDrift
	}})
	leader := c.leader()
	if err := leader.raft.Barrier(0).Error(); err != nil {
		c.close()
		b.Fatal(err)
	}
	return c, leader
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
