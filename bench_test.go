//go:build go1.25

package raft

import (
	"testing"
)

// Benchmarks run in real time (not in a synctest bubble): they measure the
// cost of the code, so the clock must be the machine's.

// benchCluster starts a 3-node in-memory cluster and returns its leader.
func benchCluster(b *testing.B) (*testCluster, *Raft) {
	b.Helper()
	// The default timeouts, as a deployment would use: the benchmark runs
	// in real time on a shared machine.
	defaults := DefaultConfig()
	c := newTestCluster(b, 3, clusterOptions{tweak: func(conf *Config) {
		conf.HeartbeatTimeout = defaults.HeartbeatTimeout
		conf.ElectionTimeout = defaults.ElectionTimeout
		conf.LeaderLeaseTimeout = defaults.LeaderLeaseTimeout
		conf.CommitTimeout = defaults.CommitTimeout
		conf.BatchApplyCh = true
	}})
	leader := c.leader()
	// Let the no-op of the new term commit first.
	if err := leader.raft.Barrier(0).Error(); err != nil {
		b.Fatal(err)
	}
	return c, leader.raft
}

// BenchmarkApply measures one Apply at a time on a 3-node in-memory
// cluster with 128-byte commands: the latency of a round through the log.
func BenchmarkApply(b *testing.B) {
	c, leader := benchCluster(b)
	defer c.close()
	cmd := make([]byte, 128)
	b.ReportAllocs()
	b.SetBytes(int64(len(cmd)))
	b.ResetTimer()
	for range b.N {
		if err := leader.Apply(cmd, 0).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyParallel measures throughput with many concurrent callers
// (GOMAXPROCS×64 goroutines) on a 3-node in-memory cluster with 128-byte
// commands.
func BenchmarkApplyParallel(b *testing.B) {
	c, leader := benchCluster(b)
	defer c.close()
	b.ReportAllocs()
	b.SetParallelism(64)
	b.SetBytes(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cmd := make([]byte, 128)
		for pb.Next() {
			if err := leader.Apply(cmd, 0).Error(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
