package raft

import (
	"errors"
	"fmt"
	"time"
)

// The writer side of raftLog (raft_log.go): running the queued commands
// against the LogStore, one at a time, in the order they were submitted.

// writeLoop is the writer goroutine: it runs commands in the order they
// were submitted until the node shuts down. Leader appends waiting back to
// back are merged into one StoreLogs.
func (l *raftLog) writeLoop() {
	var next *logCommand
	var w leaderWrite
	for {
		cmd := next
		next = nil
		if cmd == nil {
			select {
			case cmd = <-l.cmds:
			case <-l.shutdownCh:
				return
			}
		}
		if cmd.kind != cmdLeaderAppend {
			l.writing <- struct{}{}
			res := l.execute(cmd)
			<-l.writing
			l.finished(1)
			cmd.done <- res
			continue
		}
		w.join(cmd)
	merge:
		for {
			select {
			case more := <-l.cmds:
				if !w.join(more) {
					next = more
					break merge
				}
			default:
				break merge
			}
		}
		if p := cmd.pacer; p != nil && next == nil {
			var ok bool
			if next, ok = l.pace(p, &w); !ok {
				return
			}
		}
		l.writing <- struct{}{}
		l.writeLeaderBatch(w.batch, w.merged)
		<-l.writing
		l.finished(len(w.merged))
		w.reset()
	}
}

// leaderWrite gathers the leader appends queued back to back into one
// StoreLogs: their entries (batch) and their commands (merged).
type leaderWrite struct {
	batch  []*Log
	merged []*logCommand
}

// join adds cmd to the write if it is a leader append of the same term (the
// same pacer) as the ones gathered, and reports whether it did; any other
// command runs after the write.
func (w *leaderWrite) join(cmd *logCommand) bool {
	if cmd.kind != cmdLeaderAppend || (len(w.merged) > 0 && cmd.pacer != w.merged[0].pacer) {
		return false
	}
	w.batch = append(w.batch, cmd.entries...)
	w.merged = append(w.merged, cmd)
	return true
}

// reset empties the write, keeping its storage and dropping its pointers.
func (w *leaderWrite) reset() {
	clear(w.batch)
	clear(w.merged)
	w.batch, w.merged = w.batch[:0], w.merged[:0]
}

// writeLeaderBatch stores merged leader appends with one StoreLogs.
func (l *raftLog) writeLeaderBatch(batch []*Log, merged []*logCommand) {
	if l.leaderWriteFailed.Load() {
		// After a failure nothing more of the leader's is written: it is
		// stepping down, and settle re-reads the log from the store.
		return
	}
	start := time.Now()
	l.stageCommitIndex()
	err := l.store.StoreLogs(batch)
	measureSince([]string{"raft", "leader", "storeLogs"}, start)
	if err == nil && l.violated != nil {
		err = l.checkStoreEndsAt(batch[len(batch)-1])
	}
	if err != nil {
		l.leaderWriteFailed.Store(true)
		for _, cmd := range merged {
			if cmd.failed != nil {
				cmd.failed(err)
			}
		}
		return
	}
	lastIndex := batch[len(batch)-1].Index
	for _, cmd := range merged {
		if cmd.durable != nil {
			cmd.durable(lastIndex)
		}
	}
}

// finished counts n submitted commands as done.
func (l *raftLog) finished(n int) {
	l.queueMu.Lock()
	l.queued -= n
	l.queueMu.Unlock()
}

// execute runs one command other than a leader append.
func (l *raftLog) execute(cmd *logCommand) logResult {
	var res logResult
	switch cmd.kind {
	case cmdFollowerAppend:
		res.err = l.writeFollowerAppend(cmd)
	case cmdCompact:
		res.err = l.compact(cmd.through)
	case cmdDeleteAll:
		res.err = l.deleteAll()
	case cmdSettle:
		res.failed = l.leaderWriteFailed.Swap(false)
	case cmdExec:
		res.err = cmd.exec(l.store)
	}
	return res
}

func (l *raftLog) writeFollowerAppend(cmd *logCommand) error {
	if l.leaderWriteFailed.Load() {
		return errLeaderWriteFailed
	}
	if cmd.deleteFrom > 0 {
		if err := l.store.DeleteRange(cmd.deleteFrom, cmd.deleteTo); err != nil {
			return err
		}
	}
	l.stageCommitIndex()
	if err := l.store.StoreLogs(cmd.entries); err != nil {
		return err
	}
	if l.violated != nil {
		return l.checkStoreEndsAt(cmd.entries[len(cmd.entries)-1])
	}
	return nil
}

// compact deletes the entries a snapshot through snapshotIndex covers,
// keeping TrailingLogs entries for followers that are a little behind. It
// goes by the store's own bounds.
func (l *raftLog) compact(snapshotIndex uint64) error {
	defer measureSince([]string{"raft", "compactLogs"}, time.Now())
	first, err := l.store.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to get first log index: %w", err)
	}
	lastIndex, err := l.store.LastIndex()
	if err != nil {
		return fmt.Errorf("failed to get last log index: %w", err)
	}
	trailing := l.trailingLogs()
	if lastIndex <= trailing {
		return nil
	}
	maxIndex := min(snapshotIndex, lastIndex-trailing)
	if first == 0 || maxIndex < first {
		return nil
	}
	if commit := l.commitIndex(); maxIndex > commit {
		return l.violation("refusing to compact through %d: only %d is committed", maxIndex, commit)
	}
	l.logger.Info("compacting logs", "from", first, "to", maxIndex)
	if err := l.store.DeleteRange(first, maxIndex); err != nil {
		return fmt.Errorf("log compaction failed: %w", err)
	}
	l.tail.dropThrough(maxIndex)
	return nil
}

// deleteAll empties the store and the tail.
func (l *raftLog) deleteAll() error {
	first, err1 := l.store.FirstIndex()
	last, err2 := l.store.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("failed to read log bounds: %w", err)
	}
	l.tail.reset()
	if last == 0 {
		return nil
	}
	if err := l.store.DeleteRange(first, last); err != nil {
		return fmt.Errorf("failed to delete the log a snapshot replaced: %w", err)
	}
	return nil
}

// stageCommitIndex tells a CommitTrackingLogStore the commit index, which
// it persists with the next write, so that a restart can replay committed
// entries (Config.RestoreCommittedLogs).
func (l *raftLog) stageCommitIndex() {
	if store, ok := l.store.(CommitTrackingLogStore); ok {
		if err := store.StageCommitIndex(l.commitIndex()); err != nil {
			l.logger.Error("failed to stage commit index in log store", "error", err)
		}
	}
}

// checkStoreEndsAt checks (tests only: it costs two reads) that the store
// ends with the entry just written, as the tail and the last-log pair say.
func (l *raftLog) checkStoreEndsAt(want *Log) error {
	lastIndex, err := l.store.LastIndex()
	if err != nil {
		return err
	}
	var got Log
	if lastIndex != want.Index || l.store.GetLog(lastIndex, &got) != nil || got.Term != want.Term {
		return l.violation("the store ends at %d (term %d) after writing %d (term %d)", lastIndex, got.Term, want.Index, want.Term)
	}
	return nil
}
