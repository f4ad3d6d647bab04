package raft

import "time"

// Every reading of time and every timer that elections and leases depend on
// (the follower's last contact and heartbeat timeout, the candidate's
// election timeout, the leader's check-quorum and lease, the lease quiet
// period after a start, and the replicators' waits) goes through the node's
// clock. In production it is the machine's monotonic clock. A test can make
// it drift, to check that a lease stays safe while clocks drift by less
// than MaxClockDrift and to see a stale read when they drift by more.
//
// A node takes its drift, first found first:
//   - Config.clockDrift, an unexported field the package's own tests set;
//   - its Transport, when the transport has a method
//     ClockDrift() float64 returning a value other than 0. The rafttest
//     kit's transports have it. Like RandomSeed (random.go), this is an
//     optional interface left unnamed on purpose: package raft exports
//     exactly hashicorp's API;
//   - no drift.

// driftingTransport is the optional method through which a transport sets
// the clock drift of the node that runs on it.
type driftingTransport interface {
	ClockDrift() float64
}

// nodeClock is a node's view of time. With a drift ε it runs at rate 1+ε
// from origin, the moment the node started: now() = origin + (real -
// origin)·(1+ε), and a timer of d fires after d/(1+ε) of real time. The
// zero value is the machine's clock. It is immutable, so every goroutine
// of the node may use it.
type nodeClock struct {
	origin time.Time
	// drift is ε, greater than -1; 0 for the machine's clock.
	drift float64
}

// newNodeClock takes the drift from conf, then trans, and starts the clock
// now.
func newNodeClock(conf *Config, trans Transport) nodeClock {
	drift := conf.clockDrift
	if drifting, ok := trans.(driftingTransport); ok && drift == 0 {
		drift = drifting.ClockDrift()
	}
	if drift <= -1 {
		// A clock that stands still or runs backwards is no clock; refuse
		// it rather than divide by zero.
		drift = 0
	}
	return nodeClock{origin: time.Now(), drift: drift}
}

// now returns the node's current time.
func (c nodeClock) now() time.Time { return c.fromReal(time.Now()) }

// fromReal turns a reading of the machine's clock (such as a transport's
// send time) into the node's time.
func (c nodeClock) fromReal(t time.Time) time.Time {
	if c.drift == 0 {
		return t
	}
	return c.origin.Add(time.Duration(float64(t.Sub(c.origin)) * (1 + c.drift)))
}

// since returns the node's time elapsed since t, a time of the node's clock.
func (c nodeClock) since(t time.Time) time.Duration { return c.now().Sub(t) }

// after returns a channel that fires once d has passed on the node's clock.
func (c nodeClock) after(d time.Duration) <-chan time.Time {
	return time.After(c.real(d))
}

// real returns the real time it takes the node's clock to advance by d.
func (c nodeClock) real(d time.Duration) time.Duration {
	if c.drift == 0 {
		return d
	}
	return time.Duration(float64(d) / (1 + c.drift))
}
