//go:build go1.25

package raft

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	_ LogStore          = (*LogCache)(nil)
	_ MonotonicLogStore = (*LogCache)(nil)
)

// cacheTestStore wraps an InmemStore, counts the reads that reach it and can
// be made to fail writes, so tests can tell cache hits from misses.
type cacheTestStore struct {
	*InmemStore
	reads    int
	storeErr error // returned by StoreLogs when set
}

func (s *cacheTestStore) GetLog(index uint64, log *Log) error {
	s.reads++
	return s.InmemStore.GetLog(index, log)
}

func (s *cacheTestStore) StoreLogs(logs []*Log) error {
	if s.storeErr != nil {
		return s.storeErr
	}
	return s.InmemStore.StoreLogs(logs)
}

func (s *cacheTestStore) StoreLog(log *Log) error {
	return s.StoreLogs([]*Log{log})
}

// monotonicTestStore is a LogStore that reports a fixed IsMonotonic.
type monotonicTestStore struct {
	*InmemStore
	monotonic bool
}

func (s *monotonicTestStore) IsMonotonic() bool { return s.monotonic }

func newCacheTest(t *testing.T, capacity int) (*LogCache, *cacheTestStore) {
	t.Helper()
	store := &cacheTestStore{InmemStore: NewInmemStore()}
	cache, err := NewLogCache(capacity, store)
	require.NoError(t, err)
	return cache, store
}

// requireCachedRead reads index through cache and checks the entry and
// whether the read reached the wrapped store.
func requireCachedRead(t *testing.T, cache *LogCache, store *cacheTestStore, index uint64, wantHit bool) {
	t.Helper()
	before := store.reads
	var got Log
	require.NoError(t, cache.GetLog(index, &got), "GetLog(%d)", index)
	require.Equal(t, *storeTestEntry(index), got, "entry at index %d", index)
	if wantHit {
		require.Equal(t, before, store.reads, "GetLog(%d) should be served by the cache", index)
	} else {
		require.Equal(t, before+1, store.reads, "GetLog(%d) should be served by the store", index)
	}
}

func TestNewLogCacheRejectsNonPositiveCapacity(t *testing.T) {
	for _, capacity := range []int{0, -1} {
		cache, err := NewLogCache(capacity, NewInmemStore())
		require.EqualError(t, err, "capacity must be positive", "capacity %d", capacity)
		require.Nil(t, cache)
	}
	_, err := NewLogCache(4, nil)
	require.Error(t, err, "a nil store is refused")
}

func TestLogCacheServesRecentEntriesWithoutReadingTheStore(t *testing.T) {
	cache, store := newCacheTest(t, 4)
	require.NoError(t, cache.StoreLogs(storeTestEntries(1, 3)))
	require.NoError(t, cache.StoreLog(storeTestEntry(4)))
	for i := uint64(1); i <= 4; i++ {
		requireCachedRead(t, cache, store, i, true)
	}
}

func TestLogCacheFallsBackToTheStoreWhenTheSlotHoldsAnotherIndex(t *testing.T) {
	cache, store := newCacheTest(t, 2)
	require.NoError(t, cache.StoreLogs(storeTestEntries(1, 5)))

	// Slots hold 4 and 5; 1..3 were overwritten by later entries.
	for i := uint64(1); i <= 3; i++ {
		requireCachedRead(t, cache, store, i, false)
	}
	requireCachedRead(t, cache, store, 4, true)
	requireCachedRead(t, cache, store, 5, true)

	// A miss does not fill the cache: only writes do.
	requireCachedRead(t, cache, store, 3, false)

	// A missing entry is reported with the store's ErrLogNotFound itself.
	require.Same(t, ErrLogNotFound, cache.GetLog(6, &Log{}))
	require.Same(t, ErrLogNotFound, cache.GetLog(0, &Log{}))
}

func TestLogCacheDeleteRangeClearsTheCache(t *testing.T) {
	cache, store := newCacheTest(t, 8)
	require.NoError(t, cache.StoreLogs(storeTestEntries(1, 6)))
	require.NoError(t, cache.DeleteRange(5, 6))

	// Deleted entries are gone, not served from the cache.
	require.Same(t, ErrLogNotFound, cache.GetLog(5, &Log{}))
	require.Same(t, ErrLogNotFound, cache.GetLog(6, &Log{}))

	// Entries outside the range are still there, read from the store.
	requireCachedRead(t, cache, store, 1, false)
	requireCachedRead(t, cache, store, 4, false)

	first, err := cache.FirstIndex()
	require.NoError(t, err)
	last, err := cache.LastIndex()
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 4}, []uint64{first, last})

	// New writes fill the cache again.
	require.NoError(t, cache.StoreLogs(storeTestEntries(5, 6)))
	requireCachedRead(t, cache, store, 5, true)
	requireCachedRead(t, cache, store, 6, true)
}

func TestLogCacheWrapsStoreErrorsAndCachesNothing(t *testing.T) {
	cache, store := newCacheTest(t, 4)
	diskFull := errors.New("disk full")
	store.storeErr = diskFull

	for name, write := range map[string]func() error{
		"StoreLogs": func() error { return cache.StoreLogs(storeTestEntries(1, 2)) },
		"StoreLog":  func() error { return cache.StoreLog(storeTestEntry(1)) },
	} {
		err := write()
		require.EqualError(t, err, `unable to store logs within log store, err: "disk full"`, name)
		require.ErrorIs(t, err, diskFull, "%s: the store's error stays reachable", name)
	}

	// Nothing reached the store, so nothing may be served from the cache.
	require.Same(t, ErrLogNotFound, cache.GetLog(1, &Log{}))
	require.Same(t, ErrLogNotFound, cache.GetLog(2, &Log{}))
	require.Equal(t, 2, store.reads, "both reads went to the store")
}

func TestLogCacheIsMonotonicForwardsToTheStore(t *testing.T) {
	tests := []struct {
		name  string
		store LogStore
		want  bool
	}{
		{"store without IsMonotonic", NewInmemStore(), false},
		{"monotonic store", &monotonicTestStore{InmemStore: NewInmemStore(), monotonic: true}, true},
		{"store that allows gaps", &monotonicTestStore{InmemStore: NewInmemStore(), monotonic: false}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache, err := NewLogCache(4, tt.store)
			require.NoError(t, err)
			require.Equal(t, tt.want, cache.IsMonotonic())
		})
	}
}

func TestLogCacheForwardsIndexes(t *testing.T) {
	cache, _ := newCacheTest(t, 4)
	requireHeldIndexes(t, cache, nil, 3)
	require.NoError(t, cache.StoreLogs(storeTestEntries(3, 9)))
	requireHeldIndexes(t, cache, indexRange(3, 9), 10)
}

func TestLogCacheGetLogRejectsNilTarget(t *testing.T) {
	cache, _ := newCacheTest(t, 4)
	require.NoError(t, cache.StoreLog(storeTestEntry(1)))
	require.ErrorIs(t, cache.GetLog(1, nil), errNilLog)
}

func BenchmarkLogCacheGetLogHit(b *testing.B) {
	cache, err := NewLogCache(1024, NewInmemStore())
	require.NoError(b, err)
	require.NoError(b, cache.StoreLogs(storeTestEntries(1, 1024)))
	var got Log
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := cache.GetLog(uint64(i%1024)+1, &got); err != nil {
			b.Fatal(err)
		}
	}
}
