package raft

import "time"

// saturationInterval is how often a saturation sample is reported at most.
const saturationInterval = time.Second

// saturation measures how busy a goroutine is: the share of its time spent
// working rather than waiting for its next input, reported as a sample at
// most once per interval (raft.thread.main.saturation and
// raft.thread.fsm.saturation). Its goroutine calls sleeping before it waits
// and working once an input arrives; only that goroutine uses it.
type saturation struct {
	report   func(float32)
	interval time.Duration

	periodStart time.Time
	workStart   time.Time
	busy        time.Duration
	isWorking   bool
}

func newSaturation(key []string) *saturation {
	return &saturation{
		report:   func(v float32) { addSample(key, v) },
		interval: saturationInterval,
	}
}

// sleeping marks the end of a piece of work and the start of a wait, and
// reports when an interval has passed.
func (s *saturation) sleeping() {
	now := time.Now()
	if s.periodStart.IsZero() {
		s.periodStart = now
	}
	if s.isWorking {
		s.busy += now.Sub(s.workStart)
		s.isWorking = false
	}
	if elapsed := now.Sub(s.periodStart); elapsed >= s.interval {
		s.report(float32(min(s.busy, elapsed)) / float32(elapsed))
		s.periodStart, s.busy = now, 0
	}
}

// working marks the end of a wait.
func (s *saturation) working() {
	s.workStart = time.Now()
	s.isWorking = true
}
