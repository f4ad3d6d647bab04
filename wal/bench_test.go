//go:build go1.25

package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// Benchmarks run on the real file system of b.TempDir(). Compare
// BenchmarkStoreLogs with BenchmarkRawAppendSync of the same sub-benchmark:
// the raw one is the floor set by the disk (one write plus one fdatasync of
// the same bytes), so the ratio is the store's own overhead.

var benchShapes = []struct{ batch, size int }{
	{1, 128}, {16, 128}, {64, 128},
	{1, 4096}, {16, 4096}, {64, 4096},
}

func benchName(batch, size int) string { return fmt.Sprintf("batch=%d/size=%d", batch, size) }

func BenchmarkStoreLogs(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(benchName(sh.batch, sh.size), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{Logger: quietLogger()})
			require.NoError(b, err)
			defer s.Close()
			logs := make([]*raft.Log, sh.batch)
			for i := range logs {
				logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: make([]byte, sh.size)}
			}
			next := uint64(1)
			b.SetBytes(int64(sh.batch * sh.size))
			b.ReportAllocs()
			for b.Loop() {
				for _, l := range logs {
					l.Index = next
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRawAppendSync(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(benchName(sh.batch, sh.size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			require.NoError(b, err)
			defer f.Close()
			// The same number of bytes the store writes for this batch.
			buf := make([]byte, frameHeaderSize+sh.batch*(entryHeaderSize+sh.size))
			b.SetBytes(int64(sh.batch * sh.size))
			for b.Loop() {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := syncData(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen1GiB measures Open (recovery scan and index build) of a store
// holding 1 GiB of log. The log is written once, without syncs, before the
// timer starts; its files are then in the page cache, as after a process
// restart.
func BenchmarkOpen1GiB(b *testing.B) {
	for _, size := range []int{128, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(dir, Options{Sync: SyncNever, CacheSize: -1, Logger: quietLogger()})
			require.NoError(b, err)
			batch := make([]*raft.Log, (4<<20)/size)
			data := make([]byte, size)
			for i := range batch {
				batch[i] = &raft.Log{Term: 1, Data: data}
			}
			next := uint64(1)
			for written := 0; written < 1<<30; written += len(batch) * (size + entryHeaderSize) {
				for _, l := range batch {
					l.Index = next
					next++
				}
				require.NoError(b, s.StoreLogs(batch))
			}
			require.NoError(b, s.Close())
			b.ResetTimer()
			for b.Loop() {
				s, err := Open(dir, Options{Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				last, _ := s.LastIndex()
				require.Equal(b, next-1, last)
				s.Close()
				b.StartTimer()
			}
		})
	}
}
