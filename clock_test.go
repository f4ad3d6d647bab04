//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// driftTransport is an InmemTransport that sets the clock drift of the
// node running on it.
type driftTransport struct {
	*InmemTransport
	drift float64
}

func (d driftTransport) ClockDrift() float64 { return d.drift }

func TestNodeClockRunsAtOnePlusDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, plain := NewInmemTransport("")
		for _, drift := range []float64{0, 0.25, -0.5} {
			c := newNodeClock(&Config{clockDrift: drift}, plain)
			start := c.now()
			realStart := time.Now()
			time.Sleep(4 * time.Second)
			want := time.Duration(float64(4*time.Second) * (1 + drift))
			require.Equal(t, want, c.since(start), "drift %v: node time elapsed in 4s of real time", drift)
			require.Equal(t, c.now(), c.fromReal(time.Now()))
			require.Equal(t, start, c.fromReal(realStart))

			// A timer of d on the node's clock fires once the node's
			// clock has advanced by d.
			before := c.now()
			<-c.after(time.Second)
			require.Equal(t, time.Second, c.since(before), "drift %v: timer of 1s", drift)
		}
	})
}

func TestNodeClockDriftComesFromConfigThenTransport(t *testing.T) {
	_, plain := NewInmemTransport("")
	require.Zero(t, newNodeClock(&Config{}, plain).drift)
	require.Equal(t, 0.1, newNodeClock(&Config{}, driftTransport{plain, 0.1}).drift)
	require.Equal(t, -0.2, newNodeClock(&Config{clockDrift: -0.2}, driftTransport{plain, 0.1}).drift)
	// A clock that would stand still or run backwards is refused.
	require.Zero(t, newNodeClock(&Config{clockDrift: -1}, plain).drift)
	require.Zero(t, newNodeClock(&Config{}, driftTransport{plain, -3}).drift)
}
