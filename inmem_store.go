package raft

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
)

// errStableKeyNotFound is what InmemStore.Get returns for a missing key.
// Raft recognises a missing stable key by this exact text (not by
// identity), so the message must stay "not found".
var errStableKeyNotFound = errors.New("not found")

// errNilLog reports a nil *Log handed to a store or cache.
var errNilLog = errors.New("raft: nil *Log")

// errLogIndexZero reports an attempt to store an entry at index 0, which
// Raft never uses and which FirstIndex/LastIndex reserve for "empty".
var errLogIndexZero = errors.New("raft: log index 0 is reserved")

// InmemStore is a LogStore and StableStore that keeps everything in memory.
// It is meant for tests and for nodes whose state may be lost on restart; it
// offers no durability across process restarts.
//
// It is safe for concurrent use: any number of readers may run alongside the
// single writer Raft uses.
//
// An InmemStore behaves like a store that serialises what it is given: the
// entries and values it keeps are copies taken during StoreLog(s) and Set, so
// a caller may reuse its buffers afterwards. Reads do not copy the payload:
// the Data and Extensions of a Log filled by GetLog are shared with the store
// and must be treated as read-only.
type InmemStore struct {
	// mu guards every field below.
	mu sync.RWMutex

	// logs maps an index to its entry. The log may have gaps (a follower
	// that installed a snapshot keeps older entries below it), so a map is
	// used rather than a dense slice.
	logs map[uint64]Log

	// firstIndex and lastIndex are the smallest and largest keys of logs,
	// or both 0 when logs is empty.
	firstIndex uint64
	lastIndex  uint64

	// kv holds values written by Set, kvUint64 values written by
	// SetUint64. The two are separate namespaces, as in hashicorp/raft.
	kv       map[string][]byte
	kvUint64 map[string]uint64
}

// NewInmemStore returns an empty in-memory store.
func NewInmemStore() *InmemStore {
	return &InmemStore{
		logs:     make(map[uint64]Log),
		kv:       make(map[string][]byte),
		kvUint64: make(map[string]uint64),
	}
}

// FirstIndex returns the smallest index held, or 0 when the log is empty.
func (s *InmemStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.firstIndex, nil
}

// LastIndex returns the largest index held, or 0 when the log is empty.
func (s *InmemStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastIndex, nil
}

// GetLog fills log with the entry at index, or returns ErrLogNotFound.
func (s *InmemStore) GetLog(index uint64, log *Log) error {
	if log == nil {
		return errNilLog
	}
	s.mu.RLock()
	entry, ok := s.logs[index]
	s.mu.RUnlock()
	if !ok {
		return ErrLogNotFound
	}
	*log = entry
	return nil
}

// StoreLog stores one entry, replacing any entry already at its index.
func (s *InmemStore) StoreLog(log *Log) error {
	return s.StoreLogs([]*Log{log})
}

// StoreLogs stores the entries, replacing any entries already at their
// indexes. Either all entries are stored or, on error, none.
func (s *InmemStore) StoreLogs(logs []*Log) error {
	// Validate and copy outside the lock so readers are held up only for
	// the map updates. The payloads of the whole batch share one
	// allocation.
	payloadSize := 0
	for _, l := range logs {
		if l == nil {
			return errNilLog
		}
		if l.Index == 0 {
			return errLogIndexZero
		}
		payloadSize += len(l.Data) + len(l.Extensions)
	}
	payloads := make([]byte, 0, payloadSize)
	copies := make([]Log, len(logs))
	for i, l := range logs {
		copies[i] = *l
		copies[i].Data, payloads = carveCopy(payloads, l.Data)
		copies[i].Extensions, payloads = carveCopy(payloads, l.Extensions)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range copies {
		s.logs[l.Index] = l
		if len(s.logs) == 1 || l.Index < s.firstIndex {
			s.firstIndex = l.Index
		}
		if len(s.logs) == 1 || l.Index > s.lastIndex {
			s.lastIndex = l.Index
		}
	}
	return nil
}

// carveCopy appends src to buf, which must have room for it, and returns
// the copy (nil when src is nil, capped so that appending to it cannot
// overwrite a neighbour) and the extended buf.
func carveCopy(buf, src []byte) (dst, rest []byte) {
	if src == nil {
		return nil, buf
	}
	start := len(buf)
	buf = append(buf, src...)
	return buf[start:len(buf):len(buf)], buf
}

// DeleteRange removes the entries with indexes in [minIndex, maxIndex].
// Indexes that hold no entry are skipped; an empty range (minIndex >
// maxIndex) deletes nothing. The cost is bounded by the number of entries
// held, not by the width of the range, so DeleteRange(0, math.MaxUint64) is
// cheap.
func (s *InmemStore) DeleteRange(minIndex, maxIndex uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if len(s.logs) == 0 || minIndex > maxIndex || maxIndex < s.firstIndex || minIndex > s.lastIndex {
		return nil
	}
	// Only [firstIndex, lastIndex] can hold entries.
	lo, hi := max(minIndex, s.firstIndex), min(maxIndex, s.lastIndex)

	if hi-lo < uint64(len(s.logs)) {
		for i := lo; ; i++ {
			delete(s.logs, i)
			if i == hi { // checked before i++ so hi == MaxUint64 cannot wrap
				break
			}
		}
	} else {
		// The range is wider than the log (it spans a gap): walk the
		// entries instead of the indexes.
		for i := range s.logs {
			if i >= lo && i <= hi {
				delete(s.logs, i)
			}
		}
	}

	if len(s.logs) == 0 {
		s.firstIndex, s.lastIndex = 0, 0
		return nil
	}
	if lo == s.firstIndex {
		s.firstIndex = s.nextHeldIndex(hi + 1)
	}
	if hi == s.lastIndex {
		s.lastIndex = s.prevHeldIndex(lo - 1)
	}
	return nil
}

// nextHeldIndex returns the smallest held index >= from. The log must be
// non-empty and hold some index >= from. Callers hold s.mu.
func (s *InmemStore) nextHeldIndex(from uint64) uint64 {
	// Usually the very next index is held (head truncation of a contiguous
	// log), so try a short walk before scanning every key.
	if s.lastIndex-from < uint64(len(s.logs)) {
		for i := from; ; i++ {
			if _, ok := s.logs[i]; ok {
				return i
			}
		}
	}
	smallest := s.lastIndex
	for i := range s.logs {
		if i >= from && i < smallest {
			smallest = i
		}
	}
	return smallest
}

// prevHeldIndex returns the largest held index <= from. The log must be
// non-empty and hold some index <= from. Callers hold s.mu.
func (s *InmemStore) prevHeldIndex(from uint64) uint64 {
	if from-s.firstIndex < uint64(len(s.logs)) {
		for i := from; ; i-- {
			if _, ok := s.logs[i]; ok {
				return i
			}
		}
	}
	largest := s.firstIndex
	for i := range s.logs {
		if i <= from && i > largest {
			largest = i
		}
	}
	return largest
}

// Set stores a copy of val under key.
func (s *InmemStore) Set(key []byte, val []byte) error {
	stored := bytes.Clone(val)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[string(key)] = stored
	return nil
}

// Get returns a copy of the value stored under key by Set. A missing key
// gives an error whose text is exactly "not found", which Raft treats as
// "absent".
func (s *InmemStore) Get(key []byte) ([]byte, error) {
	s.mu.RLock()
	val, ok := s.kv[string(key)]
	s.mu.RUnlock()
	if !ok {
		return nil, errStableKeyNotFound
	}
	return bytes.Clone(val), nil
}

// SetUint64 stores val under key, in a namespace separate from Set's.
func (s *InmemStore) SetUint64(key []byte, val uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kvUint64[string(key)] = val
	return nil
}

// GetUint64 returns the value stored under key by SetUint64, or 0 and no
// error when the key is missing.
func (s *InmemStore) GetUint64(key []byte) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.kvUint64[string(key)], nil
}

// InmemCommitTrackingStore is an InmemStore that also implements
// CommitTrackingLogStore. It embeds InmemStore by value, as hashicorp/raft
// does, so code that names the embedded field keeps compiling; use it
// through a pointer.
//
// Being in memory, a staged commit index counts as persisted at once:
// GetCommitIndex returns the last value given to StageCommitIndex.
type InmemCommitTrackingStore struct {
	InmemStore

	// commitIndex is the last value staged; 0 until one is.
	commitIndex atomic.Uint64
}

// NewInmemCommitTrackingStore returns an empty in-memory store that records
// the commit index.
func NewInmemCommitTrackingStore() *InmemCommitTrackingStore {
	return &InmemCommitTrackingStore{
		InmemStore: InmemStore{
			logs:     make(map[uint64]Log),
			kv:       make(map[string][]byte),
			kvUint64: make(map[string]uint64),
		},
	}
}

// StageCommitIndex records idx as the commit index.
func (s *InmemCommitTrackingStore) StageCommitIndex(idx uint64) error {
	s.commitIndex.Store(idx)
	return nil
}

// GetCommitIndex returns the last commit index recorded, or 0 if none was.
func (s *InmemCommitTrackingStore) GetCommitIndex() (uint64, error) {
	return s.commitIndex.Load(), nil
}
