//go:build go1.25

package raft

import (
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testSeeds holds the seed of each running test by name, so that the test's
// own choices and its cluster's nodes draw from one seed, and one
// RAFT_TEST_SEED replays both.
var testSeeds sync.Map // test name -> uint64

// testSeed returns the seed of the running test: RAFT_TEST_SEED when set, a
// fresh random one otherwise, the same for every call in one run of a test
// (inside and outside its synctest bubble). The seed is logged, so a failure
// prints it. It drives the test's own choices (partitions, pauses, writes)
// and, through newTestCluster, every random choice of its nodes. What stays
// outside its reach is the order in which goroutines that are ready at the
// same virtual instant run, so a replay takes the same path as the failing
// run unless the failure hangs on such an order.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	if v, ok := testSeeds.Load(t.Name()); ok {
		return v.(uint64)
	}
	seed := rand.Uint64() | 1
	if v := os.Getenv("RAFT_TEST_SEED"); v != "" {
		parsed, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "RAFT_TEST_SEED must be an unsigned integer")
		seed = parsed
	}
	testSeeds.Store(t.Name(), seed)
	// The next run of the same test (-count) picks a fresh seed.
	t.Cleanup(func() { testSeeds.Delete(t.Name()) })
	t.Logf("seed %d (replay with RAFT_TEST_SEED=%d)", seed, seed)
	return seed
}

// nodeSeed derives a node's seed from the test's, so that the nodes of one
// cluster draw different timeouts.
func nodeSeed(seed uint64, id ServerID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	if s := seed ^ h.Sum64(); s != 0 {
		return s
	}
	return 1
}
