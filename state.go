package raft

import (
	"sync"
	"sync/atomic"
	"time"
)

// RaftState captures the role of a node: Follower, Candidate, Leader or
// Shutdown.
type RaftState uint32

const (
	// Follower is the initial state of a Raft node.
	Follower RaftState = iota
	// Candidate is one of the valid states of a Raft node.
	Candidate
	// Leader is one of the valid states of a Raft node.
	Leader
	// Shutdown is the terminal state of a Raft node.
	Shutdown
)

// String returns the state's name.
func (s RaftState) String() string {
	switch s {
	case Follower:
		return "Follower"
	case Candidate:
		return "Candidate"
	case Leader:
		return "Leader"
	case Shutdown:
		return "Shutdown"
	default:
		return "Unknown"
	}
}

// raftState holds the values other goroutines read without asking the main
// loop. Only the main loop writes state, currentTerm, commitIndex and the
// last log pair; the FSM runner writes lastApplied; the snapshot path writes
// the last snapshot pair.
type raftState struct {
	state       atomic.Uint32
	currentTerm atomic.Uint64
	commitIndex atomic.Uint64
	lastApplied atomic.Uint64

	// lastMu guards the two index/term pairs, which must be read together.
	lastMu            sync.Mutex
	lastLogIndex      uint64
	lastLogTerm       uint64
	lastSnapshotIndex uint64
	lastSnapshotTerm  uint64
}

func (s *raftState) getState() RaftState       { return RaftState(s.state.Load()) }
func (s *raftState) setStateValue(v RaftState) { s.state.Store(uint32(v)) }
func (s *raftState) getCurrentTerm() uint64    { return s.currentTerm.Load() }
func (s *raftState) getCommitIndex() uint64    { return s.commitIndex.Load() }
func (s *raftState) getLastApplied() uint64    { return s.lastApplied.Load() }

func (s *raftState) getLastLog() (index, term uint64) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.lastLogIndex, s.lastLogTerm
}

func (s *raftState) setLastLog(index, term uint64) {
	s.lastMu.Lock()
	s.lastLogIndex, s.lastLogTerm = index, term
	s.lastMu.Unlock()
}

func (s *raftState) getLastSnapshot() (index, term uint64) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.lastSnapshotIndex, s.lastSnapshotTerm
}

func (s *raftState) setLastSnapshot(index, term uint64) {
	s.lastMu.Lock()
	s.lastSnapshotIndex, s.lastSnapshotTerm = index, term
	s.lastMu.Unlock()
}

// getLastIndex returns the index of the last entry, in the log or covered
// by the newest snapshot.
func (s *raftState) getLastIndex() uint64 {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return max(s.lastLogIndex, s.lastSnapshotIndex)
}

// getLastEntry returns the index and term of the last entry, in the log or
// covered by the newest snapshot.
func (s *raftState) getLastEntry() (index, term uint64) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if s.lastLogIndex >= s.lastSnapshotIndex {
		return s.lastLogIndex, s.lastLogTerm
	}
	return s.lastSnapshotIndex, s.lastSnapshotTerm
}

// atomicTime is a time.Time that can be read and written concurrently.
type atomicTime struct {
	v atomic.Pointer[time.Time]
}

func (a *atomicTime) load() time.Time {
	if p := a.v.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

func (a *atomicTime) store(t time.Time) { a.v.Store(&t) }
