package raft

import (
	"io"
)

// Future is the result of an asynchronous operation.
type Future interface {
	// Error blocks until the operation finishes and returns its error, or
	// nil on success. It may be called any number of times, from any
	// goroutine; every call returns the same value.
	Error() error
}

// IndexFuture is a Future that also names a log index.
type IndexFuture interface {
	Future

	// Index is the log index of the operation's entry; valid once Error
	// has returned nil.
	Index() uint64
}

// ApplyFuture is the result of Apply: the entry's index and the value the
// leader's FSM returned for it.
type ApplyFuture interface {
	IndexFuture

	// Response is what FSM.Apply returned for the entry; valid once Error
	// has returned nil. An FSM reports its own errors through this value,
	// never through Error.
	Response() interface{}
}

// ConfigurationFuture is the result of GetConfiguration.
type ConfigurationFuture interface {
	IndexFuture

	// Configuration is the latest configuration; valid once Error has
	// returned nil.
	Configuration() Configuration
}

// SnapshotFuture is the result of a user-requested snapshot.
type SnapshotFuture interface {
	Future

	// Open opens the snapshot that was taken. The caller closes the reader.
	Open() (*SnapshotMeta, io.ReadCloser, error)
}

// LeadershipTransferFuture is the result of a leadership transfer.
type LeadershipTransferFuture interface {
	Future
}
