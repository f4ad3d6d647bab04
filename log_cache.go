package raft

import (
	"errors"
	"fmt"
	"sync"
)

// LogCache wraps a LogStore and keeps the most recently stored entries in
// memory, so that replicators reading entries just written by the leader do
// not go to disk.
//
// The cache is a ring of capacity slots: the entry with index i lives in
// slot i % capacity. A slot is filled only after the wrapped store has
// accepted the entry, so the cache never holds an entry the store lacks.
// Cached entries are the caller's *Log values, not copies: a caller must not
// modify an entry after storing it, and must treat the Data and Extensions
// of an entry read back as read-only.
//
// LogCache is safe for concurrent use by one writer and many readers.
type LogCache struct {
	// store is the wrapped store; it holds every entry, the cache only some.
	store LogStore

	// mu guards cache. It is never held while calling the store.
	mu sync.RWMutex

	// cache holds the ring; a nil slot is empty.
	cache []*Log
}

// NewLogCache returns a cache of capacity entries in front of store.
func NewLogCache(capacity int, store LogStore) (*LogCache, error) {
	if capacity <= 0 {
		return nil, errors.New("capacity must be positive")
	}
	if store == nil {
		return nil, errors.New("log cache: nil log store")
	}
	return &LogCache{
		store: store,
		cache: make([]*Log, capacity),
	}, nil
}

// IsMonotonic reports whether the wrapped store is a MonotonicLogStore that
// asks for a log without gaps; false when it does not implement the
// interface.
func (c *LogCache) IsMonotonic() bool {
	if m, ok := c.store.(MonotonicLogStore); ok {
		return m.IsMonotonic()
	}
	return false
}

// GetLog fills log with the entry at idx, from the cache when it holds that
// index and from the wrapped store otherwise.
func (c *LogCache) GetLog(idx uint64, log *Log) error {
	if log == nil {
		return errNilLog
	}
	c.mu.RLock()
	cached := c.cache[idx%uint64(len(c.cache))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == idx {
		*log = *cached
		return nil
	}
	return c.store.GetLog(idx, log)
}

// StoreLog stores one entry in the wrapped store, then caches it.
func (c *LogCache) StoreLog(log *Log) error {
	return c.StoreLogs([]*Log{log})
}

// StoreLogs stores the entries in the wrapped store and, once it has
// accepted them, caches them. A store error is returned wrapped (see
// logCacheStoreError); the cache is then left as it was.
func (c *LogCache) StoreLogs(logs []*Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return &logCacheStoreError{err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		if l == nil {
			continue // the store accepted it; there is nothing to cache
		}
		c.cache[l.Index%uint64(len(c.cache))] = l
	}
	return nil
}

// FirstIndex returns the wrapped store's first index.
func (c *LogCache) FirstIndex() (uint64, error) {
	return c.store.FirstIndex()
}

// LastIndex returns the wrapped store's last index.
func (c *LogCache) LastIndex() (uint64, error) {
	return c.store.LastIndex()
}

// DeleteRange empties the whole cache, then deletes [min, max] from the
// wrapped store. The cache is emptied first so that no reader can be served
// an entry the store has already dropped; emptying everything keeps the
// rule simple and costs only a refill from the store.
func (c *LogCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	clear(c.cache)
	c.mu.Unlock()
	return c.store.DeleteRange(min, max)
}

// logCacheStoreError is a failed write to the wrapped store. Its text is the
// one hashicorp/raft users may match on, and it unwraps to the store's error
// so that errors.Is and errors.As still see the cause.
type logCacheStoreError struct {
	err error
}

func (e *logCacheStoreError) Error() string {
	return fmt.Sprintf("unable to store logs within log store, err: %q", e.err)
}

func (e *logCacheStoreError) Unwrap() error { return e.err }
