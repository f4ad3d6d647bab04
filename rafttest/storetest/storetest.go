// Package storetest holds the contract tests every raft.LogStore and
// raft.StableStore must pass. A store package runs them from its own tests:
//
//	func TestLogStoreContract(t *testing.T) {
//		storetest.TestLogStore(t, func(t *testing.T) raft.LogStore {
//			s, err := mystore.Open(t.TempDir())
//			require.NoError(t, err)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// open is called once per subtest and must return a new, empty store.
// Stores that implement raft.MonotonicLogStore with IsMonotonic() true must
// refuse gaps; others may accept them but must then report the missing
// indexes as raft.ErrLogNotFound.
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

// LargeEntrySize is the size of the entry TestLogStore stores to check that
// big entries (an application snapshot chunk, say) round-trip intact.
const LargeEntrySize = 64 << 20

// TestLogStore runs the LogStore contract against stores made by open.
func TestLogStore(t *testing.T, open func(t *testing.T) raft.LogStore) {
	t.Run("EmptyStoreHasNoIndexes", func(t *testing.T) {
		s := open(t)
		requireBounds(t, s, 0, 0)
		requireNotFound(t, s, 0, 1, math.MaxUint64)
	})

	t.Run("EntriesRoundTripEveryField", func(t *testing.T) {
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
	})

	t.Run("IndexesFollowAppends", func(t *testing.T) {
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
	})

	t.Run("StoreKeepsNoReferenceToTheCallersBuffers", func(t *testing.T) {
		// Callers may reuse their buffers once StoreLogs returns. (Entries
		// read back are to be treated as read-only: like hashicorp's,
		// InmemStore hands out its own slices.)
		s := open(t)
		in := entry(1, 1)
		require.NoError(t, s.StoreLog(in))
		in.Data[0] ^= 0xff
		in.Extensions[0] ^= 0xff
		requireEntry(t, s, entry(1, 1))
	})

	t.Run("GapsAreRefusedOrReadAsMissing", func(t *testing.T) {
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
	})

	t.Run("DeleteFromHeadKeepsTheRest", func(t *testing.T) {
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
	})

	t.Run("DeleteFromTailThenAppendNewTerm", func(t *testing.T) {
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
	})

	t.Run("DeleteTailTwiceInsideOneBatch", func(t *testing.T) {
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
	})

	t.Run("DeleteEverythingThenStartAnywhere", func(t *testing.T) {
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
	})

	t.Run("DeleteOutsideTheLogChangesNothing", func(t *testing.T) {
		s := open(t)
		storeBatches(t, s, 10, 20, 3)
		require.NoError(t, s.DeleteRange(1, 9))
		require.NoError(t, s.DeleteRange(21, 30))
		require.NoError(t, s.DeleteRange(15, 14)) // empty range
		requireBounds(t, s, 10, 20)
		requireRange(t, s, 10, 20)
	})

	t.Run("LargeEntriesRoundTrip", func(t *testing.T) {
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
	})

	t.Run("ConcurrentReadersSeeIntactEntries", func(t *testing.T) {
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
	})
}

// TestStableStore runs the StableStore contract against stores made by open.
func TestStableStore(t *testing.T, open func(t *testing.T) raft.StableStore) {
	t.Run("MissingKeysReadAsAbsent", func(t *testing.T) {
		// Raft accepts either an error whose text is exactly "not found" or
		// an empty value with no error (API.md §0 item 5).
		s := open(t)
		v, err := s.Get([]byte("CurrentTerm"))
		if err != nil {
			require.Equal(t, "not found", err.Error())
		}
		require.Empty(t, v)
		n, err := s.GetUint64([]byte("LastVoteTerm"))
		if err != nil {
			require.Equal(t, "not found", err.Error())
		}
		require.Zero(t, n)
	})

	t.Run("ValuesRoundTripAndOverwrite", func(t *testing.T) {
		s := open(t)
		cases := []struct {
			key string
			val []byte
		}{
			{"LastVoteCand", []byte("127.0.0.1:7000")},
			{"binary", []byte{0, 1, 0, 0xff}},
			{"large", bytes.Repeat([]byte("v"), 64<<10)},
			{"LastVoteCand", []byte("127.0.0.1:7001")}, // overwrite
		}
		for _, c := range cases {
			require.NoError(t, s.Set([]byte(c.key), c.val))
			got, err := s.Get([]byte(c.key))
			require.NoError(t, err)
			require.True(t, bytes.Equal(c.val, got), "key %q: got %q", c.key, got)
		}
		got, err := s.Get([]byte("binary"))
		require.NoError(t, err)
		require.Equal(t, []byte{0, 1, 0, 0xff}, got, "writing one key must not change another")
	})

	t.Run("Uint64sRoundTrip", func(t *testing.T) {
		s := open(t)
		for _, v := range []uint64{0, 1, 42, math.MaxUint32 + 1, math.MaxUint64, 7} {
			require.NoError(t, s.SetUint64([]byte("CurrentTerm"), v))
			got, err := s.GetUint64([]byte("CurrentTerm"))
			require.NoError(t, err)
			require.Equal(t, v, got)
		}
		require.NoError(t, s.SetUint64([]byte("LastVoteTerm"), 3))
		got, err := s.GetUint64([]byte("CurrentTerm"))
		require.NoError(t, err)
		require.Equal(t, uint64(7), got, "writing one key must not change another")
	})

	t.Run("ValuesDoNotShareMemory", func(t *testing.T) {
		s := open(t)
		val := []byte("node-1")
		require.NoError(t, s.Set([]byte("k"), val))
		val[0] = 'X'
		got, err := s.Get([]byte("k"))
		require.NoError(t, err)
		require.Equal(t, []byte("node-1"), got)
		got[0] = 'Y'
		again, err := s.Get([]byte("k"))
		require.NoError(t, err)
		require.Equal(t, []byte("node-1"), again)
	})
}

// entry returns the canonical test entry for index in term: its content is
// derived from both, so a reader can tell a stale or mixed-up entry.
func entry(index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "data-%d-%d", index, term),
		Extensions: fmt.Appendf(nil, "ext-%d", index),
		AppendedAt: time.Unix(1700000000+int64(index), int64(term)),
	}
}

func entries(from, to, term uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, entry(i, term))
	}
	return logs
}

// storeBatches stores [from, to] in term 1 in batches of size n.
func storeBatches(t *testing.T, s raft.LogStore, from, to, n uint64) {
	t.Helper()
	for i := from; i <= to; i += n {
		require.NoError(t, s.StoreLogs(entries(i, min(i+n-1, to), 1)))
	}
}

func isMonotonic(s raft.LogStore) bool {
	m, ok := s.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func requireBounds(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	gotFirst, err := s.FirstIndex()
	require.NoError(t, err)
	gotLast, err := s.LastIndex()
	require.NoError(t, err)
	require.Equal(t, [2]uint64{first, last}, [2]uint64{gotFirst, gotLast}, "[FirstIndex, LastIndex]")
}

func requireNotFound(t *testing.T, s raft.LogStore, indexes ...uint64) {
	t.Helper()
	for _, i := range indexes {
		var l raft.Log
		err := s.GetLog(i, &l)
		require.True(t, err == raft.ErrLogNotFound, "GetLog(%d): want raft.ErrLogNotFound (by identity), got %v", i, err)
	}
}

// requireNotFoundRange checks that no index in [from, to] holds an entry.
func requireNotFoundRange(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		requireNotFound(t, s, i)
	}
}

// requireRange checks that [from, to] hold the canonical entries of term 1.
func requireRange(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		requireEntry(t, s, entry(i, 1))
	}
}

func requireEntry(t *testing.T, s raft.LogStore, want *raft.Log) {
	t.Helper()
	var got raft.Log
	require.NoError(t, s.GetLog(want.Index, &got), "GetLog(%d)", want.Index)
	require.NoError(t, sameEntry(want, &got))
}

// sameEntry compares entries field by field: byte slices by content (nil and
// empty are the same), times as instants.
func sameEntry(want, got *raft.Log) error {
	switch {
	case want.Index != got.Index, want.Term != got.Term, want.Type != got.Type:
		return fmt.Errorf("want index/term/type %d/%d/%v, got %d/%d/%v", want.Index, want.Term, want.Type, got.Index, got.Term, got.Type)
	case !bytes.Equal(want.Data, got.Data):
		return fmt.Errorf("entry %d: want Data %.64q, got %.64q", want.Index, want.Data, got.Data)
	case !bytes.Equal(want.Extensions, got.Extensions):
		return fmt.Errorf("entry %d: want Extensions %q, got %q", want.Index, want.Extensions, got.Extensions)
	case !want.AppendedAt.Equal(got.AppendedAt):
		return fmt.Errorf("entry %d: want AppendedAt %v, got %v", want.Index, want.AppendedAt, got.AppendedAt)
	}
	return nil
}
