//go:build go1.25

package raft

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	_ LogStore               = (*InmemStore)(nil)
	_ StableStore            = (*InmemStore)(nil)
	_ CommitTrackingLogStore = (*InmemCommitTrackingStore)(nil)
	_ StableStore            = (*InmemCommitTrackingStore)(nil)
)

// storeTestEntry is the entry the store tests write at index: its payload is
// derived from the index so a reader can check what it got.
func storeTestEntry(index uint64) *Log {
	return &Log{
		Index:      index,
		Term:       index/10 + 1,
		Type:       LogCommand,
		Data:       []byte(fmt.Sprintf("data-%d", index)),
		Extensions: []byte(fmt.Sprintf("ext-%d", index)),
	}
}

// storeTestEntries returns storeTestEntry for each index in [first, last].
func storeTestEntries(first, last uint64) []*Log {
	var logs []*Log
	for i := first; i <= last; i++ {
		logs = append(logs, storeTestEntry(i))
	}
	return logs
}

// requireHeldIndexes checks FirstIndex, LastIndex and exactly which indexes
// in [0, probeLimit] GetLog finds.
func requireHeldIndexes(t *testing.T, store LogStore, want []uint64, probeLimit uint64) {
	t.Helper()
	first, err := store.FirstIndex()
	require.NoError(t, err)
	last, err := store.LastIndex()
	require.NoError(t, err)
	if len(want) == 0 {
		require.Zero(t, first, "FirstIndex of an empty log")
		require.Zero(t, last, "LastIndex of an empty log")
	} else {
		require.Equal(t, want[0], first, "FirstIndex")
		require.Equal(t, want[len(want)-1], last, "LastIndex")
	}
	var held []uint64
	for i := uint64(0); i <= probeLimit; i++ {
		var got Log
		err := store.GetLog(i, &got)
		if err == ErrLogNotFound {
			continue
		}
		require.NoError(t, err, "GetLog(%d)", i)
		require.Equal(t, *storeTestEntry(i), got, "entry at index %d", i)
		held = append(held, i)
	}
	require.Equal(t, want, held, "indexes held")
}

func indexRange(first, last uint64) []uint64 {
	var out []uint64
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

func TestInmemStoreEmptyLogHasZeroIndexesAndNoEntries(t *testing.T) {
	store := NewInmemStore()
	requireHeldIndexes(t, store, nil, 5)
}

func TestInmemStoreGetLogOfMissingIndexReturnsErrLogNotFoundByIdentity(t *testing.T) {
	store := NewInmemStore()
	require.NoError(t, store.StoreLogs(storeTestEntries(1, 3)))
	for _, index := range []uint64{0, 4, math.MaxUint64} {
		err := store.GetLog(index, &Log{})
		require.Same(t, ErrLogNotFound, err, "GetLog(%d) must return ErrLogNotFound itself", index)
	}
}

func TestInmemStoreStoresAndReturnsEntries(t *testing.T) {
	store := NewInmemStore()
	require.NoError(t, store.StoreLog(storeTestEntry(1)))
	require.NoError(t, store.StoreLogs(storeTestEntries(2, 5)))
	requireHeldIndexes(t, store, indexRange(1, 5), 7)
}

func TestInmemStoreStoreLogsOverwritesExistingIndexes(t *testing.T) {
	store := NewInmemStore()
	require.NoError(t, store.StoreLogs(storeTestEntries(1, 3)))
	replacement := &Log{Index: 2, Term: 7, Type: LogNoop}
	require.NoError(t, store.StoreLog(replacement))

	var got Log
	require.NoError(t, store.GetLog(2, &got))
	require.Equal(t, *replacement, got)
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	require.Equal(t, []uint64{1, 3}, []uint64{first, last})
}

func TestInmemStoreKeepsItsOwnCopyOfStoredEntries(t *testing.T) {
	store := NewInmemStore()
	entry := storeTestEntry(1)
	require.NoError(t, store.StoreLog(entry))

	// The caller reuses its entry and buffers after the store returned.
	entry.Term = 99
	entry.Data[0] = 'X'
	entry.Extensions[0] = 'X'

	var got Log
	require.NoError(t, store.GetLog(1, &got))
	require.Equal(t, *storeTestEntry(1), got)
}

func TestInmemStorePreservesNilAndEmptyPayloadsOfABatch(t *testing.T) {
	store := NewInmemStore()
	batch := []*Log{
		{Index: 1, Term: 1, Data: nil, Extensions: []byte{}},
		{Index: 2, Term: 1, Data: []byte("ab"), Extensions: nil},
		{Index: 3, Term: 1, Data: []byte("cd"), Extensions: []byte("e")},
	}
	require.NoError(t, store.StoreLogs(batch))
	for _, want := range batch {
		var got Log
		require.NoError(t, store.GetLog(want.Index, &got))
		require.Equal(t, *want, got, "entry %d", want.Index)
		require.Equal(t, want.Data == nil, got.Data == nil, "nil Data of entry %d", want.Index)
		require.Equal(t, want.Extensions == nil, got.Extensions == nil, "nil Extensions of entry %d", want.Index)
	}

	// Entries of one batch share a buffer; growing one payload must not
	// spill into the next.
	var second Log
	require.NoError(t, store.GetLog(2, &second))
	_ = append(second.Data, "XX"...)
	var third Log
	require.NoError(t, store.GetLog(3, &third))
	require.Equal(t, "cd", string(third.Data))
}

func TestInmemStoreRejectsInvalidEntriesWithoutStoringAny(t *testing.T) {
	tests := []struct {
		name string
		logs []*Log
		want error
	}{
		{"nil entry", []*Log{storeTestEntry(1), nil}, errNilLog},
		{"index zero", []*Log{storeTestEntry(1), {Index: 0, Term: 1}}, errLogIndexZero},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewInmemStore()
			require.ErrorIs(t, store.StoreLogs(tt.logs), tt.want)
			requireHeldIndexes(t, store, nil, 2)
		})
	}
	require.ErrorIs(t, NewInmemStore().StoreLog(nil), errNilLog)
	require.ErrorIs(t, NewInmemStore().GetLog(1, nil), errNilLog)
}

func TestInmemStoreDeleteRangeKeepsFirstAndLastIndexCorrect(t *testing.T) {
	contiguous := [][2]uint64{{1, 10}}
	withGap := [][2]uint64{{1, 3}, {100, 102}}
	tests := []struct {
		name       string
		stored     [][2]uint64 // inclusive index ranges written before the delete
		deleteFrom uint64
		deleteTo   uint64
		want       []uint64
	}{
		{"head", contiguous, 1, 3, indexRange(4, 10)},
		{"head from below the first index", contiguous, 0, 3, indexRange(4, 10)},
		{"tail", contiguous, 8, 10, indexRange(1, 7)},
		{"tail past the last index", contiguous, 8, math.MaxUint64, indexRange(1, 7)},
		{"middle", contiguous, 4, 6, []uint64{1, 2, 3, 7, 8, 9, 10}},
		{"everything", contiguous, 1, 10, nil},
		{"whole index space", contiguous, 0, math.MaxUint64, nil},
		{"single entry", contiguous, 5, 5, []uint64{1, 2, 3, 4, 6, 7, 8, 9, 10}},
		{"empty range", contiguous, 6, 5, indexRange(1, 10)},
		{"above the log", contiguous, 11, 20, indexRange(1, 10)},
		{"gap: head segment", withGap, 1, 3, []uint64{100, 101, 102}},
		{"gap: tail segment", withGap, 100, 102, []uint64{1, 2, 3}},
		{"gap: head segment and part of the gap", withGap, 0, 50, []uint64{100, 101, 102}},
		{"gap: tail segment and part of the gap", withGap, 50, 200, []uint64{1, 2, 3}},
		{"gap: across the gap", withGap, 2, 101, []uint64{1, 102}},
		{"gap: only the gap", withGap, 4, 99, []uint64{1, 2, 3, 100, 101, 102}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := NewInmemStore()
			for _, r := range tt.stored {
				require.NoError(t, store.StoreLogs(storeTestEntries(r[0], r[1])))
			}
			require.NoError(t, store.DeleteRange(tt.deleteFrom, tt.deleteTo))
			requireHeldIndexes(t, store, tt.want, 110)
		})
	}
}

func TestInmemStoreAcceptsEntriesAgainAfterDeletingEverything(t *testing.T) {
	store := NewInmemStore()
	require.NoError(t, store.StoreLogs(storeTestEntries(1, 5)))
	require.NoError(t, store.DeleteRange(1, 5))
	require.NoError(t, store.StoreLogs(storeTestEntries(8, 9)))
	requireHeldIndexes(t, store, []uint64{8, 9}, 12)
}

func TestInmemStoreDeleteRangeOnLargeLog(t *testing.T) {
	// Compaction of a long log, then truncation of a conflicting tail: each
	// step costs time linear in the entries held.
	const n = 50_000
	store := NewInmemStore()
	require.NoError(t, store.StoreLogs(storeTestEntries(1, n)))
	require.NoError(t, store.DeleteRange(1, n-100))
	require.NoError(t, store.DeleteRange(n-9, math.MaxUint64))
	requireHeldIndexes(t, store, indexRange(n-99, n-10), n+1)
}

func TestInmemStoreStableMissingKeys(t *testing.T) {
	store := NewInmemStore()

	val, err := store.Get([]byte("LastVoteCand"))
	require.EqualError(t, err, "not found", "Raft recognises a missing key by this exact text")
	require.Nil(t, val)

	n, err := store.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestInmemStoreStableValuesRoundTripInSeparateNamespaces(t *testing.T) {
	store := NewInmemStore()
	key := []byte("CurrentTerm")
	value := []byte("127.0.0.1:7000")

	require.NoError(t, store.Set(key, value))
	require.NoError(t, store.SetUint64(key, 42))
	value[0] = 'X' // the store keeps its own copy

	got, err := store.Get(key)
	require.NoError(t, err)
	require.Equal(t, []byte("127.0.0.1:7000"), got)
	got[0] = 'Y' // and hands out copies
	again, err := store.Get(key)
	require.NoError(t, err)
	require.Equal(t, []byte("127.0.0.1:7000"), again)

	n, err := store.GetUint64(key)
	require.NoError(t, err)
	require.Equal(t, uint64(42), n)

	require.NoError(t, store.SetUint64(key, 43))
	n, err = store.GetUint64(key)
	require.NoError(t, err)
	require.Equal(t, uint64(43), n, "SetUint64 overwrites")
}

func TestInmemStoreConcurrentReadersSeeOnlyWholeEntries(t *testing.T) {
	// One writer appends and compacts the head, as Raft does; readers run
	// alongside and must only ever see complete, correct entries or
	// ErrLogNotFound. Run with -race to check the locking.
	const (
		total   = 5_000
		batch   = 50
		keep    = 500
		readers = 4
	)
	store := NewInmemStore()
	writerDone := make(chan struct{})

	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- storeTestReadUntilClosed(store, writerDone)
		}()
	}

	for first := uint64(1); first <= total; first += batch {
		if err := store.StoreLogs(storeTestEntries(first, first+batch-1)); err != nil {
			close(writerDone)
			t.Fatalf("StoreLogs: %v", err)
		}
		if last := first + batch - 1; last > keep {
			if err := store.DeleteRange(0, last-keep); err != nil {
				close(writerDone)
				t.Fatalf("DeleteRange: %v", err)
			}
		}
		_ = store.SetUint64([]byte("CurrentTerm"), first)
	}
	close(writerDone)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireHeldIndexes(t, store, indexRange(total-keep+1, total), total+1)
}

// storeTestReadUntilClosed reads entries between FirstIndex and LastIndex
// until done is closed and returns the first inconsistency it sees.
func storeTestReadUntilClosed(store *InmemStore, done <-chan struct{}) error {
	for {
		select {
		case <-done:
			return nil
		default:
		}
		first, _ := store.FirstIndex()
		last, _ := store.LastIndex()
		if first > last {
			return fmt.Errorf("FirstIndex %d > LastIndex %d", first, last)
		}
		for _, index := range []uint64{first, (first + last) / 2, last} {
			var got Log
			err := store.GetLog(index, &got)
			if err == ErrLogNotFound {
				continue // compacted between our reads
			}
			if err != nil {
				return fmt.Errorf("GetLog(%d): %w", index, err)
			}
			if want := storeTestEntry(index); got.Index != index || string(got.Data) != string(want.Data) {
				return fmt.Errorf("GetLog(%d) returned entry %d with data %q", index, got.Index, got.Data)
			}
		}
		if _, err := store.GetUint64([]byte("CurrentTerm")); err != nil {
			return err
		}
	}
}

func TestInmemCommitTrackingStoreRecordsCommitIndex(t *testing.T) {
	store := NewInmemCommitTrackingStore()

	idx, err := store.GetCommitIndex()
	require.NoError(t, err)
	require.Zero(t, idx, "no commit index staged yet")

	for _, staged := range []uint64{5, 9} {
		require.NoError(t, store.StageCommitIndex(staged))
		idx, err = store.GetCommitIndex()
		require.NoError(t, err)
		require.Equal(t, staged, idx)
	}

	// It is a complete InmemStore as well.
	require.NoError(t, store.StoreLogs(storeTestEntries(1, 3)))
	requireHeldIndexes(t, store, indexRange(1, 3), 4)
	_, err = store.Get([]byte("missing"))
	require.EqualError(t, err, "not found")
}

// TestInmemStoreMatchesAMapModel runs random appends, overwrites, writes
// across gaps and deletions of heads, tails, middles and everything against
// a plain map of index to entry, and checks after every step that the
// store holds exactly what the map holds.
func TestInmemStoreMatchesAMapModel(t *testing.T) {
	const span = 120 // indexes 1..span, so gaps, joins and splits are frequent
	rng := rand.New(rand.NewPCG(11, 12))
	for round := range 20 {
		store := NewInmemStore()
		model := map[uint64]bool{}
		for step := range 60 {
			from := rng.Uint64N(span) + 1
			to := min(from+rng.Uint64N(20), span)
			var what string
			if rng.IntN(3) == 0 {
				lo, hi := from, to
				switch rng.IntN(6) {
				case 0:
					lo = 0
				case 1:
					hi = math.MaxUint64
				}
				require.NoError(t, store.DeleteRange(lo, hi))
				for i := range model {
					if i >= lo && i <= hi {
						delete(model, i)
					}
				}
				what = fmt.Sprintf("DeleteRange(%d, %d)", lo, hi)
			} else {
				require.NoError(t, store.StoreLogs(storeTestEntries(from, to)))
				for i := from; i <= to; i++ {
					model[i] = true
				}
				what = fmt.Sprintf("StoreLogs(%d..%d)", from, to)
			}
			want := slices.Sorted(maps.Keys(model))
			t.Run(fmt.Sprintf("round %d step %d %s", round, step, what), func(t *testing.T) {
				requireHeldIndexes(t, store, want, span+1)
			})
		}
	}
}

// TestInmemStoreTruncatedTailAcceptsNewEntries: after a conflict removes
// the tail, new entries at those indexes replace it and the entries below
// are untouched.
func TestInmemStoreTruncatedTailAcceptsNewEntries(t *testing.T) {
	store := NewInmemStore()
	require.NoError(t, store.StoreLogs(storeTestEntries(1, 10)))
	require.NoError(t, store.DeleteRange(6, 10))
	requireHeldIndexes(t, store, indexRange(1, 5), 11)
	replacement := &Log{Index: 6, Term: 99, Data: []byte("new")}
	require.NoError(t, store.StoreLogs([]*Log{replacement}))
	var got Log
	require.NoError(t, store.GetLog(6, &got))
	require.Equal(t, *replacement, got)
	require.NoError(t, store.GetLog(5, &got))
	require.Equal(t, *storeTestEntry(5), got)
	require.ErrorIs(t, store.GetLog(7, &got), ErrLogNotFound)
	last, err := store.LastIndex()
	require.NoError(t, err)
	require.Equal(t, uint64(6), last)
}

func BenchmarkInmemStoreGetLog(b *testing.B) {
	store := NewInmemStore()
	require.NoError(b, store.StoreLogs(storeTestEntries(1, 1024)))
	var got Log
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := store.GetLog(uint64(i%1024)+1, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInmemStoreStoreLogsBatch64(b *testing.B) {
	store := NewInmemStore()
	batch := storeTestEntries(1, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := store.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInmemStoreCompactHead(b *testing.B) {
	// Append a batch, then drop the same number of entries from the head:
	// the steady state of a leader with TrailingLogs entries kept.
	const keep, batchSize = 10_240, 64
	store := NewInmemStore()
	require.NoError(b, store.StoreLogs(storeTestEntries(1, keep)))
	next := uint64(keep + 1)
	batch := storeTestEntries(1, batchSize)
	b.ReportAllocs()
	for b.Loop() {
		for i, l := range batch {
			l.Index = next + uint64(i)
		}
		if err := store.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
		next += batchSize
		if err := store.DeleteRange(0, next-keep-1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	require.Equal(b, uint64(keep), last-first+1)
}

func BenchmarkInmemStoreAppendBatch64(b *testing.B) {
	// Ever-growing log, as in a benchmark run without compaction.
	store := NewInmemStore()
	batch := storeTestEntries(1, 64)
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		for i, l := range batch {
			l.Index = next + uint64(i)
		}
		if err := store.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
		next += uint64(len(batch))
	}
}
