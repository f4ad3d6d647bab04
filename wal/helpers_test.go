//go:build go1.25

package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// testEntry is the entry at index written in generation gen; its bytes say
// both, so a stale or damaged entry cannot pass for the right one.
func testEntry(index, gen uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       gen,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "i%d g%d", index, gen),
		AppendedAt: time.Unix(int64(index), int64(gen)).UTC(),
	}
}

func testBatch(from, to, gen uint64) []*raft.Log {
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, testEntry(i, gen))
	}
	return logs
}

// logModel is the expected log: index -> generation of its entry.
type logModel map[uint64]uint64

func (m logModel) clone() logModel {
	c := logModel{}
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m logModel) store(from, to, gen uint64) {
	for i := from; i <= to; i++ {
		m[i] = gen
	}
}

func (m logModel) deleteRange(from, to uint64) {
	for i := range m {
		if i >= from && i <= to {
			delete(m, i)
		}
	}
}

// readLog returns every entry of s as a model, failing on a damaged entry.
func readLog(t testing.TB, s *Store) logModel {
	t.Helper()
	first, err := s.FirstIndex()
	require.NoError(t, err)
	last, err := s.LastIndex()
	require.NoError(t, err)
	got := logModel{}
	if last == 0 {
		require.Zero(t, first)
		return got
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		require.NoError(t, s.GetLog(i, &l), "GetLog(%d) in [%d, %d]", i, first, last)
		want := testEntry(i, l.Term)
		require.Equal(t, want.Data, l.Data, "entry %d is not intact", i)
		require.True(t, want.AppendedAt.Equal(l.AppendedAt), "entry %d has AppendedAt %v", i, l.AppendedAt)
		got[i] = l.Term
	}
	var l raft.Log
	require.ErrorIs(t, s.GetLog(last+1, &l), raft.ErrLogNotFound)
	return got
}

// requireAppendWorks appends one entry after the log, reads it back, and
// checks it survives a reopen; the store is closed afterwards.
func requireAppendWorks(t testing.TB, dir string, s *Store, opts Options) {
	t.Helper()
	last, err := s.LastIndex()
	require.NoError(t, err)
	next := last + 1
	if last == 0 {
		next = 1000
	}
	require.NoError(t, s.StoreLogs(testBatch(next, next+1, 99)), "the store must accept appends")
	want := readLog(t, s)
	require.NoError(t, s.Close())
	s2, err := Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, want, readLog(t, s2))
	require.NoError(t, s2.Close())
}

// copyDir copies the regular files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	files, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, f.Name()), b, 0o644))
	}
	return dst
}

// segmentFiles lists the segment paths of dir, oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	require.NoError(t, err)
	return paths
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// quietLogger keeps expected recovery warnings out of the test output.
func quietLogger() hclog.Logger { return hclog.NewNullLogger() }
