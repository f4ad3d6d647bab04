package raft

import (
	"bytes"
	"errors"
	"slices"
	"sort"
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

	// runs holds the log as contiguous runs of entries, sorted by index,
	// with a gap of at least one index between neighbours. A log is
	// usually one run; a follower that installed a snapshot may keep
	// older entries below a gap. A slice per run makes appends and
	// lookups plain array operations, with no hashing or rehashing.
	runs []inmemRun

	// kv holds values written by Set, kvUint64 values written by
	// SetUint64. The two are separate namespaces, as in hashicorp/raft.
	kv       map[string][]byte
	kvUint64 map[string]uint64
}

// inmemRun is the entries first, first+1, ..., first+len(entries)-1.
// entries is never empty, and no two runs share a backing array.
type inmemRun struct {
	first   uint64
	entries []Log

	// array is the start of entries' backing array (length 0, full
	// capacity). Deleting the head of the log moves entries forward in it;
	// append moves them back to the start once a quarter of the array is
	// dead and the result fits, so a log compacted as fast as it grows
	// reuses one array. Each move is paid for by the deletions before it
	// (at most three entries moved per entry deleted).
	array []Log
}

func newInmemRun(first uint64, entries []Log) inmemRun {
	return inmemRun{first: first, entries: entries, array: entries[:0]}
}

// append adds entries after the run's last.
func (r *inmemRun) append(entries ...Log) {
	need := len(r.entries) + len(entries)
	if need > cap(r.entries) {
		full := r.array[:cap(r.array)]
		if dead := cap(r.array) - cap(r.entries); dead < cap(r.array)/4 || need > cap(r.array) {
			// Grow to twice what is needed, so that a log compacted as
			// fast as it grows later finds a quarter of the array dead
			// before it runs out of room, and moves instead of growing.
			full = make([]Log, 2*need)
		}
		n := copy(full, r.entries)
		clear(full[n:]) // stale copies in a reused array, and the payloads they hold
		r.array, r.entries = full[:0], full[:n]
	}
	r.entries = append(r.entries, entries...)
}

// last is the run's largest index.
func (r *inmemRun) last() uint64 { return r.first + uint64(len(r.entries)) - 1 }

// NewInmemStore returns an empty in-memory store.
func NewInmemStore() *InmemStore {
	return &InmemStore{
		kv:       make(map[string][]byte),
		kvUint64: make(map[string]uint64),
	}
}

// FirstIndex returns the smallest index held, or 0 when the log is empty.
func (s *InmemStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.runs) == 0 {
		return 0, nil
	}
	return s.runs[0].first, nil
}

// LastIndex returns the largest index held, or 0 when the log is empty.
func (s *InmemStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.runs) == 0 {
		return 0, nil
	}
	return s.runs[len(s.runs)-1].last(), nil
}

// GetLog fills log with the entry at index, or returns ErrLogNotFound.
func (s *InmemStore) GetLog(index uint64, log *Log) error {
	if log == nil {
		return errNilLog
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	j := s.runAfter(index)
	if j == 0 || index > s.runs[j-1].last() {
		return ErrLogNotFound
	}
	run := &s.runs[j-1]
	*log = run.entries[index-run.first]
	return nil
}

// runAfter returns the position of the first run that starts above index:
// the run that may hold index, if any, is the one before it. Callers hold
// s.mu.
func (s *InmemStore) runAfter(index uint64) int {
	// The newest run is by far the most used: look there first.
	if n := len(s.runs); n == 0 || s.runs[n-1].first <= index {
		return n
	}
	return sort.Search(len(s.runs), func(i int) bool { return s.runs[i].first > index })
}

// StoreLog stores one entry, replacing any entry already at its index.
func (s *InmemStore) StoreLog(log *Log) error {
	return s.StoreLogs([]*Log{log})
}

// StoreLogs stores the entries, replacing any entries already at their
// indexes. Either all entries are stored or, on error, none.
func (s *InmemStore) StoreLogs(logs []*Log) error {
	// Validate and copy the payloads outside the lock so readers are held
	// up only for the slice updates. The payloads of the whole batch share
	// one allocation.
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

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range logs {
		entry := *l
		entry.Data, payloads = carveCopy(payloads, l.Data)
		entry.Extensions, payloads = carveCopy(payloads, l.Extensions)
		s.put(entry)
	}
	return nil
}

// put stores one entry. Callers hold s.mu for writing.
func (s *InmemStore) put(entry Log) {
	index := entry.Index
	j := s.runAfter(index)
	if j > 0 {
		run := &s.runs[j-1]
		switch last := run.last(); {
		case index <= last:
			run.entries[index-run.first] = entry
			return
		case index == last+1:
			run.append(entry)
			s.mergeWithNext(j - 1)
			return
		}
	}
	// The entry starts a run of its own, between runs j-1 and j.
	s.runs = slices.Insert(s.runs, j, newInmemRun(index, []Log{entry}))
	s.mergeWithNext(j)
}

// mergeWithNext joins run j and the one after it when no gap is left
// between them. Callers hold s.mu for writing.
func (s *InmemStore) mergeWithNext(j int) {
	if j+1 >= len(s.runs) || s.runs[j].last()+1 != s.runs[j+1].first {
		return
	}
	s.runs[j].append(s.runs[j+1].entries...)
	s.runs = slices.Delete(s.runs, j+1, j+2)
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
// removed and of runs held, not by the width of the range, so
// DeleteRange(0, math.MaxUint64) is cheap.
func (s *InmemStore) DeleteRange(minIndex, maxIndex uint64) error {
	if minIndex > maxIndex {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	kept := s.runs[:0]
	var split []inmemRun // the upper part of a run cut in its middle
	for _, run := range s.runs {
		last := run.last()
		switch {
		case last < minIndex || run.first > maxIndex: // untouched
			kept = append(kept, run)
		case run.first >= minIndex && last <= maxIndex: // all of it
			clear(run.entries) // let go of the payloads
		case run.first >= minIndex: // its head
			cut := maxIndex - run.first + 1
			clear(run.entries[:cut])
			run.entries = run.entries[cut:]
			run.first = maxIndex + 1
			kept = append(kept, run)
		case last <= maxIndex: // its tail
			keep := minIndex - run.first
			clear(run.entries[keep:])
			run.entries = run.entries[:keep]
			kept = append(kept, run)
		default: // its middle: the upper part gets an array of its own
			upper := newInmemRun(maxIndex+1, slices.Clone(run.entries[maxIndex+1-run.first:]))
			keep := minIndex - run.first
			clear(run.entries[keep:])
			run.entries = run.entries[:keep]
			kept = append(kept, run)
			split = append(split, upper)
		}
	}
	clear(s.runs[len(kept):])
	s.runs = kept
	if len(split) > 0 {
		// At most one run can be cut in its middle.
		j := s.runAfter(split[0].first)
		s.runs = slices.Insert(s.runs, j, split[0])
	}
	return nil
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
