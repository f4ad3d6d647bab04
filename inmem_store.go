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

// inmemChunk is the number of entries in one block of a run. Blocks are
// never moved or grown: appending fills the last block and adds a new one
// when it is full, and deleting the head drops whole blocks, so no entry is
// ever copied after it is stored.
const inmemChunk = 256

// inmemRun is the entries first, first+1, ..., first+count-1, held in
// blocks of inmemChunk entries. The first entry is at position offset of
// blocks[0]. count is never 0, and no two runs share a block.
type inmemRun struct {
	first  uint64
	count  int
	offset int
	blocks [][]Log
}

func newInmemRun(entry Log) inmemRun {
	r := inmemRun{first: entry.Index}
	r.append(entry)
	return r
}

// last is the run's largest index.
func (r *inmemRun) last() uint64 { return r.first + uint64(r.count) - 1 }

// at returns the entry at index, which the run must hold.
func (r *inmemRun) at(index uint64) *Log {
	pos := r.offset + int(index-r.first)
	return &r.blocks[pos/inmemChunk][pos%inmemChunk]
}

// append adds entry after the run's last.
func (r *inmemRun) append(entry Log) {
	pos := r.offset + r.count
	if pos/inmemChunk == len(r.blocks) {
		r.blocks = append(r.blocks, make([]Log, inmemChunk))
	}
	r.blocks[pos/inmemChunk][pos%inmemChunk] = entry
	r.count++
}

// dropHead removes the run's first n entries (fewer than count).
func (r *inmemRun) dropHead(n int) {
	for i := range n {
		*r.at(r.first + uint64(i)) = Log{} // let go of the payloads
	}
	r.first += uint64(n)
	r.count -= n
	r.offset += n
	whole := r.offset / inmemChunk
	clear(r.blocks[:whole])
	r.blocks = r.blocks[whole:]
	r.offset -= whole * inmemChunk
}

// keepHead removes every entry but the run's first n (n > 0).
func (r *inmemRun) keepHead(n int) {
	for index := r.first + uint64(n); index <= r.last(); index++ {
		*r.at(index) = Log{}
	}
	r.count = n
	used := (r.offset+n-1)/inmemChunk + 1
	clear(r.blocks[used:])
	r.blocks = r.blocks[:used]
}

// release lets go of every block and payload of a run being dropped.
func (r *inmemRun) release() {
	for i := range r.blocks {
		clear(r.blocks[i])
		r.blocks[i] = nil
	}
}

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
	*log = *s.runs[j-1].at(index)
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
			*run.at(index) = entry
			return
		case index == last+1:
			run.append(entry)
			s.mergeWithNext(j - 1)
			return
		}
	}
	// The entry starts a run of its own, between runs j-1 and j.
	s.runs = slices.Insert(s.runs, j, newInmemRun(entry))
	s.mergeWithNext(j)
}

// mergeWithNext joins run j and the one after it when no gap is left
// between them. Callers hold s.mu for writing.
func (s *InmemStore) mergeWithNext(j int) {
	if j+1 >= len(s.runs) || s.runs[j].last()+1 != s.runs[j+1].first {
		return
	}
	next := &s.runs[j+1]
	for index := next.first; index <= next.last(); index++ {
		s.runs[j].append(*next.at(index))
	}
	next.release()
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
			run.release()
		case run.first >= minIndex: // its head
			run.dropHead(int(maxIndex - run.first + 1))
			kept = append(kept, run)
		case last <= maxIndex: // its tail
			run.keepHead(int(minIndex - run.first))
			kept = append(kept, run)
		default: // its middle: the upper part gets an array of its own
			upper := newInmemRun(*run.at(maxIndex + 1))
			for index := maxIndex + 2; index <= last; index++ {
				upper.append(*run.at(index))
			}
			run.keepHead(int(minIndex - run.first))
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
