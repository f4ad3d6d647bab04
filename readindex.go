package raft

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrReadTimeout is returned by ReadIndex when the read could not be
// confirmed and applied locally within its timeout.
var ErrReadTimeout = errors.New("timed out waiting for a linearizable read")

// ReadIndex prepares a linearizable read of this node's FSM without writing
// to the log. On the leader it takes the commit index as the read index
// (once the leader has committed an entry of its own term), confirms that
// it still leads — with one heartbeat round answered by a quorum, shared by
// every read waiting for it, or, with Config.LeaseReads, from its lease —
// and then waits until its FSM has applied the read index. After Error
// returns nil the caller may read its FSM: the read sees every write that
// completed before ReadIndex was called. Index returns the read index.
//
// ReadIndex must be called on the leader; other nodes answer ErrNotLeader
// (forward the read to the leader, as raftkv does). Errors: ErrNotLeader,
// ErrLeadershipLost, ErrLeadershipTransferInProgress (lease reads only stop;
// a transfer makes ReadIndex fail only while the leader cannot confirm),
// ErrRaftShutdown, and ErrReadTimeout once timeout passes (0: no bound).
func (r *Raft) ReadIndex(timeout time.Duration) IndexFuture {
	incrCounter([]string{"raft", "read", "index"}, 1)
	f := &readIndexFuture{start: time.Now()}
	r.initFuture(&f.deferError)
	if timeout > 0 {
		f.timer = time.NewTimer(timeout)
	}
	select {
	case r.readCh <- f:
	case <-f.timeoutCh():
		f.respond(ErrReadTimeout)
	case <-r.shutdownCh:
		f.respond(ErrRaftShutdown)
	}
	return f
}

// readIndexFuture is one ReadIndex call. The main loop sets index, the
// leadership check or the lease confirms it, and the FSM runner resolves it
// once the read index is applied.
type readIndexFuture struct {
	deferError
	index uint64
	start time.Time
	timer *time.Timer
}

func (f *readIndexFuture) timeoutCh() <-chan time.Time {
	if f.timer == nil {
		return nil
	}
	return f.timer.C
}

// Index is the read index; valid once Error has returned nil.
func (f *readIndexFuture) Index() uint64 { return f.index }

// Error waits for the read to be ready, or for the timeout.
func (f *readIndexFuture) Error() error {
	select {
	case <-f.done:
	case <-f.timeoutCh():
		f.respond(ErrReadTimeout)
	case <-f.shutdownCh:
		f.respond(ErrRaftShutdown)
	}
	if f.timer != nil {
		f.timer.Stop()
	}
	return f.err
}

// handleReads serves f and every other ReadIndex waiting on readCh, on the
// leader's main loop: they share one read index and one confirmation.
func (l *leader) handleReads(f *readIndexFuture) {
	reads := []*readIndexFuture{f}
collect:
	for {
		select {
		case next := <-l.r.readCh:
			reads = append(reads, next)
		default:
			break collect
		}
	}
	l.startReads(reads)
}

// startReads takes the read index for reads and starts their confirmation.
func (l *leader) startReads(reads []*readIndexFuture) {
	r := l.r
	// §6.4: the commit index is only known to be current once an entry of
	// this term has committed.
	if reads = l.reads.admit(reads, r.getCommitIndex()); len(reads) == 0 {
		return
	}
	index := r.getCommitIndex()
	for _, f := range reads {
		f.index = index
	}
	addSample([]string{"raft", "read", "perRound"}, float32(len(reads)))
	if l.leaseValid(r.clock.now()) {
		incrCounter([]string{"raft", "read", "leaseHit"}, float32(len(reads)))
		for _, f := range reads {
			r.readWaiters.add(r, f)
		}
		return
	}
	if !l.reads.join(reads) {
		return
	}
	incrCounter([]string{"raft", "read", "rounds"}, 1)
	v := &verifyFuture{reads: reads}
	r.initFuture(&v.deferError)
	l.reads.started(v)
	l.startVerify(v)
}

// readRoundDone starts the reads that waited for the round v to finish.
func (l *leader) readRoundDone(v *verifyFuture) {
	if !l.reads.finished(v) || l.r.getState() != Leader {
		return
	}
	if reads := l.reads.takeNext(); len(reads) > 0 {
		l.startReads(reads)
	}
}

// releasePendingReads starts the reads that waited for the first commit of
// this term.
func (l *leader) releasePendingReads() {
	if reads := l.reads.release(l.r.getCommitIndex()); len(reads) > 0 {
		l.startReads(reads)
	}
}

// leaseValid reports whether the leader may serve a read without a
// heartbeat round. A quorum of voters accepted a heartbeat or AppendEntries
// sent at time s; each of them keeps refusing votes to others until at
// least HeartbeatTimeout after it heard from us, so no other leader can be
// elected before s + HeartbeatTimeout. MaxClockDrift covers clocks that run
// at different rates.
func (l *leader) leaseValid(now time.Time) bool {
	r := l.r
	conf := r.config()
	if !conf.LeaseReads || l.transfer != nil {
		return false
	}
	var acked []time.Time
	voters := votersOf(r.configurations.latest)
	need := voters.quorum()
	for _, id := range voters.ids {
		if id == r.localID {
			need--
			continue
		}
		if repl, ok := l.replState[id]; ok {
			acked = append(acked, repl.ackedSend.load())
		}
	}
	if need <= 0 {
		return true
	}
	if len(acked) < need {
		return false
	}
	// The need-th most recent acknowledged send time bounds the lease.
	slices.SortFunc(acked, func(a, b time.Time) int { return b.Compare(a) })
	since := acked[need-1]
	if since.IsZero() {
		return false
	}
	return now.Before(since.Add(conf.HeartbeatTimeout - conf.MaxClockDrift))
}

// inLeaseQuietPeriod reports whether this node, just started, must still
// refuse votes: before it restarted it may have accepted a heartbeat that
// extended some leader's lease, and it no longer knows that leader.
func (r *Raft) inLeaseQuietPeriod() bool {
	conf := r.config()
	return conf.LeaseReads && r.clock.since(r.startedAt) < conf.HeartbeatTimeout
}

// readWaiters holds confirmed reads until the FSM has applied their index.
type readWaiters struct {
	n       atomic.Int32
	mu      sync.Mutex
	waiting []*readIndexFuture
}

// add resolves f now if its index is applied, or queues it for the FSM
// runner.
func (w *readWaiters) add(r *Raft, f *readIndexFuture) {
	w.mu.Lock()
	if r.getLastApplied() >= f.index {
		w.mu.Unlock()
		f.finish()
		return
	}
	w.waiting = append(w.waiting, f)
	w.n.Add(1)
	w.mu.Unlock()
}

// release resolves the reads whose index is applied; called by the FSM
// runner after it publishes a new applied index.
func (w *readWaiters) release(applied uint64) {
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	kept := w.waiting[:0]
	var ready []*readIndexFuture
	for _, f := range w.waiting {
		if f.index <= applied {
			ready = append(ready, f)
		} else {
			kept = append(kept, f)
		}
	}
	clear(w.waiting[len(kept):])
	w.waiting = kept
	w.n.Store(int32(len(kept)))
	w.mu.Unlock()
	for _, f := range ready {
		f.finish()
	}
}

// finish resolves a read that is confirmed and applied.
func (f *readIndexFuture) finish() {
	measureSince([]string{"raft", "read", "latency"}, f.start)
	f.respond(nil)
}
