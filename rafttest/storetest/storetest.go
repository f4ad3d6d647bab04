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
	"fmt"
	"math"
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
	for _, rule := range []struct {
		name string
		run  func(t *testing.T, open func(t *testing.T) raft.LogStore)
	}{
		{"EmptyStoreHasNoIndexes", logStoreEmptyStoreHasNoIndexes},
		{"EntriesRoundTripEveryField", logStoreEntriesRoundTripEveryField},
		{"IndexesFollowAppends", logStoreIndexesFollowAppends},
		{"StoreKeepsNoReferenceToTheCallersBuffers", logStoreStoreKeepsNoReferenceToTheCallersBuffers},
		{"GapsAreRefusedOrReadAsMissing", logStoreGapsAreRefusedOrReadAsMissing},
		{"DeleteFromHeadKeepsTheRest", logStoreDeleteFromHeadKeepsTheRest},
		{"DeleteFromTailThenAppendNewTerm", logStoreDeleteFromTailThenAppendNewTerm},
		{"DeleteTailTwiceInsideOneBatch", logStoreDeleteTailTwiceInsideOneBatch},
		{"DeleteEverythingThenStartAnywhere", logStoreDeleteEverythingThenStartAnywhere},
		{"DeleteOutsideTheLogChangesNothing", logStoreDeleteOutsideTheLogChangesNothing},
		{"LargeEntriesRoundTrip", logStoreLargeEntriesRoundTrip},
		{"ConcurrentReadersSeeIntactEntries", logStoreConcurrentReadersSeeIntactEntries},
	} {
		t.Run(rule.name, func(t *testing.T) { rule.run(t, open) })
	}
}

// TestStableStore runs the StableStore contract against stores made by open.
func TestStableStore(t *testing.T, open func(t *testing.T) raft.StableStore) {
	t.Run("MissingKeysReadAsAbsent", func(t *testing.T) {
		// Raft accepts either an error whose text is exactly "not found" or
		// an empty value with no error (docs/COMPATIBILITY.md §4).
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
