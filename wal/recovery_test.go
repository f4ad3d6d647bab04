//go:build go1.25

package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Real-disk tests: files in t.TempDir(), real syncs.

// tornTailScenario writes a log operation by operation and records, after
// each, the size of the (single) segment and the expected log, so that a
// file cut at any offset has a known correct state.
type tornTailScenario struct {
	name string
	ops  []func(s *Store, m logModel) error
}

func TestRecoveryAfterCutOrBitFlipInTheLastThreeRecords(t *testing.T) {
	appendBatch := func(from, to, gen uint64) func(*Store, logModel) error {
		return func(s *Store, m logModel) error {
			m.store(from, to, gen)
			return s.StoreLogs(testBatch(from, to, gen))
		}
	}
	scenarios := []tornTailScenario{
		{"appends", []func(*Store, logModel) error{
			appendBatch(1, 2, 1), appendBatch(3, 4, 1), appendBatch(5, 6, 1), appendBatch(7, 8, 1), appendBatch(9, 10, 1),
		}},
		{"truncation marker among the last records", []func(*Store, logModel) error{
			appendBatch(1, 2, 1), appendBatch(3, 5, 1),
			func(s *Store, m logModel) error { m.deleteRange(4, 5); return s.DeleteRange(4, 5) },
			appendBatch(4, 4, 2),
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir, Options{})
			model := logModel{}
			var seg string
			var ends []int64
			var states []logModel
			for _, op := range sc.ops {
				require.NoError(t, op(s, model))
				if seg == "" {
					seg = segmentFiles(t, dir)[0]
				}
				ends = append(ends, fileSize(t, seg))
				states = append(states, model.clone())
			}
			require.NoError(t, s.Close())
			file, err := os.ReadFile(seg)
			require.NoError(t, err)
			n := len(ends)
			// stateAt is the log after every operation whose record ends at
			// or before off.
			stateAt := func(off int64) logModel {
				st := logModel{}
				for i := range ends {
					if ends[i] <= off {
						st = states[i]
					}
				}
				return st
			}
			recordStart := func(off int64) int64 {
				for i := n - 1; i >= 0; i-- {
					if ends[i] <= off {
						return ends[i]
					}
				}
				return segmentHeaderSize
			}

			// The reopened copies skip syncs: what is checked here is how
			// Open reads damaged bytes, and hundreds of reopens with real
			// syncs would cost tens of seconds on a shared disk. The
			// original log above was written with real syncs.
			reopen := Options{Logger: quietLogger(), Sync: SyncNever}
			for off := ends[n-4]; off < ends[n-1]; off++ {
				t.Run(fmt.Sprintf("cut at %d", off), func(t *testing.T) {
					d := copyDir(t, dir)
					require.NoError(t, os.WriteFile(filepath.Join(d, filepath.Base(seg)), file[:off], 0o644))
					s, err := Open(d, reopen)
					require.NoError(t, err)
					require.Equal(t, stateAt(off), readLog(t, s), "after a cut at %d every acknowledged record before it must be intact and nothing else present", off)
					requireAppendWorks(t, d, s, reopen)
				})
				t.Run(fmt.Sprintf("bit flip at %d", off), func(t *testing.T) {
					d := copyDir(t, dir)
					flipped := append([]byte(nil), file...)
					flipped[off] ^= 1 << (off % 8)
					require.NoError(t, os.WriteFile(filepath.Join(d, filepath.Base(seg)), flipped, 0o644))
					s, err := Open(d, reopen)
					if off < ends[n-2] {
						// Valid records follow the damaged one: refusing to
						// open is the only way not to lose them silently.
						require.Error(t, err, "a damaged record followed by valid ones must not be dropped")
						require.ErrorContains(t, err, filepath.Base(seg))
						require.ErrorContains(t, err, fmt.Sprintf("offset %d", recordStart(off)))
						return
					}
					// The last record: indistinguishable from a torn write.
					require.NoError(t, err)
					require.Equal(t, states[n-2], readLog(t, s))
					requireAppendWorks(t, d, s, reopen)
				})
			}
		})
	}
}

func TestOpenRefusesDamageWithFileAndOffset(t *testing.T) {
	// build writes a log over three segments and returns its directory.
	build := func(t *testing.T) string {
		dir := t.TempDir()
		s := openTestStore(t, dir, Options{SegmentSize: 200})
		for i := uint64(1); i <= 12; i += 2 {
			require.NoError(t, s.StoreLogs(testBatch(i, i+1, 1)))
		}
		require.NoError(t, s.Set([]byte("CurrentTerm"), []byte{1}))
		require.NoError(t, s.Close())
		require.GreaterOrEqual(t, len(segmentFiles(t, dir)), 3)
		return dir
	}
	flip := func(path string, off int) func(t *testing.T) {
		return func(t *testing.T) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[off] ^= 0x10
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"missing metadata", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, metaName)))
		}, []string{metaName, "missing"}},
		{"bit flip in metadata", func(t *testing.T, dir string) {
			flip(filepath.Join(dir, metaName), 40)(t)
		}, []string{metaName, "offset"}},
		{"truncated metadata", func(t *testing.T, dir string) {
			require.NoError(t, os.Truncate(filepath.Join(dir, metaName), 10))
		}, []string{metaName, "offset 0"}},
		{"missing middle segment", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(segmentFiles(t, dir)[1]))
		}, []string{"missing"}},
		{"missing oldest segment", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(segmentFiles(t, dir)[0]))
		}, []string{"missing"}},
		{"missing newest segment", func(t *testing.T, dir string) {
			segs := segmentFiles(t, dir)
			require.NoError(t, os.Remove(segs[len(segs)-1]))
		}, []string{"missing"}},
		{"bit flip in an older segment's last record", func(t *testing.T, dir string) {
			seg := segmentFiles(t, dir)[0]
			flip(seg, int(fileSize(t, seg))-2)(t)
		}, []string{"offset", "corrupt"}},
		{"bit flip in a segment header", func(t *testing.T, dir string) {
			flip(segmentFiles(t, dir)[1], 20)(t)
		}, []string{"offset 0"}},
		{"older segment cut short", func(t *testing.T, dir string) {
			seg := segmentFiles(t, dir)[0]
			require.NoError(t, os.Truncate(seg, fileSize(t, seg)-5))
		}, []string{"offset", "corrupt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := build(t)
			c.damage(t, dir)
			_, err := Open(dir, Options{Logger: quietLogger()})
			require.Error(t, err)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestReopenRestoresLogAndStableKeys(t *testing.T) {
	for _, opts := range []Options{{}, {SegmentSize: 300, CacheSize: -1}} {
		t.Run(fmt.Sprintf("segment size %d", opts.SegmentSize), func(t *testing.T) {
			dir := t.TempDir()
			opts.Logger = quietLogger()
			s, err := Open(dir, opts)
			require.NoError(t, err)
			for i := uint64(1); i <= 60; i += 3 {
				require.NoError(t, s.StoreLogs(testBatch(i, i+2, 1)))
			}
			require.NoError(t, s.DeleteRange(1, 20))  // head, across segments
			require.NoError(t, s.DeleteRange(50, 60)) // tail, inside a batch
			require.NoError(t, s.StoreLogs(testBatch(50, 52, 2)))
			require.NoError(t, s.SetUint64([]byte("CurrentTerm"), 2))
			require.NoError(t, s.Set([]byte("LastVoteCand"), []byte("n2")))
			want := readLog(t, s)
			require.NoError(t, s.Close())

			s, err = Open(dir, opts)
			require.NoError(t, err)
			defer s.Close()
			require.Equal(t, want, readLog(t, s))
			first, err := s.FirstIndex()
			require.NoError(t, err)
			require.Equal(t, uint64(21), first)
			term, err := s.GetUint64([]byte("CurrentTerm"))
			require.NoError(t, err)
			require.Equal(t, uint64(2), term)
			vote, err := s.Get([]byte("LastVoteCand"))
			require.NoError(t, err)
			require.Equal(t, []byte("n2"), vote)
		})
	}
}
