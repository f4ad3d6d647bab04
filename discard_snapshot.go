package raft

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// DiscardSnapshotStore is a SnapshotStore that keeps nothing: every snapshot
// written to it is thrown away and none can be listed or opened. It suits
// tests and nodes that never need to restore, since a node with it cannot
// send a snapshot to a lagging follower or recover its FSM after a restart.
type DiscardSnapshotStore struct{}

// NewDiscardSnapshotStore returns a store that discards every snapshot.
func NewDiscardSnapshotStore() *DiscardSnapshotStore {
	return &DiscardSnapshotStore{}
}

// Create returns a sink that discards what is written to it. As with the
// other stores, only SnapshotVersion 1 is accepted, so a caller writing an
// unsupported version learns of it here rather than from a real store.
func (d *DiscardSnapshotStore) Create(version SnapshotVersion, index, term uint64,
	configuration Configuration, configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}
	return &DiscardSnapshotSink{}, nil
}

// List returns no snapshots.
func (d *DiscardSnapshotStore) List() ([]*SnapshotMeta, error) {
	return nil, nil
}

// Open always fails: there is nothing to open.
func (d *DiscardSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	return nil, nil, errors.New("open is not supported")
}

// DiscardSnapshotSink accepts and drops a snapshot's data. Its zero value is
// ready to use.
type DiscardSnapshotSink struct {
	// done is set by the first Close or Cancel; writes then fail, as they
	// would on a real sink, so misuse shows up in tests.
	done atomic.Bool
}

// ID returns "discard".
func (d *DiscardSnapshotSink) ID() string {
	return "discard"
}

// Write drops p and reports it fully written.
func (d *DiscardSnapshotSink) Write(p []byte) (int, error) {
	if d.done.Load() {
		return 0, errSnapshotSinkClosed
	}
	return len(p), nil
}

// Close ends the snapshot. A second Close, or a Close after Cancel, returns
// an error.
func (d *DiscardSnapshotSink) Close() error {
	if d.done.Swap(true) {
		return errSnapshotSinkClosed
	}
	return nil
}

// Cancel ends the snapshot; it is safe to call after Close.
func (d *DiscardSnapshotSink) Cancel() error {
	d.done.Store(true)
	return nil
}
