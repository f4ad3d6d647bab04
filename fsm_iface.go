package raft

import "io"

// FSM is the application's state machine, driven by the replicated log.
//
// Apply, Snapshot and Restore are called from one goroutine (the FSM runner),
// never concurrently with each other. FSMSnapshot.Persist runs on another
// goroutine, concurrently with later Apply calls.
type FSM interface {
	// Apply applies one committed LogCommand entry. Entries arrive in index
	// order, each once. On the node that appended the entry, the return
	// value becomes ApplyFuture.Response.
	Apply(*Log) interface{}

	// Snapshot captures the current state cheaply; the writing out happens
	// later in FSMSnapshot.Persist, concurrently with further Apply calls.
	Snapshot() (FSMSnapshot, error)

	// Restore replaces all state with the snapshot's. Nothing of the old
	// state may survive it.
	Restore(snapshot io.ReadCloser) error
}

// BatchingFSM is an FSM that takes committed entries in batches. It receives
// LogCommand and LogConfiguration entries, in index order, at most
// Config.MaxAppendEntries at a time.
type BatchingFSM interface {
	// ApplyBatch returns one response per entry, in the same order.
	ApplyBatch([]*Log) []interface{}

	FSM
}

// FSMSnapshot is a point-in-time view of the FSM. Its methods run
// concurrently with FSM.Apply.
type FSMSnapshot interface {
	// Persist writes the view to sink, then calls sink.Close, or
	// sink.Cancel if it fails.
	Persist(sink SnapshotSink) error

	// Release is called once the snapshot is no longer needed.
	Release()
}

// ConfigurationStore is an FSM that also wants to see every committed
// configuration.
type ConfigurationStore interface {
	FSM

	// StoreConfiguration is called, in log order with Apply, for each
	// committed LogConfiguration entry.
	StoreConfiguration(index uint64, configuration Configuration)
}

// ReadCloserWrapper is a reader that wraps another and gives access to it.
type ReadCloserWrapper interface {
	io.ReadCloser
	WrappedReadCloser() io.ReadCloser
}

// CountingReader is a reader that counts the bytes read through it.
type CountingReader interface {
	io.Reader
	Count() int64
}
