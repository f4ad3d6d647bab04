package raft

import "sync"

// logTail keeps the newest entries of the log in memory. The leader reads
// from it to replicate entries whose disk write may still be in progress
// (the leader writes and replicates in parallel), and every node reads from
// it to hand committed entries to the FSM without touching the disk.
//
// The tail is contiguous: entries[i].Index == first+i. Appending an entry
// that does not follow the last one starts the tail afresh.
type logTail struct {
	mu      sync.RWMutex
	entries []*Log
	// keep is how many entries to retain; the slice may hold up to twice
	// as many before old ones are dropped in one copy.
	keep int
}

func newLogTail(keep int) *logTail {
	return &logTail{keep: keep}
}

// append adds entries, which must be in index order.
func (t *logTail) append(entries []*Log) {
	if len(entries) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.entries); n > 0 && t.entries[n-1].Index+1 != entries[0].Index {
		t.entries = nil
	}
	t.entries = append(t.entries, entries...)
	if len(t.entries) > 2*t.keep {
		kept := make([]*Log, t.keep, 2*t.keep)
		copy(kept, t.entries[len(t.entries)-t.keep:])
		t.entries = kept
	}
}

// get returns the entry at index if the tail holds it.
func (t *logTail) get(index uint64) (*Log, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.entries) == 0 {
		return nil, false
	}
	first := t.entries[0].Index
	if index < first || index >= first+uint64(len(t.entries)) {
		return nil, false
	}
	return t.entries[index-first], true
}

// truncateAfter drops every entry above index.
func (t *logTail) truncateAfter(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		return
	}
	first := t.entries[0].Index
	switch {
	case index < first:
		t.entries = nil
	case index-first+1 < uint64(len(t.entries)):
		clear(t.entries[index-first+1:])
		t.entries = t.entries[:index-first+1]
	}
}

// dropThrough forgets every entry up to index, so entries compacted from the
// log store are not served from memory either (a follower that needs them
// gets the snapshot).
func (t *logTail) dropThrough(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		return
	}
	first := t.entries[0].Index
	switch {
	case index < first:
	case index-first+1 >= uint64(len(t.entries)):
		t.entries = nil
	default:
		n := index - first + 1
		clear(t.entries[:n])
		t.entries = t.entries[n:]
	}
}

// reset empties the tail.
func (t *logTail) reset() {
	t.mu.Lock()
	t.entries = nil
	t.mu.Unlock()
}
