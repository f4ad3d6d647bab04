package rafttest

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quorumkit/raft"
)

// Store is what a node of the kit keeps its log and its term and vote in.
type Store interface {
	raft.LogStore
	raft.StableStore
}

// ErrCrashed is returned by every write to a CrashableStore after its Crash:
// the node lost power, so nothing it writes reaches the disk any more.
var ErrCrashed = errors.New("rafttest: store crashed (simulated power loss)")

// CrashableStore wraps a Store to model power loss.
//
// The model: every write (StoreLog, StoreLogs, DeleteRange, Set, SetUint64)
// takes SyncDelay to reach the disk, and reaches it, all at once, when the
// call returns nil. That is the contract Raft relies on (a store syncs before
// it returns) and the one our in-memory and wal stores keep; the wrapped
// store only ever sees writes that reached the disk.
//
// Crash cuts the power. A write in progress at that instant has not been
// acknowledged, so the disk may hold any part of it: a StoreLogs batch keeps
// a random prefix (possibly empty, possibly whole), a Set or DeleteRange
// happened or did not. The write then fails with ErrCrashed, as does every
// later write. Reads keep working, so that the node's goroutines can wind
// down; the node's network is cut before its store, so nothing it reads
// after the crash leaves it.
//
// With SyncDelay 0 a write is in progress only for the instant it takes to
// copy it, so a crash rarely finds one; give it a delay (virtual time inside
// a testing/synctest bubble) to make lost writes common.
type CrashableStore struct {
	inner     Store
	syncDelay time.Duration

	// mu orders writes reaching inner against Crash, and guards crashed
	// and rng.
	mu      sync.Mutex
	crashed bool
	rng     *rand.Rand
	// crashedCh is closed by Crash.
	crashedCh chan struct{}
}

// NewCrashableStore wraps inner. Writes take syncDelay; seed drives the
// choice of what survives a crash.
func NewCrashableStore(inner Store, syncDelay time.Duration, seed int64) *CrashableStore {
	return &CrashableStore{inner: inner, syncDelay: syncDelay, rng: newRand(seed, 0x5703e), crashedCh: make(chan struct{})}
}

// monotonicCrashableStore is a CrashableStore over a store that refuses gaps
// in its log; Raft handles such stores differently, so the wrapper must not
// hide it.
type monotonicCrashableStore struct{ *CrashableStore }

func (monotonicCrashableStore) IsMonotonic() bool { return true }

// asRaftStore returns s as the store a node runs on, keeping the inner
// store's raft.MonotonicLogStore property.
func (s *CrashableStore) asRaftStore() Store {
	if m, ok := s.inner.(raft.MonotonicLogStore); ok && m.IsMonotonic() {
		return monotonicCrashableStore{s}
	}
	return s
}

// Crash cuts the power: writes in progress keep only what the model allows
// and every later write fails with ErrCrashed.
func (s *CrashableStore) Crash() {
	s.mu.Lock()
	if !s.crashed {
		s.crashed = true
		close(s.crashedCh)
	}
	s.mu.Unlock()
}

// Crashed reports whether Crash was called.
func (s *CrashableStore) Crashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

// write runs one write under the model: it fails at once after a crash,
// otherwise it waits for the sync delay and then applies whole, or, if the
// power was cut meanwhile, applies partial (which may do nothing) and fails.
func (s *CrashableStore) write(whole func() error, partial func(rng *rand.Rand) error) error {
	if s.Crashed() {
		return ErrCrashed
	}
	if s.syncDelay > 0 {
		time.Sleep(s.syncDelay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed {
		if err := partial(s.rng); err != nil {
			return err
		}
		return ErrCrashed
	}
	return whole()
}

// maybe runs op with probability one half: an atomic write cut by a crash
// either reached the disk or did not.
func maybe(op func() error) func(*rand.Rand) error {
	return func(rng *rand.Rand) error {
		if rng.IntN(2) == 0 {
			return nil
		}
		return op()
	}
}

// StoreLog stores one entry.
func (s *CrashableStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores a batch; a crash during the call keeps a random prefix.
func (s *CrashableStore) StoreLogs(logs []*raft.Log) error {
	return s.write(
		func() error { return s.inner.StoreLogs(logs) },
		func(rng *rand.Rand) error {
			if keep := rng.IntN(len(logs) + 1); keep > 0 {
				return s.inner.StoreLogs(logs[:keep])
			}
			return nil
		})
}

// DeleteRange deletes entries; a crash during the call may or may not undo it.
func (s *CrashableStore) DeleteRange(minIndex, maxIndex uint64) error {
	op := func() error { return s.inner.DeleteRange(minIndex, maxIndex) }
	return s.write(op, maybe(op))
}

// Set stores a value; a crash during the call may or may not undo it.
func (s *CrashableStore) Set(key, val []byte) error {
	op := func() error { return s.inner.Set(key, val) }
	return s.write(op, maybe(op))
}

// SetUint64 stores a value; a crash during the call may or may not undo it.
func (s *CrashableStore) SetUint64(key []byte, val uint64) error {
	op := func() error { return s.inner.SetUint64(key, val) }
	return s.write(op, maybe(op))
}

// FirstIndex reads from the wrapped store.
func (s *CrashableStore) FirstIndex() (uint64, error) { return s.inner.FirstIndex() }

// LastIndex reads from the wrapped store.
func (s *CrashableStore) LastIndex() (uint64, error) { return s.inner.LastIndex() }

// GetLog reads from the wrapped store.
func (s *CrashableStore) GetLog(index uint64, log *raft.Log) error {
	return s.inner.GetLog(index, log)
}

// Get reads from the wrapped store.
func (s *CrashableStore) Get(key []byte) ([]byte, error) { return s.inner.Get(key) }

// GetUint64 reads from the wrapped store.
func (s *CrashableStore) GetUint64(key []byte) (uint64, error) { return s.inner.GetUint64(key) }
