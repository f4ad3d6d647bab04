package raft

import (
	"hash/fnv"
	"math/rand/v2"
	"time"
)

// Every random choice a node makes (election and heartbeat timeouts, the
// replicators' commit and heartbeat waits, the snapshot interval) is drawn
// from the node's own source, seeded once when the node starts. In
// production the seed is fresh from the runtime's random source, as good
// as the global one. A test that runs a cluster in virtual time seeds each
// node, so that the timeouts, and with them who stands for election when,
// are a function of the test's seed and a failing run can be replayed.
//
// A node takes its seed, first found first:
//   - Config.randomSeed, an unexported field the package's own tests set;
//   - its Transport, when the transport has a method
//     RandomSeed() uint64 returning a non-zero value. The rafttest kit's
//     transports have it, giving each node a seed derived from the
//     cluster's (rafttest.Options.Seed). This is an optional interface
//     left unnamed on purpose: package raft exports exactly hashicorp's
//     API, and a transport without the method is unaffected;
//   - a fresh random seed.

// Each goroutine that draws (the main loop, the snapshot runner, each
// replicator's two goroutines) has a stream of its own, derived from the
// node's seed and the goroutine's name: with one shared source, the order in
// which goroutines ready at the same virtual instant happen to run would
// decide who gets which number.

// seededTransport is the optional method through which a transport seeds
// the node that runs on it.
type seededTransport interface {
	RandomSeed() uint64
}

// nodeRand is the node's seed and the main loop's stream.
type nodeRand struct {
	seed uint64
	// loop is the main loop's stream; main loop only.
	loop *randomStream
	// clock times the streams' timeouts (clock.go).
	clock nodeClock
}

// newNodeRand seeds a node from conf, then trans, then afresh.
func newNodeRand(conf *Config, trans Transport) *nodeRand {
	seed := conf.randomSeed
	if seeded, ok := trans.(seededTransport); ok && seed == 0 {
		seed = seeded.RandomSeed()
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	nr := &nodeRand{seed: seed}
	nr.loop = nr.stream("main loop")
	return nr
}

// withClock makes the timeouts of nr's streams run on clock.
func (nr *nodeRand) withClock(clock nodeClock) *nodeRand {
	nr.clock = clock
	nr.loop.clock = clock
	return nr
}

// stream returns the stream of the goroutine named by parts: the same
// parts give the same numbers.
func (nr *nodeRand) stream(parts ...string) *randomStream {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return &randomStream{rng: rand.New(rand.NewPCG(nr.seed, h.Sum64())), clock: nr.clock}
}

// randomStream is the random source of one goroutine; it is not safe for
// concurrent use.
type randomStream struct {
	rng   *rand.Rand
	clock nodeClock
}

// duration returns a uniformly random duration in [0, d), d > 0.
func (s *randomStream) duration(d time.Duration) time.Duration {
	return time.Duration(s.rng.Int64N(int64(d)))
}

// timeout returns a channel that fires after a random time in [d, 2d) of
// the node's clock. A zero d never fires.
func (s *randomStream) timeout(d time.Duration) <-chan time.Time {
	if d <= 0 {
		return nil
	}
	return s.clock.after(d + s.duration(d))
}

// randomTimeout is the main loop's timeout (see randomStream.timeout).
func (r *Raft) randomTimeout(d time.Duration) <-chan time.Time {
	return r.rand.loop.timeout(d)
}
