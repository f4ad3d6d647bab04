package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// errSnapshotSinkClosed reports a Write or Close on a sink that was already
// closed or cancelled.
var errSnapshotSinkClosed = errors.New("snapshot: sink already closed or cancelled")

// InmemSnapshotStore is a SnapshotStore that keeps snapshots in memory. It
// is meant for tests; nothing survives the process.
//
// It keeps only the latest snapshot. A snapshot becomes visible to List and
// Open when its sink is closed, and then only if it is not older, by (Term,
// Index), than the snapshot already kept: letting an older snapshot replace
// a newer one could leave the node, after its log was compacted behind the
// newer one, with a gap between its snapshot and its log.
//
// It is safe for concurrent use.
type InmemSnapshotStore struct {
	// mu guards the fields below.
	mu sync.RWMutex

	// latest is the kept snapshot, nil until a sink is closed.
	latest *inmemSnapshot

	// created counts Create calls; it makes every ID unique even when
	// the clock does not move (as under testing/synctest).
	created uint64
}

// inmemSnapshot is a finished snapshot. Neither field changes once it is
// built, so readers share it without copying.
type inmemSnapshot struct {
	meta SnapshotMeta
	data []byte
}

// NewInmemSnapshotStore returns an empty in-memory snapshot store.
func NewInmemSnapshotStore() *InmemSnapshotStore {
	return &InmemSnapshotStore{}
}

// Create starts a snapshot. Only SnapshotVersion 1 is accepted. The
// snapshot's ID is "<term>-<index>-<unix ms>-<sequence>".
func (s *InmemSnapshotStore) Create(version SnapshotVersion, index, term uint64,
	configuration Configuration, configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}

	s.mu.Lock()
	s.created++
	sequence := s.created
	s.mu.Unlock()

	return &InmemSnapshotSink{
		store: s,
		meta: SnapshotMeta{
			Version: version,
			ID:      fmt.Sprintf("%d-%d-%d-%d", term, index, time.Now().UnixMilli(), sequence),
			Index:   index,
			Term:    term,
			// TODO(peers): fill with encodePeers(configuration, trans) once
			// the legacy peers encoding lands, for version-0 readers.
			Peers:              nil,
			Configuration:      configuration.Clone(),
			ConfigurationIndex: configurationIndex,
		},
	}, nil
}

// List returns the kept snapshot's metadata, or an empty list when there is
// none. The metadata returned is the caller's to modify.
func (s *InmemSnapshotStore) List() ([]*SnapshotMeta, error) {
	s.mu.RLock()
	latest := s.latest
	s.mu.RUnlock()
	if latest == nil {
		return []*SnapshotMeta{}, nil
	}
	return []*SnapshotMeta{latest.copyMeta()}, nil
}

// Open returns the metadata and data of the kept snapshot, which must have
// the given id. The reader sees the snapshot as it was closed, whatever is
// written to the store afterwards.
func (s *InmemSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	s.mu.RLock()
	latest := s.latest
	s.mu.RUnlock()
	if latest == nil || latest.meta.ID != id {
		return nil, nil, fmt.Errorf("[ERR] snapshot: failed to open snapshot id: %s", id)
	}
	return latest.copyMeta(), io.NopCloser(bytes.NewReader(latest.data)), nil
}

// publish makes snap the kept snapshot unless the kept one is newer.
func (s *InmemSnapshotStore) publish(snap *inmemSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest != nil && olderSnapshot(&snap.meta, &s.latest.meta) {
		return
	}
	s.latest = snap
}

// olderSnapshot reports whether a covers less of the log than b. Terms are
// compared first, as a later term's entries supersede an earlier term's.
func olderSnapshot(a, b *SnapshotMeta) bool {
	if a.Term != b.Term {
		return a.Term < b.Term
	}
	return a.Index < b.Index
}

func (snap *inmemSnapshot) copyMeta() *SnapshotMeta {
	meta := snap.meta
	meta.Configuration = snap.meta.Configuration.Clone()
	meta.Peers = bytes.Clone(snap.meta.Peers)
	return &meta
}

// InmemSnapshotSink receives the data of one snapshot of an
// InmemSnapshotStore. It is safe for concurrent use, though writes from
// several goroutines interleave in no particular order.
type InmemSnapshotSink struct {
	// store receives the snapshot on Close.
	store *InmemSnapshotStore

	// mu guards the fields below.
	mu sync.Mutex

	// meta is the snapshot's metadata; Write keeps meta.Size current.
	meta SnapshotMeta

	// contents is the data written so far.
	contents bytes.Buffer

	// done is set by the first Close or Cancel; the sink then takes no
	// more writes.
	done bool
}

// ID returns the ID the snapshot will have in the store.
func (s *InmemSnapshotSink) ID() string {
	return s.meta.ID // set by Create and never changed
}

// Write appends p to the snapshot's data.
func (s *InmemSnapshotSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, errSnapshotSinkClosed
	}
	n, err := s.contents.Write(p)
	s.meta.Size += int64(n)
	return n, err
}

// Close finishes the snapshot and makes it the store's latest (unless the
// store already keeps a newer one). A second Close, or a Close after
// Cancel, returns an error and changes nothing.
func (s *InmemSnapshotSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return errSnapshotSinkClosed
	}
	s.done = true
	// The buffer takes no writes from now on, so its bytes can be shared
	// with every reader without a copy.
	s.store.publish(&inmemSnapshot{meta: s.meta, data: s.contents.Bytes()})
	return nil
}

// Cancel throws the snapshot away; it never becomes visible. Cancel after
// Close is a no-op that keeps the closed snapshot, so a deferred Cancel is
// safe.
func (s *InmemSnapshotSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		s.contents = bytes.Buffer{}
	}
	return nil
}
