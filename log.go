package raft

import (
	"strconv"
	"time"
)

// LogType describes the kind of a log entry.
type LogType uint8

const (
	// LogCommand is applied to the user FSM.
	LogCommand LogType = iota

	// LogNoop is used to assert leadership; the leader appends one at the
	// start of every term so that entries of earlier terms can commit.
	LogNoop

	// LogAddPeerDeprecated was used to add a peer under protocol version < 2.
	LogAddPeerDeprecated

	// LogRemovePeerDeprecated was used to remove a peer under protocol
	// version < 2.
	LogRemovePeerDeprecated

	// LogBarrier is used to ensure all preceding operations are applied to
	// the FSM. It is not passed to the FSM.
	LogBarrier

	// LogConfiguration establishes a membership change. Its Data is the
	// output of EncodeConfiguration.
	LogConfiguration
)

// String returns the name of the log type, or its decimal value when unknown.
func (lt LogType) String() string {
	switch lt {
	case LogCommand:
		return "LogCommand"
	case LogNoop:
		return "LogNoop"
	case LogAddPeerDeprecated:
		return "LogAddPeerDeprecated"
	case LogRemovePeerDeprecated:
		return "LogRemovePeerDeprecated"
	case LogBarrier:
		return "LogBarrier"
	case LogConfiguration:
		return "LogConfiguration"
	default:
		return strconv.Itoa(int(lt))
	}
}

// Log entries are replicated to all members of the Raft cluster and form
// the heart of the replicated state machine.
type Log struct {
	// Index holds the index of the log entry.
	Index uint64

	// Term holds the election term of the log entry.
	Term uint64

	// Type holds the type of the log entry.
	Type LogType

	// Data holds the log entry's type-specific data.
	Data []byte

	// Extensions holds an opaque byte slice of information for middleware.
	// Raft passes it through untouched; the FSM sees it on every replica.
	Extensions []byte

	// AppendedAt is the time the leader first appended this entry to its
	// log. It is set on the leader and replicated as is; it is informational
	// (clocks of different nodes are not compared for safety).
	AppendedAt time.Time
}

// LogStore provides an interface for storing and retrieving logs in a
// durable fashion.
//
// Contract: a LogStore has one writer. A node makes its StoreLog,
// StoreLogs and DeleteRange calls one at a time, never two at once, in the
// order it decided them (from its log writer goroutine, or from its main
// loop while the writer is idle); other goroutines of the node
// (replicators, the FSM runner) may read (FirstIndex, LastIndex, GetLog)
// at the same time. StoreLog and StoreLogs must not return until
// the entries are durable to the degree the application needs: Raft
// acknowledges entries to peers right after these return.
type LogStore interface {
	// FirstIndex returns the first index written. 0 for no entries.
	FirstIndex() (uint64, error)

	// LastIndex returns the last index written. 0 for no entries.
	LastIndex() (uint64, error)

	// GetLog gets a log entry at a given index. It returns ErrLogNotFound
	// (by identity) when the entry does not exist.
	GetLog(index uint64, log *Log) error

	// StoreLog stores a log entry.
	StoreLog(log *Log) error

	// StoreLogs stores multiple log entries. Entries are contiguous and
	// follow the current last index.
	StoreLogs(logs []*Log) error

	// DeleteRange deletes a range of log entries. The range is inclusive.
	DeleteRange(min, max uint64) error
}

// MonotonicLogStore is an optional interface for LogStore implementations
// that cannot tolerate gaps in between the Index values of consecutive log
// entries. When IsMonotonic returns true, Raft removes every log entry after
// installing a snapshot instead of leaving a gap.
type MonotonicLogStore interface {
	IsMonotonic() bool
}

// CommitTrackingLogStore is a LogStore that also records the commit index,
// so that a restarted node can replay committed entries into its FSM before
// it hears from a leader (Config.RestoreCommittedLogs).
type CommitTrackingLogStore interface {
	LogStore

	// StageCommitIndex records the commit index; it is persisted with the
	// next StoreLogs call at the latest.
	StageCommitIndex(idx uint64) error

	// GetCommitIndex returns the last persisted commit index.
	GetCommitIndex() (uint64, error)
}

// StableStore is used to provide stable storage of key configurations to
// ensure safety. Set and SetUint64 must be durable when they return.
//
// A missing key is reported either as an error whose text is exactly
// "not found", or as (nil, nil) / (0, nil); any other error is fatal.
type StableStore interface {
	Set(key []byte, val []byte) error

	// Get returns the value for key, or an empty byte slice if key was not
	// found.
	Get(key []byte) ([]byte, error)

	SetUint64(key []byte, val uint64) error

	// GetUint64 returns the uint64 value for key, or 0 if key was not found.
	GetUint64(key []byte) (uint64, error)
}
