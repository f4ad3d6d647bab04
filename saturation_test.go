//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSaturationIsTheShareOfTimeSpentWorking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reports []float32
		s := &saturation{report: func(v float32) { reports = append(reports, v) }, interval: time.Second}
		// 4 rounds of 50ms of work and 200ms of waiting: one interval.
		for range 4 {
			s.sleeping()
			time.Sleep(200 * time.Millisecond)
			s.working()
			time.Sleep(50 * time.Millisecond)
		}
		s.sleeping()
		require.Equal(t, []float32{0.2}, reports)

		// Busy the whole next interval: one report of 1, none before.
		s.working()
		time.Sleep(999 * time.Millisecond)
		s.sleeping()
		require.Len(t, reports, 1, "no report before the interval has passed")
		s.working()
		time.Sleep(time.Millisecond)
		s.sleeping()
		require.Equal(t, []float32{0.2, 1}, reports)
	})
}
