package raft

import (
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
// loop. Only the main loop writes currentTerm and commitIndex; state is
// written by the main loop and by Shutdown, after which it never changes
// again (setState); the FSM runner writes lastApplied. The last-log and
// last-snapshot pairs belong to the log (raftLog).
type raftState struct {
	state       atomic.Uint32
	currentTerm atomic.Uint64
	commitIndex atomic.Uint64
	lastApplied atomic.Uint64
}

func (s *raftState) getState() RaftState       { return RaftState(s.state.Load()) }
func (s *raftState) setStateValue(v RaftState) { s.state.Store(uint32(v)) }
func (s *raftState) getCurrentTerm() uint64    { return s.currentTerm.Load() }
func (s *raftState) getCommitIndex() uint64    { return s.commitIndex.Load() }
func (s *raftState) getLastApplied() uint64    { return s.lastApplied.Load() }

// getLastLog returns the index and term of the last entry in the log.
func (r *Raft) getLastLog() (index, term uint64) { return r.log.last() }

// getLastSnapshot returns the index and term of the newest snapshot.
func (r *Raft) getLastSnapshot() (index, term uint64) { return r.log.lastSnapshot() }

// getLastIndex returns the index of the last entry, in the log or covered
// by the newest snapshot.
func (r *Raft) getLastIndex() uint64 {
	index, _ := r.log.lastEntry()
	return index
}

// getLastEntry returns the index and term of the last entry, in the log or
// covered by the newest snapshot.
func (r *Raft) getLastEntry() (index, term uint64) { return r.log.lastEntry() }

// getEntry returns the entry at index, from memory when possible.
func (r *Raft) getEntry(index uint64) (*Log, error) { return r.log.entry(index) }

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
