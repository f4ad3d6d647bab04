//go:build go1.25

package wal

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

var errCrash = errors.New("simulated crash")

// crashScenario is one multi-step operation on a prepared store. accept
// says whether a log found after a crash somewhere inside op is one of the
// states the operation may leave.
type crashScenario struct {
	name   string
	opts   Options
	setup  func(t *testing.T, s *Store)
	op     func(s *Store) error
	accept func(before, after, got logModel) bool
}

func oldOrNew(before, after, got logModel) bool {
	return fmt.Sprint(got) == fmt.Sprint(before) || fmt.Sprint(got) == fmt.Sprint(after)
}

// prefixBetween accepts, for a tail deletion, any prefix of the old log that
// still holds the whole new log.
func prefixBetween(before, after, got logModel) bool {
	for i, g := range after {
		if got[i] != g {
			return false
		}
	}
	last := uint64(0)
	for i, g := range got {
		if before[i] != g {
			return false
		}
		last = max(last, i)
	}
	return len(got) == 0 || uint64(len(got)) == last-minKey(got)+1
}

func minKey(m logModel) uint64 {
	first := ^uint64(0)
	for i := range m {
		first = min(first, i)
	}
	return first
}

// TestCrashAtEveryStepLeavesAUsableStore stops each multi-step operation at
// every crash point it passes (the files are left exactly as they are at
// that point), reopens the directory, and checks that the log is a state the
// operation may leave, that the store accepts appends, and that it reopens
// again. Real files, real syncs.
func TestCrashAtEveryStepLeavesAUsableStore(t *testing.T) {
	fill := func(to uint64, batch uint64) func(t *testing.T, s *Store) {
		return func(t *testing.T, s *Store) {
			for i := uint64(1); i <= to; i += batch {
				require.NoError(t, s.StoreLogs(testBatch(i, min(i+batch-1, to), 1)))
			}
		}
	}
	scenarios := []crashScenario{
		{"first append", Options{}, func(*testing.T, *Store) {},
			func(s *Store) error { return s.StoreLogs(testBatch(5, 6, 1)) }, oldOrNew},
		{"append that rotates", Options{SegmentSize: 200}, fill(6, 3),
			func(s *Store) error { return s.StoreLogs(testBatch(7, 9, 1)) }, oldOrNew},
		{"head deletion across segments", Options{SegmentSize: 200}, fill(12, 2),
			func(s *Store) error { return s.DeleteRange(1, 7) }, oldOrNew},
		{"tail deletion across segments into a batch", Options{SegmentSize: 200}, fill(12, 3),
			func(s *Store) error { return s.DeleteRange(5, 12) }, prefixBetween},
		{"tail deletion at a batch boundary", Options{}, fill(12, 3),
			func(s *Store) error { return s.DeleteRange(7, 12) }, prefixBetween},
		{"delete everything", Options{SegmentSize: 200}, fill(12, 3),
			func(s *Store) error { return s.DeleteRange(0, 100) }, prefixBetween},
		{"append at a new start after deleting everything", Options{SegmentSize: 200},
			func(t *testing.T, s *Store) { fill(6, 3)(t, s); require.NoError(t, s.DeleteRange(1, 6)) },
			func(s *Store) error { return s.StoreLogs(testBatch(40, 41, 2)) }, oldOrNew},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			sc.opts.Logger = quietLogger()
			run := func(t *testing.T, crashAt string, occurrence int) (before, after logModel, dir string, seen map[string]int) {
				dir = t.TempDir()
				s, err := Open(dir, sc.opts)
				require.NoError(t, err)
				sc.setup(t, s)
				before = readLog(t, s)
				seen = map[string]int{}
				crashed := false
				s.crashHook = func(point string) error {
					seen[point]++
					if point == crashAt && seen[point] == occurrence {
						crashed = true
						return errCrash
					}
					return nil
				}
				err = sc.op(s)
				if crashed {
					require.ErrorIs(t, err, errCrash)
				} else {
					require.NoError(t, err)
					after = readLog(t, s)
				}
				require.Equal(t, crashAt != "", crashed, "crash point %s#%d not reached", crashAt, occurrence)
				s.Close()
				return before, after, dir, seen
			}
			before, after, _, seen := run(t, "", 0)
			var points []crashPoint
			for p, n := range seen {
				for i := 1; i <= n; i++ {
					points = append(points, crashPoint{p, i})
				}
			}
			require.NotEmpty(t, points, "the operation passed no crash point")
			for _, p := range points {
				t.Run(fmt.Sprintf("%s#%d", p.name, p.occurrence), func(t *testing.T) {
					_, _, dir, _ := run(t, p.name, p.occurrence)
					s, err := Open(dir, sc.opts)
					require.NoError(t, err, "the store must reopen after a crash at %s", p.name)
					got := readLog(t, s)
					require.True(t, sc.accept(before, after, got), "after a crash at %s: log %v is neither the old %v nor the new %v", p.name, got, before, after)
					requireAppendWorks(t, dir, s, sc.opts)
				})
			}
		})
	}
}

type crashPoint struct {
	name       string
	occurrence int
}
