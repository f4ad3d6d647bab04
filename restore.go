package raft

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Restore replaces the state of every node's FSM with a snapshot the user
// supplies, for instance a backup taken with Snapshot on another cluster. It
// must be called on the leader.
//
// The leader fails the applies in flight with ErrAbortedByRestore, streams
// reader into its FSM and, in the same pass, into a new snapshot at index
// max(last log index, meta.Index)+1 in the current term and the current
// configuration; meta.Size must be the exact length of the data. It leaves a
// gap in its log before that index (with a MonotonicLogStore it empties the
// log instead), so every follower catches up by InstallSnapshot. Restore
// returns once a no-op appended after the snapshot has committed.
//
// timeout bounds the wait for the leader to take the request (0: no bound).
//
// As in hashicorp/raft, the leader's FSM and snapshot store hold the new
// state before the cluster has committed the no-op that follows it. If the
// leader loses leadership in that window (Restore then returns
// ErrLeadershipLost), the new leader's log wins and that node's state no
// longer matches the cluster's: remove it, wipe its data and add it back.
// Run Restore on a healthy cluster.
//
// Unlike hashicorp/raft, which panics, Restore returns an error when the
// FSM's Restore fails or the data is not meta.Size bytes long. The FSM has
// then seen part of the new state, so the node shuts itself down rather
// than serve it; the snapshot is discarded, and restarting the node brings
// back its previous state from its own snapshots and log.
func (r *Raft) Restore(meta *SnapshotMeta, reader io.Reader, timeout time.Duration) error {
	incrCounter([]string{"raft", "restore"}, 1)
	if meta == nil || reader == nil {
		return errors.New("restore: snapshot metadata and reader are required")
	}
	if meta.Size < 0 {
		return fmt.Errorf("restore: invalid snapshot size %d", meta.Size)
	}
	f := &userRestoreFuture{meta: meta, reader: reader}
	r.initFuture(&f.deferError)
	r.sendOp(f, timeout)
	return f.Error()
}

// fsmRestoreRequest asks the FSM runner to restore the FSM from a user's
// snapshot stream, copying the stream into sink as the FSM reads it.
type fsmRestoreRequest struct {
	deferError
	reader io.Reader
	size   int64
	sink   SnapshotSink
	index  uint64
}

// restoreUserSnapshot runs a user restore on the leader's main loop.
func (l *leader) restoreUserSnapshot(f *userRestoreFuture) {
	defer measureSince([]string{"raft", "restoreUserSnapshot"}, time.Now())
	r := l.r
	switch {
	case l.transfer != nil:
		f.respond(ErrLeadershipTransferInProgress)
		return
	case r.configurations.latestIndex != r.configurations.committedIndex:
		f.respond(fmt.Errorf("cannot restore snapshot now, wait until the configuration entry at %v has been applied (have applied %v)",
			r.configurations.latestIndex, r.configurations.committedIndex))
		return
	}

	for _, lf := range l.inflight {
		lf.respond(ErrAbortedByRestore)
	}
	l.inflight = nil
	// Let the queued writes finish, so the restore starts from the log
	// the store holds.
	if failed, err := r.log.settle(); err != nil || failed {
		if err == nil {
			err = errors.New("restore: the leader failed to write its log")
		}
		f.respond(err)
		return
	}

	lastIndex := r.getLastIndex()
	index := max(lastIndex, f.meta.Index) + 1
	term := r.getCurrentTerm()
	sink, err := r.snapshots.Create(SnapshotVersionMax, index, term,
		r.configurations.latest, r.configurations.latestIndex, r.trans)
	if err != nil {
		f.respond(fmt.Errorf("failed to create snapshot: %w", err))
		return
	}
	req := &fsmRestoreRequest{reader: f.reader, size: f.meta.Size, sink: sink, index: index}
	r.initFuture(&req.deferError)
	select {
	case r.fsmMutateCh <- req:
	case <-r.shutdownCh:
		_ = sink.Cancel()
		f.respond(ErrRaftShutdown)
		return
	}
	if err := req.Error(); err != nil {
		if errors.Is(err, ErrRaftShutdown) {
			f.respond(err)
			return
		}
		// The runner fails only after FSM.Restore began, so the FSM no
		// longer holds the state the log describes.
		r.logger.Error("user restore failed after the FSM saw part of it; shutting down so that state is never served",
			"error", err)
		f.respond(fmt.Errorf("restore failed, node shut down: %w", err))
		r.Shutdown()
		return
	}

	r.dispatchedIndex = index
	if err := r.log.restoreSnapshot(index, term, r.isMonotonic()); err != nil {
		// The FSM holds the new state but the log does not line up with
		// it: never serve it.
		r.logger.Error("user restore failed to reset the log; shutting down", "error", err)
		f.respond(fmt.Errorf("restore failed, node shut down: %w", err))
		r.Shutdown()
		return
	}
	r.logger.Info("restored user snapshot", "index", index, "term", term, "size", f.meta.Size)

	noop := r.newLogFuture(Log{Type: LogNoop})
	l.dispatchLogs([]*logFuture{noop})
	r.goFunc(func() { f.respond(noop.Error()) })
}

// restoreFromUser restores the FSM from a user's stream on the FSM runner.
// The bytes also go to the snapshot sink, which is kept only if the FSM
// accepted exactly size bytes.
func (r *Raft) restoreFromUser(req *fsmRestoreRequest) error {
	start := time.Now()
	limited := &io.LimitedReader{R: req.reader, N: req.size}
	tee := io.TeeReader(limited, req.sink)
	if err := r.fsm.Restore(newCountingReadCloser(io.NopCloser(tee))); err != nil {
		_ = req.sink.Cancel()
		return fmt.Errorf("failed to restore snapshot: %w", err)
	}
	// Whatever the FSM left unread still belongs in the snapshot.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		_ = req.sink.Cancel()
		return fmt.Errorf("failed to read snapshot: %w", err)
	}
	if limited.N > 0 {
		_ = req.sink.Cancel()
		return fmt.Errorf("failed to restore snapshot: short read: got %d of %d bytes", req.size-limited.N, req.size)
	}
	var extra [1]byte
	if n, _ := req.reader.Read(extra[:]); n > 0 {
		_ = req.sink.Cancel()
		return fmt.Errorf("failed to restore snapshot: data is longer than its size %d", req.size)
	}
	if err := req.sink.Close(); err != nil {
		return fmt.Errorf("failed to close snapshot: %w", err)
	}
	measureSince([]string{"raft", "fsm", "restore"}, start)
	r.lastApplied.Store(req.index)
	r.fsmAppliedSinceRestore.Store(false)
	r.readWaiters.release(req.index)
	return nil
}
