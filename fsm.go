package raft

import (
	"fmt"
	"io"
	"time"
)

// keyFSMApply is the key of the per-entry apply timer, built once: the
// metric is emitted for every command.
var keyFSMApply = []string{"raft", "fsm", "apply"}

// commitTuple is one committed entry on its way to the FSM, with the
// future of the node that appended it (nil on other nodes).
type commitTuple struct {
	log    *Log
	future *logFuture
}

// processLogs hands the committed entries up to upTo that the FSM has not
// been given yet to the FSM runner, in batches of MaxAppendEntries. futures
// are the leader's futures for some of those entries, in index order.
func (r *Raft) processLogs(upTo uint64, futures []*logFuture) {
	maxBatch := uint64(r.config().MaxAppendEntries)
	var batch []commitTuple
	next := 0
	for index := r.dispatchedIndex + 1; index <= upTo; index++ {
		for next < len(futures) && futures[next].log.Index < index {
			// Already applied (for instance covered by a snapshot).
			futures[next].respond(nil)
			next++
		}
		var tuple commitTuple
		if next < len(futures) && futures[next].log.Index == index {
			tuple = commitTuple{log: &futures[next].log, future: futures[next]}
			next++
		} else {
			entry, err := r.getEntry(index)
			if err != nil {
				// A committed entry we cannot read: the FSM must not skip
				// it, so stop here; a later commit retries from here. The
				// futures taken for this commit can no longer be answered
				// by the FSM.
				r.logger.Error("failed to get log", "index", index, "error", err)
				for _, f := range futures[next:] {
					f.respond(fmt.Errorf("failed to read committed log %d: %w", index, err))
				}
				r.sendToFSM(batch)
				return
			}
			tuple = commitTuple{log: entry}
		}
		if batch == nil {
			batch = make([]commitTuple, 0, min(upTo-index+1, maxBatch))
		}
		batch = append(batch, tuple)
		r.dispatchedIndex = index
		if uint64(len(batch)) == maxBatch {
			if !r.sendToFSM(batch) {
				return
			}
			batch = nil
		}
	}
	for _, f := range futures[next:] {
		// Already applied (for instance covered by a snapshot).
		f.respond(nil)
	}
	r.sendToFSM(batch)
}

// sendToFSM queues a batch for the FSM runner; false when shutting down.
func (r *Raft) sendToFSM(batch []commitTuple) bool {
	if len(batch) == 0 {
		return true
	}
	start := time.Now()
	select {
	case r.fsmMutateCh <- commitBatch(batch):
		measureSince([]string{"raft", "fsm", "enqueue"}, start)
		return true
	case <-r.shutdownCh:
		return false
	}
}

// fsmRequest is a request for the FSM runner on fsmMutateCh. Each request
// says how the runner serves it, so there is no request it cannot answer.
type fsmRequest interface {
	serveFSM(fr *fsmRunner)
}

// commitBatch is a batch of committed entries, in index order.
type commitBatch []commitTuple

func (b commitBatch) serveFSM(fr *fsmRunner)        { fr.applyBatch(b) }
func (f *restoreFuture) serveFSM(fr *fsmRunner)     { f.respond(fr.r.restoreFSM(f.ID)) }
func (f *fsmRestoreRequest) serveFSM(fr *fsmRunner) { f.respond(fr.r.restoreFromUser(f)) }
func (f *fsmDrainFuture) serveFSM(*fsmRunner)       { f.respond(nil) }

// fsmRunner is what the FSM runner knows of the user's FSM.
type fsmRunner struct {
	r *Raft
	// batching is the FSM as a BatchingFSM, or nil.
	batching BatchingFSM
	// configStore is the FSM as a ConfigurationStore, or nil.
	configStore ConfigurationStore
}

// runFSM is the FSM runner: it applies committed entries in order, takes
// FSM snapshots and restores them. User FSM code runs only here (and in
// FSMSnapshot.Persist on the snapshot goroutine).
func (r *Raft) runFSM() {
	fr := &fsmRunner{r: r}
	fr.batching, _ = r.fsm.(BatchingFSM)
	fr.configStore, _ = r.fsm.(ConfigurationStore)
	for {
		r.fsmSaturation.sleeping()
		select {
		case req := <-r.fsmMutateCh:
			r.fsmSaturation.working()
			req.serveFSM(fr)
		case req := <-r.fsmSnapshotCh:
			r.fsmSaturation.working()
			r.snapshotFSM(req)
		case <-r.shutdownCh:
			r.fsmSaturation.working()
			return
		}
	}
}

// applySingle applies one entry to an FSM that does not batch and returns
// the FSM's response.
func (fr *fsmRunner) applySingle(tuple *commitTuple) interface{} {
	r, entry := fr.r, tuple.log
	switch entry.Type {
	case LogCommand:
		start := time.Now()
		resp := r.fsm.Apply(entry)
		measureSince(keyFSMApply, start)
		return resp
	case LogConfiguration:
		if fr.configStore == nil {
			return nil
		}
		configuration, err := decodeConfiguration(entry.Data)
		if err != nil {
			r.logger.Error("bad configuration entry", "index", entry.Index, "error", err)
			return nil
		}
		start := time.Now()
		fr.configStore.StoreConfiguration(entry.Index, configuration)
		measureSince([]string{"raft", "fsm", "store_config"}, start)
	}
	return nil
}

// applyBatch applies a batch of committed entries and resolves their
// futures.
func (fr *fsmRunner) applyBatch(batch commitBatch) {
	if len(batch) == 0 {
		return
	}
	r := fr.r
	if fr.batching != nil {
		r.applyBatchToFSM(fr.batching, batch)
	} else {
		for i := range batch {
			tuple := &batch[i]
			resp := fr.applySingle(tuple)
			if tuple.future != nil {
				tuple.future.response = resp
			}
		}
	}
	// The applied index is published before any future of the batch
	// resolves, so a caller woken by a future sees AppliedIndex cover it.
	r.lastApplied.Store(batch[len(batch)-1].log.Index)
	r.fsmAppliedSinceRestore.Store(true)
	r.readWaiters.release(batch[len(batch)-1].log.Index)
	for _, tuple := range batch {
		if tuple.future != nil {
			tuple.future.respond(nil)
		}
	}
}

// applyBatchToFSM gives a batch to a BatchingFSM: the LogCommand and
// LogConfiguration entries in one ApplyBatch call.
func (r *Raft) applyBatchToFSM(fsm BatchingFSM, batch []commitTuple) {
	entries := make([]*Log, 0, len(batch))
	for _, tuple := range batch {
		if tuple.log.Type == LogCommand || tuple.log.Type == LogConfiguration {
			entries = append(entries, tuple.log)
		}
	}
	var responses []interface{}
	if len(entries) > 0 {
		start := time.Now()
		responses = fsm.ApplyBatch(entries)
		measureSince([]string{"raft", "fsm", "applyBatch"}, start)
		addSample([]string{"raft", "fsm", "applyBatchNum"}, float32(len(entries)))
		if len(responses) != len(entries) {
			// hashicorp/raft panics here; we report it to every caller.
			err := fmt.Errorf("fsm: ApplyBatch returned %d responses for %d entries", len(responses), len(entries))
			r.logger.Error("FSM broke its contract", "error", err)
			responses = make([]interface{}, len(entries))
			for i := range responses {
				responses[i] = err
			}
		}
	}
	next := 0
	for i := range batch {
		tuple := &batch[i]
		var resp interface{}
		if tuple.log.Type == LogCommand || tuple.log.Type == LogConfiguration {
			resp = responses[next]
			next++
		}
		if tuple.future != nil {
			tuple.future.response = resp
		}
	}
}

// snapshotFSM asks the FSM for a point-in-time snapshot at the last applied
// entry.
func (r *Raft) snapshotFSM(req *reqSnapshotFuture) {
	lastApplied := r.getLastApplied()
	if !r.fsmAppliedSinceRestore.Load() || lastApplied == 0 {
		req.respond(ErrNothingNewToSnapshot)
		return
	}
	entry, err := r.getEntry(lastApplied)
	var term uint64
	switch {
	case err == nil:
		term = entry.Term
	default:
		snapshotIndex, snapshotTerm := r.getLastSnapshot()
		if snapshotIndex != lastApplied {
			req.respond(fmt.Errorf("failed to read term of applied entry %d: %w", lastApplied, err))
			return
		}
		term = snapshotTerm
	}
	start := time.Now()
	snapshot, err := r.fsm.Snapshot()
	measureSince([]string{"raft", "fsm", "snapshot"}, start)
	req.index, req.term, req.snapshot = lastApplied, term, snapshot
	req.respond(err)
}

// restoreFSM replaces the FSM's state with a stored snapshot.
func (r *Raft) restoreFSM(id string) error {
	start := time.Now()
	meta, source, err := r.snapshots.Open(id)
	if err != nil {
		return fmt.Errorf("failed to open snapshot %s: %w", id, err)
	}
	defer source.Close()
	if err := r.fsm.Restore(newCountingReadCloser(source)); err != nil {
		return fmt.Errorf("failed to restore snapshot %s: %w", id, err)
	}
	measureSince([]string{"raft", "fsm", "restore"}, start)
	setGauge([]string{"raft", "fsm", "lastRestoreDuration"}, float32(time.Since(start).Milliseconds()))
	r.lastApplied.Store(meta.Index)
	r.fsmAppliedSinceRestore.Store(false)
	r.readWaiters.release(meta.Index)
	return nil
}

// countingReadCloser is what FSM.Restore receives: it counts bytes and gives
// access to the reader it wraps.
type countingReadCloser struct {
	io.ReadCloser
	count int64
}

func newCountingReadCloser(rc io.ReadCloser) *countingReadCloser {
	return &countingReadCloser{ReadCloser: rc}
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.count += int64(n)
	return n, err
}

// Count returns the bytes read so far.
func (c *countingReadCloser) Count() int64 { return c.count }

// WrappedReadCloser returns the reader underneath.
func (c *countingReadCloser) WrappedReadCloser() io.ReadCloser { return c.ReadCloser }
