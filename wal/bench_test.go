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
			benchStoreLogs(b, sh.batch, sh.size, Options{Logger: quietLogger()})
		})
	}
}

// BenchmarkStoreLogsNoSync is BenchmarkStoreLogs without the fdatasync:
// the CPU the store spends per batch, which is what other nodes and the
// clients lose on a busy machine.
func BenchmarkStoreLogsNoSync(b *testing.B) {
	for _, sh := range benchShapes {
		b.Run(benchName(sh.batch, sh.size), func(b *testing.B) {
			benchStoreLogs(b, sh.batch, sh.size, Options{Logger: quietLogger(), Sync: SyncNever})
		})
	}
}

func benchStoreLogs(b *testing.B, batch, size int, opts Options) {
	s, err := Open(b.TempDir(), opts)
	require.NoError(b, err)
	defer s.Close()
	logs := make([]*raft.Log, batch)
	for i := range logs {
		logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: make([]byte, size)}
	}
	next := uint64(1)
	b.SetBytes(int64(batch * size))
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

// BenchmarkRawSyncFileGrowth compares the floor of one small append plus
// fdatasync on a file that grows with each write, on space reserved with
// fallocate, and on space already written with zeros: the cost an
// fdatasync pays to make a new file size or newly written extents durable.
func BenchmarkRawSyncFileGrowth(b *testing.B) {
	const size = frameHeaderSize + 16*(entryHeaderSize+128)
	for _, mode := range []string{"grow", "fallocate", "zeroed"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			require.NoError(b, err)
			defer f.Close()
			const space = 64 << 20
			switch mode {
			case "fallocate":
				require.NoError(b, allocate(f, 0, space))
			case "zeroed":
				zeros := make([]byte, 1<<20)
				for off := int64(0); off < space; off += int64(len(zeros)) {
					_, err := f.WriteAt(zeros, off)
					require.NoError(b, err)
				}
			}
			require.NoError(b, f.Sync())
			buf := make([]byte, size)
			var off int64
			b.SetBytes(size)
			for b.Loop() {
				if off+size > space {
					off = 0
				}
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				off += size
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

// BenchmarkEntryCacheAddWhenFull caches 64-entry batches of 128-byte
// entries in a full 32 MiB arena, so every batch also
// evicts: the cost must not grow with the entries held.
func BenchmarkEntryCacheAddWhenFull(b *testing.B) {
	c := entryCache{limit: 32 << 20}
	const n, size = 64, entryHeaderSize + 128
	next := uint64(1)
	add := func() {
		_, pos := c.reserve(frameHeaderSize + n*size)
		for i := range n {
			c.add(next, pos+uint64(frameHeaderSize+i*size), size)
			next++
		}
	}
	for c.next < 2*uint64(c.limit) {
		add()
	}
	b.ReportAllocs()
	for b.Loop() {
		add()
	}
}
