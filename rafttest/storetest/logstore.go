package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// The rules of the LogStore contract, one function each, in the order
// TestLogStore runs them. open makes a new, empty store per call.

func logStoreEmptyStoreHasNoIndexes(t *testing.T, open func(t *testing.T) raft.LogStore) {
	s := open(t)
	requireBounds(t, s, 0, 0)
	requireNotFound(t, s, 0, 1, math.MaxUint64)
}

func logStoreEntriesRoundTripEveryField(t *testing.T, open func(t *testing.T) raft.LogStore) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
	cases := []raft.Log{
		{Term: 1, Type: raft.LogCommand, Data: []byte("command")},
		{Term: 1, Type: raft.LogNoop},
		{Term: 2, Type: raft.LogConfiguration, Data: []byte{0, 1, 2, 0}, AppendedAt: at},
		{Term: 2, Type: raft.LogBarrier, Extensions: []byte("ext only")},
		{Term: 3, Type: raft.LogCommand, Data: []byte("both"), Extensions: []byte{0xff}, AppendedAt: at.Add(-time.Hour * 24 * 365 * 60)},
		{Term: math.MaxUint64, Type: raft.LogType(200), Data: bytes.Repeat([]byte{0xa5}, 4096)},
		{Term: math.MaxUint64, Type: raft.LogRemovePeerDeprecated, AppendedAt: time.Unix(0, 1)},
	}
	s := open(t)
	batch := make([]*raft.Log, len(cases))
	for i := range cases {
		cases[i].Index = uint64(i + 1)
		batch[i] = &cases[i]
	}
	require.NoError(t, s.StoreLog(batch[0]))
	require.NoError(t, s.StoreLogs(batch[1:]))
	requireBounds(t, s, 1, uint64(len(cases)))
	for _, want := range cases {
		requireEntry(t, s, &want)
	}
}

func logStoreIndexesFollowAppends(t *testing.T, open func(t *testing.T) raft.LogStore) {
	for _, start := range []uint64{1, 1000} {
		s := open(t)
		require.NoError(t, s.StoreLog(entry(start, 1)))
		requireBounds(t, s, start, start)
		require.NoError(t, s.StoreLogs(entries(start+1, start+10, 1)))
		requireBounds(t, s, start, start+10)
		require.NoError(t, s.StoreLogs(entries(start+11, start+11, 2)))
		requireBounds(t, s, start, start+11)
		requireRange(t, s, start, start+10)
		requireEntry(t, s, entry(start+11, 2))
		requireNotFound(t, s, start-1, start+12)
	}
}

func logStoreStoreKeepsNoReferenceToTheCallersBuffers(t *testing.T, open func(t *testing.T) raft.LogStore) {
	// Callers may reuse their buffers once StoreLogs returns. (Entries
	// read back are to be treated as read-only: like hashicorp's,
	// InmemStore hands out its own slices.)
	s := open(t)
	in := entry(1, 1)
	require.NoError(t, s.StoreLog(in))
	in.Data[0] ^= 0xff
	in.Extensions[0] ^= 0xff
	requireEntry(t, s, entry(1, 1))
}

func logStoreGapsAreRefusedOrReadAsMissing(t *testing.T, open func(t *testing.T) raft.LogStore) {
	s := open(t)
	require.NoError(t, s.StoreLogs(entries(1, 5, 1)))
	gapErr := s.StoreLogs(entries(8, 9, 1))
	inBatchGap := []*raft.Log{entry(6, 1), entry(8, 1)}
	if isMonotonic(s) {
		require.Error(t, gapErr, "a monotonic store must refuse a batch that leaves a gap")
		require.Error(t, s.StoreLogs(inBatchGap), "a monotonic store must refuse a batch with a gap inside")
		require.Error(t, s.StoreLogs(entries(5, 6, 2)), "a monotonic store must refuse a batch that overlaps the log")
		requireBounds(t, s, 1, 5)
		requireRange(t, s, 1, 5)
		requireNotFoundRange(t, s, 6, 8)
		require.NoError(t, s.StoreLogs(entries(6, 7, 1)), "the log must accept appends after refusing a gap")
		requireBounds(t, s, 1, 7)
		requireRange(t, s, 1, 7)
		return
	}
	require.NoError(t, gapErr)
	requireBounds(t, s, 1, 9)
	requireNotFoundRange(t, s, 6, 7)
	requireRange(t, s, 8, 9)
}

func logStoreDeleteFromHeadKeepsTheRest(t *testing.T, open func(t *testing.T) raft.LogStore) {
	s := open(t)
	storeBatches(t, s, 1, 100, 7)
	require.NoError(t, s.DeleteRange(1, 40))
	requireBounds(t, s, 41, 100)
	requireNotFoundRange(t, s, 1, 40)
	requireRange(t, s, 41, 100)
	require.NoError(t, s.DeleteRange(41, 41))
	requireBounds(t, s, 42, 100)
	require.NoError(t, s.StoreLogs(entries(101, 110, 1)))
	requireBounds(t, s, 42, 110)
	requireRange(t, s, 42, 110)
}

func logStoreDeleteFromTailThenAppendNewTerm(t *testing.T, open func(t *testing.T) raft.LogStore) {
	// Conflict resolution: a follower drops its uncommitted suffix and
	// takes the leader's entries of a later term at the same indexes.
	for _, from := range []uint64{71, 65, 61, 2} { // batch boundary, inside a batch, ...
		t.Run(fmt.Sprintf("from=%d", from), func(t *testing.T) {
			s := open(t)
			storeBatches(t, s, 1, 100, 10)
			require.NoError(t, s.DeleteRange(from, 100))
			requireBounds(t, s, 1, from-1)
			requireNotFoundRange(t, s, from, 100)
			requireRange(t, s, 1, from-1)
			require.NoError(t, s.StoreLogs(entries(from, from+4, 9)))
			requireBounds(t, s, 1, from+4)
			requireRange(t, s, 1, from-1)
			for i := from; i <= from+4; i++ {
				requireEntry(t, s, entry(i, 9))
			}
		})
	}
}

func logStoreDeleteTailTwiceInsideOneBatch(t *testing.T, open func(t *testing.T) raft.LogStore) {
	s := open(t)
	storeBatches(t, s, 1, 50, 50)
	require.NoError(t, s.DeleteRange(40, 50))
	require.NoError(t, s.StoreLogs(entries(40, 45, 2)))
	require.NoError(t, s.DeleteRange(30, 45))
	requireBounds(t, s, 1, 29)
	requireRange(t, s, 1, 29)
	require.NoError(t, s.StoreLogs(entries(30, 31, 3)))
	requireEntry(t, s, entry(30, 3))
	requireEntry(t, s, entry(31, 3))
}

func logStoreDeleteEverythingThenStartAnywhere(t *testing.T, open func(t *testing.T) raft.LogStore) {
	// After installing a snapshot Raft deletes the whole log and later
	// appends right after the snapshot's index.
	s := open(t)
	storeBatches(t, s, 1, 30, 4)
	require.NoError(t, s.DeleteRange(1, 30))
	requireBounds(t, s, 0, 0)
	requireNotFoundRange(t, s, 1, 30)
	require.NoError(t, s.StoreLogs(entries(500, 505, 1)))
	requireBounds(t, s, 500, 505)
	requireRange(t, s, 500, 505)
	require.NoError(t, s.DeleteRange(0, math.MaxUint64))
	requireBounds(t, s, 0, 0)
	require.NoError(t, s.StoreLogs(entries(7, 8, 4)))
	requireBounds(t, s, 7, 8)
}

func logStoreDeleteOutsideTheLogChangesNothing(t *testing.T, open func(t *testing.T) raft.LogStore) {
	s := open(t)
	storeBatches(t, s, 10, 20, 3)
	require.NoError(t, s.DeleteRange(1, 9))
	require.NoError(t, s.DeleteRange(21, 30))
	require.NoError(t, s.DeleteRange(15, 14)) // empty range
	requireBounds(t, s, 10, 20)
	requireRange(t, s, 10, 20)
}

func logStoreLargeEntriesRoundTrip(t *testing.T, open func(t *testing.T) raft.LogStore) {
	s := open(t)
	big := &raft.Log{Index: 2, Term: 1, Type: raft.LogCommand, Data: make([]byte, LargeEntrySize)}
	for i := range big.Data {
		big.Data[i] = byte(i*7 + i>>12)
	}
	require.NoError(t, s.StoreLogs([]*raft.Log{entry(1, 1), big, entry(3, 1)}))
	require.NoError(t, s.StoreLog(entry(4, 1)))
	var got raft.Log
	require.NoError(t, s.GetLog(2, &got))
	require.Equal(t, uint64(2), got.Index)
	require.Len(t, got.Data, LargeEntrySize)
	require.True(t, bytes.Equal(big.Data, got.Data), "the 64 MiB entry came back with different bytes")
	requireEntry(t, s, entry(1, 1))
	requireEntry(t, s, entry(3, 1))
	requireEntry(t, s, entry(4, 1))
}

func logStoreConcurrentReadersSeeIntactEntries(t *testing.T, open func(t *testing.T) raft.LogStore) {
	// One writer appends and compacts, as Raft's log writer does, while
	// readers (replicators) read whatever is in range. Every read must
	// return the exact entry or ErrLogNotFound for one just compacted.
	s := open(t)
	const total, readers = 1000, 3
	var done atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(r); !done.Load(); n++ {
				first, err1 := s.FirstIndex()
				last, err2 := s.LastIndex()
				if err := errors.Join(err1, err2); err != nil {
					errs <- err
					return
				}
				if last == 0 {
					continue
				}
				idx := first + n*7919%(last-first+1)
				var got raft.Log
				err := s.GetLog(idx, &got)
				if errors.Is(err, raft.ErrLogNotFound) {
					continue // compacted between FirstIndex and GetLog
				}
				if err == nil {
					err = sameEntry(entry(idx, 1), &got)
				}
				if err != nil {
					errs <- fmt.Errorf("reading index %d in [%d, %d]: %w", idx, first, last, err)
					return
				}
				reads.Add(1)
				runtime.Gosched() // leave the CPU to the writer now and then
			}
		}()
	}
	var next uint64 = 1
	for batch := uint64(1); next <= total; batch = batch%13 + 1 {
		require.NoError(t, s.StoreLogs(entries(next, next+batch-1, 1)))
		next += batch
		if next > 300 && next%250 < 13 {
			first, err := s.FirstIndex()
			require.NoError(t, err)
			require.NoError(t, s.DeleteRange(first, next-200))
			// Let the readers catch up before writing on, so that a
			// fast store cannot finish before any reader ran.
			for seen := reads.Load(); reads.Load() < seen+readers && len(errs) == 0; {
				runtime.Gosched()
			}
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Positive(t, reads.Load(), "readers never read an entry")
	last, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, next-1, last)
}
