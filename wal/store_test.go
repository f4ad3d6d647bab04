//go:build go1.25

package wal

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// Real-disk tests: files in t.TempDir(), real syncs.

func TestFailedSyncIsFatalForEveryLaterWrite(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{Logger: quietLogger()})
	require.NoError(t, s.StoreLogs(testBatch(1, 3, 1)))
	errIO := errors.New("injected EIO")
	realSync := s.sync
	s.sync = func(*os.File, bool) error { return errIO }
	require.ErrorIs(t, s.StoreLogs(testBatch(4, 5, 1)), errIO)
	s.sync = realSync // the disk "recovers": the store must not
	for name, write := range map[string]func() error{
		"StoreLogs":   func() error { return s.StoreLogs(testBatch(4, 5, 1)) },
		"StoreLog":    func() error { return s.StoreLog(testEntry(4, 1)) },
		"DeleteRange": func() error { return s.DeleteRange(1, 1) },
		"Set":         func() error { return s.Set([]byte("k"), []byte("v")) },
		"SetUint64":   func() error { return s.SetUint64([]byte("k"), 1) },
	} {
		err := write()
		require.ErrorIs(t, err, errIO, "%s after a failed sync", name)
		require.ErrorContains(t, err, "reopen", name)
	}
	// Reads of what was durable still work, and the unsynced batch was
	// never made visible.
	require.Equal(t, logModel{1: 1, 2: 1, 3: 1}, readLog(t, s))
	require.NoError(t, s.Close())

	s2 := openTestStore(t, dir, Options{Logger: quietLogger()})
	got := readLog(t, s2)
	require.Subset(t, keys(got), []uint64{1, 2, 3})
	requireAppendWorks(t, dir, s2, Options{Logger: quietLogger()})
}

func TestFailedMetadataSyncIsFatal(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{Logger: quietLogger()})
	errIO := errors.New("injected EIO")
	s.sync = func(*os.File, bool) error { return errIO }
	require.ErrorIs(t, s.SetUint64([]byte("CurrentTerm"), 5), errIO)
	_, err := s.GetUint64([]byte("CurrentTerm"))
	require.ErrorIs(t, err, ErrKeyNotFound, "a value whose write failed must not be reported")
	s.sync = func(*os.File, bool) error { return nil }
	require.ErrorIs(t, s.StoreLogs(testBatch(1, 1, 1)), errIO)
}

func keys(m logModel) []uint64 {
	var ks []uint64
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestCallsAfterCloseReturnErrClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, s.StoreLogs(testBatch(1, 2, 1)))
	require.NoError(t, s.Close())
	var l raft.Log
	_, err1 := s.FirstIndex()
	_, err2 := s.LastIndex()
	_, err3 := s.Get([]byte("k"))
	_, err4 := s.GetUint64([]byte("k"))
	for i, err := range []error{
		err1, err2, err3, err4,
		s.GetLog(1, &l),
		s.StoreLogs(testBatch(3, 3, 1)),
		s.DeleteRange(1, 1),
		s.Set([]byte("k"), nil),
		s.SetUint64([]byte("k"), 1),
		s.Close(),
	} {
		require.ErrorIs(t, err, ErrClosed, "call %d", i)
	}
}

func TestBadInputIsRefusedWithoutChangingTheStore(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{Logger: quietLogger()})
	require.NoError(t, s.StoreLogs(testBatch(1, 10, 1)))
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"nil entry", func() error { return s.StoreLogs([]*raft.Log{testEntry(11, 1), nil}) }, "nil"},
		{"index 0", func() error { return s.StoreLog(&raft.Log{}) }, "index 0"},
		{"gap inside a batch", func() error { return s.StoreLogs([]*raft.Log{testEntry(11, 1), testEntry(13, 1)}) }, "contiguous"},
		{"gap after the log", func() error { return s.StoreLogs(testBatch(12, 13, 1)) }, "ends at 10"},
		{"overwrite", func() error { return s.StoreLogs(testBatch(10, 11, 1)) }, "ends at 10"},
		{"going backwards", func() error { return s.StoreLog(testEntry(3, 1)) }, "ends at 10"},
		{"hole in the middle", func() error { return s.DeleteRange(4, 6) }, "hole"},
		{"nil out", func() error { return s.GetLog(1, nil) }, "nil"},
		{"empty key", func() error { return s.Set(nil, []byte("v")) }, "empty key"},
		{"oversized key", func() error { return s.Set(make([]byte, MaxKeySize+1), nil) }, "limits"},
		{"oversized value", func() error { return s.Set([]byte("k"), make([]byte, MaxValueSize+1)) }, "limits"},
		{"uint64 of another length", func() error {
			require.NoError(t, s.Set([]byte("short"), []byte{1, 2}))
			_, err := s.GetUint64([]byte("short"))
			return err
		}, "not 8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorContains(t, c.call(), c.want)
			require.Equal(t, testModel(1, 10, 1), readLog(t, s))
		})
	}
	require.NoError(t, s.StoreLogs(testBatch(11, 11, 1)), "refused input must not break the store")
}

func testModel(from, to, gen uint64) logModel {
	m := logModel{}
	m.store(from, to, gen)
	return m
}

func TestMissingStableKeyErrorTextIsExactlyNotFound(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{Logger: quietLogger()})
	_, err := s.Get([]byte("CurrentTerm"))
	require.EqualError(t, err, "not found")
	_, err = s.GetUint64([]byte("CurrentTerm"))
	require.EqualError(t, err, "not found")
}

func TestRecentEntriesAreReadFromMemory(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{Logger: quietLogger(), CacheSize: 4 << 10})
	for i := uint64(1); i <= 200; i += 4 {
		require.NoError(t, s.StoreLogs(testBatch(i, i+3, 1)))
	}
	// Take the segment file away from the store: from now on only reads
	// served from memory can succeed.
	require.NoError(t, s.segments[0].f.Close())
	var l raft.Log
	require.NoError(t, s.GetLog(200, &l), "the newest entry must come from memory")
	require.NoError(t, sameLog(testEntry(200, 1), &l))
	require.NoError(t, s.GetLog(150, &l), "entries within the cache budget must come from memory")
	err := s.GetLog(1, &l)
	require.Error(t, err, "the oldest entry is beyond the 4 KiB cache and must be read from disk")
	require.True(t, strings.Contains(err.Error(), "closed"), err.Error())
}

func TestEntriesFromDiskAreVerified(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{Logger: quietLogger(), CacheSize: -1})
	require.NoError(t, s.StoreLogs(testBatch(1, 3, 1)))
	require.NoError(t, s.StoreLogs(testBatch(4, 6, 1)))
	// Damage entry 2 behind the open store's back.
	loc := s.segments[0].locs[1]
	f, err := os.OpenFile(s.segments[0].path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{'X'}, int64(loc.off+loc.n-1))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	var l raft.Log
	require.ErrorContains(t, s.GetLog(2, &l), "checksum")
	require.NoError(t, s.GetLog(1, &l))
}

func sameLog(want, got *raft.Log) error {
	if want.Index != got.Index || want.Term != got.Term || string(want.Data) != string(got.Data) || !want.AppendedAt.Equal(got.AppendedAt) {
		return errors.New("entries differ")
	}
	return nil
}

func TestSecondOpenOfTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	openTestStore(t, dir, Options{Logger: quietLogger()})
	_, err := Open(dir, Options{Logger: quietLogger()})
	require.ErrorContains(t, err, "locked")
}

func TestInvalidOptionsAreRefused(t *testing.T) {
	for _, o := range []Options{{SegmentSize: -1}, {SegmentSize: MaxSegmentSize + 1}, {Sync: SyncMode(9)}} {
		_, err := Open(t.TempDir(), o)
		require.Error(t, err, "%+v", o)
	}
}
