package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// raftLog is the node's log: the LogStore, the in-memory tail of recent
// entries, and the last-log and last-snapshot pairs. It is the only writer
// of the LogStore. Every write (the leader's new entries, a follower's
// truncation and appends, compaction after a snapshot, the log a snapshot
// replaces) is a command run in order by one goroutine that lives as long
// as the node (writeLoop), or, when that goroutine has nothing queued, by
// the caller waiting for it while holding the queue (no hand-off on a
// follower's hot path). So a store sees one write at a time, as the
// LogStore contract promises, and writes land in the order the node
// decided them: a deposed leader's queued entries reach the disk before
// the truncation that replaces them, never after.
//
// The main loop decides what to write and keeps the tail and the last-log
// pair; the writer only executes. The leader's writes are queued without
// waiting (its disk write runs beside replication, dissertation §10.2.1);
// every other write waits for its command to finish.
type raftLog struct {
	store  LogStore
	tail   *logTail
	logger hclog.Logger
	// commitIndex reads the node's commit index: staged into a
	// CommitTrackingLogStore before each write, and the floor below which
	// nothing may be truncated.
	commitIndex func() uint64
	// trailingLogs reads Config.TrailingLogs, which ReloadConfig may change.
	trailingLogs func() uint64
	// violated, when set (tests), is told of every broken invariant, and
	// checks that cost a store read run too; either way the invariant's
	// operation fails with an error and the break is logged. It must be
	// set before the writer starts.
	violated func(error)

	// mu guards the two index/term pairs, which are read together.
	mu                sync.Mutex
	lastLogIndex      uint64
	lastLogTerm       uint64
	lastSnapshotIndex uint64
	lastSnapshotTerm  uint64

	cmds chan *logCommand
	// queueMu guards queued, the commands submitted to the writer and not
	// finished. With none, a command the caller waits for runs on the
	// caller's goroutine instead (no hand-off to the writer and back on a
	// follower's hot path); order and one-write-at-a-time hold either way.
	queueMu sync.Mutex
	queued  int
	// writing is held (a value in it) by whoever runs a command against
	// the store: the writer or a caller running its own command. It is a
	// channel, not a mutex, so that waiting for it is a durable block in a
	// testing/synctest bubble, where a store write may sleep.
	writing    chan struct{}
	shutdownCh <-chan struct{}
	// leaderWriteFailed is set by the writer when a leader's write fails.
	// From then on the writer skips leader writes and refuses follower
	// appends, whose decisions assumed the failed entries, until settle
	// has re-read the log's end from the store.
	leaderWriteFailed atomic.Bool
}

// errLeaderWriteFailed refuses a follower append queued behind a failed
// leader write: the append was decided against entries the store refused.
var errLeaderWriteFailed = errors.New("log write refused: an earlier leader write failed")

type logCommandKind int

const (
	// cmdLeaderAppend stores a leader's new entries; queued, not awaited.
	cmdLeaderAppend logCommandKind = iota
	// cmdFollowerAppend deletes a conflicting suffix, if any, and stores
	// a follower's new entries.
	cmdFollowerAppend
	// cmdCompact deletes the entries a snapshot covers, keeping
	// TrailingLogs.
	cmdCompact
	// cmdDeleteAll empties the log (a snapshot replaces all of it).
	cmdDeleteAll
	// cmdSettle waits for every earlier command and clears a leader
	// write failure.
	cmdSettle
	// cmdExec runs a function against the store (bootstrap).
	cmdExec
)

// logCommand is one write for the writer goroutine.
type logCommand struct {
	kind    logCommandKind
	entries []*Log
	// deleteFrom..deleteTo is the conflicting suffix a follower append
	// removes first (deleteFrom 0: none).
	deleteFrom, deleteTo uint64
	// through is the snapshot index a compaction covers.
	through uint64
	// durable is called once a leader append is on disk; failed when the
	// store refused it.
	durable func(lastIndex uint64)
	failed  func(error)
	// pacer, on a leader append, paces the leader's writes (leader_pace.go).
	pacer *leaderPacer
	exec  func(LogStore) error
	// done receives the outcome of a command the caller waits for; for
	// cmdSettle, failed tells whether a leader write had failed.
	done chan logResult
}

type logResult struct {
	err    error
	failed bool
}

func newRaftLog(store LogStore, logger hclog.Logger, shutdownCh <-chan struct{}, commitIndex, trailingLogs func() uint64, strict bool) *raftLog {
	var violated func(error)
	if strict {
		violated = func(err error) { panic(err) }
	}
	return &raftLog{
		store:        store,
		tail:         newLogTail(tailEntries),
		logger:       logger,
		commitIndex:  commitIndex,
		trailingLogs: trailingLogs,
		violated:     violated,
		cmds:         make(chan *logCommand, 64),
		writing:      make(chan struct{}, 1),
		shutdownCh:   shutdownCh,
	}
}

// last returns the index and term of the last entry in the log (0, 0 when
// it is empty), counting entries the leader is still writing.
func (l *raftLog) last() (index, term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastLogIndex, l.lastLogTerm
}

// lastSnapshot returns the index and term of the newest snapshot's last
// entry.
func (l *raftLog) lastSnapshot() (index, term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSnapshotIndex, l.lastSnapshotTerm
}

// lastEntry returns the index and term of the last entry, in the log or
// covered by the newest snapshot.
func (l *raftLog) lastEntry() (index, term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastLogIndex >= l.lastSnapshotIndex {
		return l.lastLogIndex, l.lastLogTerm
	}
	return l.lastSnapshotIndex, l.lastSnapshotTerm
}

func (l *raftLog) setLast(index, term uint64) {
	l.mu.Lock()
	l.lastLogIndex, l.lastLogTerm = index, term
	l.mu.Unlock()
}

// entry returns the entry at index, from memory when possible.
func (l *raftLog) entry(index uint64) (*Log, error) {
	if entry, ok := l.tail.get(index); ok {
		return entry, nil
	}
	entry := new(Log)
	if err := l.store.GetLog(index, entry); err != nil {
		return nil, err
	}
	return entry, nil
}

// submit hands a command to the writer; false when the node shuts down
// first.
func (l *raftLog) submit(cmd *logCommand) bool {
	l.queueMu.Lock()
	l.queued++
	l.queueMu.Unlock()
	select {
	case l.cmds <- cmd:
		return true
	case <-l.shutdownCh:
		return false
	}
}

// await submits a command and waits for its outcome.
func (l *raftLog) await(cmd *logCommand) logResult {
	l.queueMu.Lock()
	if l.queued == 0 {
		select {
		case l.writing <- struct{}{}:
			l.queueMu.Unlock()
			defer func() { <-l.writing }()
			select {
			case <-l.shutdownCh:
				return logResult{err: ErrRaftShutdown}
			default:
			}
			return l.execute(cmd)
		default:
		}
	}
	l.queueMu.Unlock()
	cmd.done = make(chan logResult, 1)
	if !l.submit(cmd) {
		return logResult{err: ErrRaftShutdown}
	}
	select {
	case res := <-cmd.done:
		return res
	case <-l.shutdownCh:
		return logResult{err: ErrRaftShutdown}
	}
}

// appendAsLeader adds a leader's new entries: they are in the log for
// readers (replicators) at once, and on disk once durable is called.
// failed is called if the store refuses them; the leader must then step
// down, and settle re-reads where the log ends.
func (l *raftLog) appendAsLeader(entries []*Log, pacer *leaderPacer, durable func(uint64), failed func(error)) {
	if len(entries) == 0 {
		return
	}
	l.tail.append(entries)
	last := entries[len(entries)-1]
	l.setLast(last.Index, last.Term)
	l.submit(&logCommand{kind: cmdLeaderAppend, entries: entries, pacer: pacer, durable: durable, failed: failed})
}

// followerPlan is what a follower append changes: the conflicting suffix
// it removes (truncatedFrom 0: none) and the entries it adds.
type followerPlan struct {
	truncatedFrom uint64
	// lastIndex is the log's last index before the append.
	lastIndex  uint64
	newEntries []*Log
}

// followerWrite gathers the planned appends of several AppendEntries
// requests into one write: at most one truncation, first.
type followerWrite struct {
	deleteFrom, deleteTo uint64
	entries              []*Log
}

func (w *followerWrite) empty() bool { return w.deleteFrom == 0 && len(w.entries) == 0 }

// planAsFollower decides what appending entries, whose previous entry
// already matched, changes in the log: the entries the log does not hold
// yet, skipping those at or below snapshotIndex (committed, so equal to the
// leader's), after a conflicting suffix is removed (§5.3). It changes
// nothing.
func (l *raftLog) planAsFollower(entries []*Log, snapshotIndex uint64) (followerPlan, error) {
	lastIndex, _ := l.last()
	plan := followerPlan{lastIndex: lastIndex}
	for i, entry := range entries {
		if entry.Index <= snapshotIndex {
			continue
		}
		if entry.Index > lastIndex {
			plan.newEntries = entries[i:]
			break
		}
		stored, err := l.entry(entry.Index)
		if err != nil {
			return followerPlan{}, err
		}
		if stored.Term != entry.Term {
			plan.truncatedFrom = entry.Index
			plan.newEntries = entries[i:]
			break
		}
	}
	if plan.truncatedFrom > 0 {
		// Committed entries are the same on every server: a conflict at
		// or below the commit index means a broken leader or store.
		if commit := l.commitIndex(); plan.truncatedFrom <= commit {
			return followerPlan{}, l.violation("refusing to truncate the log from %d: entries up to %d are committed",
				plan.truncatedFrom, commit)
		}
	}
	return plan, nil
}

// stage puts a planned append into the log as readers see it (the tail
// and the last-log pair) and into w, whose flush makes it durable. A plan
// that truncates must be staged into an empty w.
func (l *raftLog) stage(w *followerWrite, plan followerPlan) {
	if len(plan.newEntries) == 0 {
		return
	}
	if plan.truncatedFrom > 0 {
		l.logger.Warn("clearing log suffix", "from", plan.truncatedFrom, "to", plan.lastIndex)
		w.deleteFrom, w.deleteTo = plan.truncatedFrom, plan.lastIndex
		l.tail.truncateAfter(plan.truncatedFrom - 1)
	}
	w.entries = append(w.entries, plan.newEntries...)
	l.tail.append(plan.newEntries)
	last := plan.newEntries[len(plan.newEntries)-1]
	l.setLast(last.Index, last.Term)
}

// flush writes what w gathered and waits until it is durable. When the
// write fails, the log forgets what it staged and re-reads its end from
// the store.
func (l *raftLog) flush(w *followerWrite) error {
	if w.empty() {
		return nil
	}
	res := l.await(&logCommand{kind: cmdFollowerAppend, entries: w.entries,
		deleteFrom: w.deleteFrom, deleteTo: w.deleteTo})
	*w = followerWrite{}
	switch {
	case res.err == nil:
		return nil
	case errors.Is(res.err, errLeaderWriteFailed):
		// Nothing was written; settle re-reads the log from the store.
		if _, err := l.settle(); err != nil {
			return err
		}
	case !errors.Is(res.err, ErrRaftShutdown):
		// Part of the write may have reached the store.
		l.reload()
	}
	return res.err
}

// settleIfLeaderWriteFailed lets the log re-read its end from the store
// when a leader write failed, before a follower decides anything against
// it.
func (l *raftLog) settleIfLeaderWriteFailed() error {
	if !l.leaderWriteFailed.Load() {
		return nil
	}
	_, err := l.settle()
	return err
}

// settle waits until every write queued so far has finished. When a
// leader write had failed (failed), it forgets the tail and re-reads the
// log's end from the store, which then holds exactly what the log is.
func (l *raftLog) settle() (failed bool, err error) {
	res := l.await(&logCommand{kind: cmdSettle})
	if res.err != nil {
		return false, res.err
	}
	if res.failed {
		l.reload()
	}
	return res.failed, nil
}

// reload forgets the tail and reads the last entry back from the store.
func (l *raftLog) reload() {
	l.tail.reset()
	lastIndex, err := l.store.LastIndex()
	if err != nil {
		l.logger.Error("failed to read last log index", "error", err)
		return
	}
	if lastIndex == 0 {
		l.setLast(0, 0)
		return
	}
	var entry Log
	if err := l.store.GetLog(lastIndex, &entry); err != nil {
		l.logger.Error("failed to read last log", "index", lastIndex, "error", err)
		return
	}
	l.setLast(entry.Index, entry.Term)
}

// snapshotTaken records a local snapshot through index and compacts the
// log it covers. A snapshot that finished after a newer one was installed
// leaves the newer one in place.
func (l *raftLog) snapshotTaken(index, term uint64) error {
	l.mu.Lock()
	if index > l.lastSnapshotIndex {
		l.lastSnapshotIndex, l.lastSnapshotTerm = index, term
	}
	l.mu.Unlock()
	return l.await(&logCommand{kind: cmdCompact, through: index}).err
}

// installSnapshot makes a snapshot through (index, term) the start of the
// log. §7: if the log holds the snapshot's last entry, the entries after it
// stay (a MonotonicLogStore cannot hold the gap compaction may leave, so it
// is emptied instead); otherwise the whole log goes.
func (l *raftLog) installSnapshot(index, term uint64, monotonic bool) error {
	// The pair already names the snapshot: the handler adopted its
	// metadata (adoptSnapshotMeta) after the FSM restored it.
	if _, err := l.settle(); err != nil {
		return err
	}
	if entry, err := l.entry(index); err == nil && entry.Term == term && !monotonic {
		return l.await(&logCommand{kind: cmdCompact, through: index}).err
	}
	err := l.await(&logCommand{kind: cmdDeleteAll}).err
	l.setLast(0, 0)
	return err
}

// restoreSnapshot makes a user's snapshot, through (index, term), the
// whole state: the log continues after it. A MonotonicLogStore is emptied;
// other stores keep their entries below the gap. The caller has settled
// the log.
func (l *raftLog) restoreSnapshot(index, term uint64, monotonic bool) error {
	if err := l.moveSnapshot(index, term); err != nil {
		return err
	}
	var err error
	if monotonic {
		err = l.await(&logCommand{kind: cmdDeleteAll}).err
	}
	l.tail.reset()
	l.setLast(index, term)
	return err
}

// moveSnapshot sets the last-snapshot pair, which never moves back.
func (l *raftLog) moveSnapshot(index, term uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.lastSnapshotIndex {
		return l.violation("refusing to move the last snapshot back from %d to %d", l.lastSnapshotIndex, index)
	}
	l.lastSnapshotIndex, l.lastSnapshotTerm = index, term
	return nil
}

// exec runs fn against the store on the writer and waits for it.
func (l *raftLog) exec(fn func(LogStore) error) error {
	return l.await(&logCommand{kind: cmdExec, exec: fn}).err
}

// violation reports a broken invariant of the log: logged and returned as
// an error, and told to violated in tests (strict mode panics there).
func (l *raftLog) violation(format string, args ...any) error {
	err := fmt.Errorf("raft log invariant broken: "+format, args...)
	l.logger.Error(err.Error())
	if l.violated != nil {
		l.violated(err)
	}
	return err
}
