package raft

import "io"

// SnapshotMeta describes a snapshot: where in the log it stands, the
// configuration at that point, and its size.
type SnapshotMeta struct {
	// Version of this metadata layout; the FSM versions its own data.
	Version SnapshotVersion

	// ID is the store's name for the snapshot, passed back to Open.
	ID string

	// Index and Term are the last entry the snapshot covers.
	Index uint64
	Term  uint64

	// Peers is the legacy peer list, still filled for old readers.
	Peers []byte

	// Configuration is the latest configuration at Index, and
	// ConfigurationIndex the index of the entry that made it.
	Configuration      Configuration
	ConfigurationIndex uint64

	// Size is the length of the snapshot's data in bytes.
	Size int64
}

// SnapshotStore keeps snapshots. FileSnapshotStore is the durable one; users
// may bring their own.
type SnapshotStore interface {
	// Create starts a snapshot; it becomes visible to List and Open only
	// once the returned sink is closed without error.
	Create(version SnapshotVersion, index, term uint64, configuration Configuration,
		configurationIndex uint64, trans Transport) (SnapshotSink, error)

	// List returns the complete snapshots, newest first.
	List() ([]*SnapshotMeta, error)

	// Open returns a snapshot's metadata and a reader of its data; the
	// caller closes the reader.
	Open(id string) (*SnapshotMeta, io.ReadCloser, error)
}

// SnapshotSink receives a snapshot's data. Close makes it durable and
// visible; Cancel throws it away.
type SnapshotSink interface {
	io.WriteCloser
	ID() string
	Cancel() error
}
