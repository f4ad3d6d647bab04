//go:build go1.25

package rafttest

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/rafttest/storetest"
	"github.com/quorumkit/raft/wal"
	"github.com/stretchr/testify/require"
)

func logs(first, last uint64) []*raft.Log {
	var out []*raft.Log
	for i := first; i <= last; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	return out
}

func lastIndex(t *testing.T, s Store) uint64 {
	t.Helper()
	last, err := s.LastIndex()
	require.NoError(t, err)
	return last
}

// The wrapper is a LogStore and StableStore like any other while it runs.
func TestCrashableStoreContract(t *testing.T) {
	storetest.TestLogStore(t, func(t *testing.T) raft.LogStore {
		return NewCrashableStore(raft.NewInmemStore(), 0, 1)
	})
}

func TestCrashableStoreKeepsWhatReturnedBeforeTheCrash(t *testing.T) {
	disk := raft.NewInmemStore()
	s := NewCrashableStore(disk, 0, 1)
	require.NoError(t, s.StoreLogs(logs(1, 3)))
	require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 4))
	s.Crash()
	require.True(t, s.Crashed())

	require.ErrorIs(t, s.StoreLogs(logs(4, 5)), ErrCrashed)
	require.ErrorIs(t, s.StoreLog(logs(4, 4)[0]), ErrCrashed)
	require.ErrorIs(t, s.SetUint64([]byte("CurrentTerm"), 5), ErrCrashed)
	require.ErrorIs(t, s.Set([]byte("k"), []byte("v")), ErrCrashed)
	require.ErrorIs(t, s.DeleteRange(1, 3), ErrCrashed)

	require.Equal(t, uint64(3), lastIndex(t, disk), "acknowledged entries survive and later ones never arrive")
	term, err := disk.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	require.Equal(t, uint64(4), term)
}

// A write cut by the crash keeps a prefix of its batch, and across seeds
// every prefix length shows up: nothing, part, and all of it.
func TestCrashableStoreWriteInProgressKeepsAPrefix(t *testing.T) {
	seen := map[uint64]bool{}
	for seed := int64(1); seed <= 40; seed++ {
		synctest.Test(t, func(t *testing.T) {
			disk := raft.NewInmemStore()
			s := NewCrashableStore(disk, time.Millisecond, seed)
			require.NoError(t, s.StoreLogs(logs(1, 2)))
			var wg sync.WaitGroup
			var err error
			wg.Go(func() { err = s.StoreLogs(logs(3, 6)) })
			synctest.Wait() // the write is now waiting for its sync
			s.Crash()
			wg.Wait()
			require.ErrorIs(t, err, ErrCrashed)
			last := lastIndex(t, disk)
			require.GreaterOrEqual(t, last, uint64(2))
			require.LessOrEqual(t, last, uint64(6))
			for i := uint64(1); i <= last; i++ {
				var l raft.Log
				require.NoError(t, disk.GetLog(i, &l), "the kept entries are a prefix, without holes")
			}
			seen[last] = true
		})
	}
	require.Equal(t, map[uint64]bool{2: true, 3: true, 4: true, 5: true, 6: true}, seen)
}

func TestCrashableStoreWithoutCrashWritesAfterTheSyncDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		disk := raft.NewInmemStore()
		s := NewCrashableStore(disk, 5*time.Millisecond, 1)
		start := time.Now()
		require.NoError(t, s.StoreLogs(logs(1, 4)))
		require.Equal(t, 5*time.Millisecond, time.Since(start))
		require.Equal(t, uint64(4), lastIndex(t, disk))
	})
}

func TestCrashableStoreKeepsMonotonicProperty(t *testing.T) {
	plain := NewCrashableStore(raft.NewInmemStore(), 0, 1).asRaftStore()
	_, isMonotonic := plain.(raft.MonotonicLogStore)
	require.False(t, isMonotonic)

	disk, err := wal.Open(t.TempDir(), wal.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, disk.Close()) })
	m, ok := NewCrashableStore(disk, 0, 1).asRaftStore().(raft.MonotonicLogStore)
	require.True(t, ok, "a wal store is monotonic and the wrapper must say so")
	require.True(t, m.IsMonotonic())
}
