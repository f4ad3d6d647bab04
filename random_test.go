//go:build go1.25

package raft

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// seedTransport is an InmemTransport that seeds the node running on it.
type seedTransport struct {
	*InmemTransport
	seed uint64
}

func (s seedTransport) RandomSeed() uint64 { return s.seed }

// draws returns n durations below d from a node source built from conf and
// trans.
func draws(conf *Config, trans Transport, n int, d time.Duration) []time.Duration {
	nr := newNodeRand(conf, trans).loop
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = nr.duration(d)
	}
	return out
}

func TestNodeRandomChoicesAreAFunctionOfTheSeed(t *testing.T) {
	_, plain := NewInmemTransport("")
	const n, d = 32, time.Second
	seeded := func(seed uint64) *Config { return &Config{randomSeed: seed} }

	require.Equal(t, draws(seeded(7), plain, n, d), draws(seeded(7), plain, n, d), "one seed, two sources")
	require.NotEqual(t, draws(seeded(7), plain, n, d), draws(seeded(8), plain, n, d), "two seeds drew the same timeouts")
	require.NotEqual(t, draws(&Config{}, plain, n, d), draws(&Config{}, plain, n, d), "unseeded nodes drew the same timeouts")

	// A transport with RandomSeed seeds the node; Config's seed wins over it.
	require.Equal(t, draws(seeded(7), plain, n, d), draws(&Config{}, seedTransport{plain, 7}, n, d))
	require.Equal(t, draws(seeded(9), plain, n, d), draws(seeded(9), seedTransport{plain, 7}, n, d))
	for _, v := range draws(seeded(7), plain, n, d) {
		require.True(t, v >= 0 && v < d, "draw %v outside [0, %v)", v, d)
	}
}

// TestSeededClusterReplaysItsElections crashes the leader of a seeded
// five-node cluster again and again, restarting it after a pause the seed
// picks, and requires two runs from one seed to elect the same leaders in
// the same terms at the same virtual instants: who times out first is
// decided by the nodes' seeded timeouts alone.
func TestSeededClusterReplaysItsElections(t *testing.T) {
	type election struct {
		leader ServerID
		term   uint64
		at     time.Duration
	}
	seed := testSeed(t)
	run := func() (elections []election) {
		synctest.Test(t, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			start := time.Now()
			c := newTestCluster(t, 5, clusterOptions{seed: seed})
			defer c.close()
			for range 12 {
				leader := c.leader()
				elections = append(elections, election{leader.id, leader.raft.CurrentTerm(), time.Since(start)})
				c.shutdownNode(leader)
				time.Sleep(time.Duration(rng.Int64N(int64(200 * time.Millisecond))))
				c.restartNode(leader)
			}
		})
		return elections
	}
	first := run()
	require.Equal(t, first, run(), "two runs of seed %d elected differently", seed)
}
