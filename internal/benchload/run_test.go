//go:build go1.25

package benchload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeCluster answers every Apply after a fixed latency; with failEvery > 0
// every failEvery-th call fails. release, when not nil, blocks every call
// until it is closed.
type fakeCluster struct {
	latency   time.Duration
	failEvery uint64
	release   chan struct{}
	calls     atomic.Uint64
	closed    atomic.Bool
}

var errFake = errors.New("fake: not applied")

func (f *fakeCluster) Apply(cmd []byte) error {
	n := f.calls.Add(1)
	if f.release != nil {
		<-f.release
	}
	time.Sleep(f.latency)
	if f.failEvery > 0 && n%f.failEvery == 0 {
		return errFake
	}
	return nil
}

func (f *fakeCluster) Close() error {
	f.closed.Store(true)
	return nil
}

func workload(clients int) Workload {
	return Workload{Nodes: 3, Transport: TransportInmem, Store: StoreInmem, Clients: clients, Payload: 16}
}

// TestRunCountsCallsFinishedInTheWindow runs in virtual time: 4 clients
// whose every call takes exactly 1 ms, measured for 2.5 s after 100 ms of
// warm-up, must make 10,000 calls (give or take the ones finishing at the
// instant the window opens or closes), all of 1 ms.
func TestRunCountsCallsFinishedInTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cluster := &fakeCluster{latency: time.Millisecond}
		var mu sync.Mutex
		var lines []string
		opts := Options{Warmup: 100 * time.Millisecond, Duration: 2500 * time.Millisecond, Progress: func(line string) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, line)
		}}
		res, err := Run(t.Context(), cluster, workload(4), opts)
		require.NoError(t, err)

		require.InDelta(t, 10_000, res.Ops, 8, "ops")
		require.Equal(t, 2.5, res.DurationSeconds)
		require.InDelta(t, 4000, res.OpsPerSec, 4)
		for name, got := range map[string]float64{"p50": res.LatP50Ms, "p90": res.LatP90Ms, "p99": res.LatP99Ms, "max": res.LatMaxMs, "mean": res.LatMeanMs} {
			require.Equal(t, 1.0, got, "%s latency", name)
		}
		require.Zero(t, res.Errors)
		require.Empty(t, res.FirstError)
		require.Equal(t, "inmem-inmem-c4-p16", res.Workload)
		require.Equal(t, 4, res.Clients)
		require.Equal(t, 16, res.PayloadBytes)
		require.Equal(t, 0.1, res.WarmupSeconds)
		require.Greater(t, res.AllocsPerOp, 0.0, "the clients' timers allocate")
		require.False(t, cluster.closed.Load(), "Run must leave the cluster open")

		mu.Lock()
		defer mu.Unlock()
		require.Len(t, lines, 3, "one line per second of the window, then the clearing empty line: %q", lines)
		// The first rate covers the warm-up too, give or take a few calls.
		require.Regexp(t, `^inmem-inmem-c4-p16: measure 1s/2.5s, (3,99\d|4,00\d) ops/s$`, lines[0])
		require.Regexp(t, `^inmem-inmem-c4-p16: measure 2s/2.5s, (3,99\d|4,00\d) ops/s$`, lines[1])
		require.Empty(t, lines[2])
	})
}

func TestRunCountsFailedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cluster := &fakeCluster{latency: time.Millisecond, failEvery: 2}
		res, err := Run(t.Context(), cluster, workload(2), Options{Duration: time.Second})
		require.NoError(t, err)
		require.InDelta(t, 1000, res.Ops, 4)
		require.InDelta(t, 1000, res.Errors, 4)
		require.Equal(t, errFake.Error(), res.FirstError)
	})
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		_, err := Run(ctx, &fakeCluster{latency: time.Millisecond}, workload(2), Options{Warmup: time.Second, Duration: time.Hour})
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestRunGivesUpOnBlockedClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cluster := &fakeCluster{release: make(chan struct{})}
		_, err := Run(t.Context(), cluster, workload(3), Options{Duration: time.Second})
		require.ErrorContains(t, err, "still blocked")
		close(cluster.release) // let the stuck clients leave the bubble
	})
}

func TestRunRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		w       Workload
		opts    Options
		wantErr string
	}{
		{"no duration", workload(1), Options{}, "duration must be positive"},
		{"negative warmup", workload(1), Options{Duration: time.Second, Warmup: -1}, "warmup must not be negative"},
		{"bad workload", Workload{Nodes: 3, Transport: "carrier-pigeon", Store: StoreInmem, Clients: 1}, Options{Duration: time.Second}, "transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster := &fakeCluster{}
			_, err := Run(t.Context(), cluster, tt.w, tt.opts)
			require.ErrorContains(t, err, tt.wantErr)
			require.Zero(t, cluster.calls.Load(), "no client may start")
		})
	}
}

// TestBenchMeasuresLimitsAndClosesTheCluster uses a real disk and real
// loopback for the limits (a few hundred milliseconds at most) and a fake
// cluster for a 50 ms run.
func TestBenchMeasuresLimitsAndClosesTheCluster(t *testing.T) {
	parent := t.TempDir()
	cluster := &fakeCluster{latency: 100 * time.Microsecond}
	var clusterDir string
	start := func(w Workload, dir string) (Cluster, error) {
		clusterDir = dir
		require.NoError(t, os.WriteFile(filepath.Join(dir, "state"), []byte("x"), 0o600))
		return cluster, nil
	}
	res, err := Bench(t.Context(), "fake", workload(2), Options{Duration: 50 * time.Millisecond, TempDir: parent}, start)
	require.NoError(t, err)
	require.Equal(t, "fake", res.Library)
	require.Positive(t, res.Ops)
	require.Positive(t, res.LimitFsyncP50Ms)
	require.Positive(t, res.LimitFsyncNodesP50Ms)
	require.Positive(t, res.LimitRTTP50Ms)
	require.True(t, cluster.closed.Load(), "Bench must close the cluster")
	require.Equal(t, parent, filepath.Dir(clusterDir))
	require.NoDirExists(t, clusterDir, "Bench must remove the run's directory")

	_, err = Bench(t.Context(), "fake", workload(1), Options{Duration: time.Millisecond, TempDir: parent},
		func(Workload, string) (Cluster, error) { return nil, errors.New("no cluster today") })
	require.ErrorContains(t, err, "start fake cluster: no cluster today")
}

// The limit probes touch a real disk and real loopback, with few samples.
func TestMeasureLimits(t *testing.T) {
	fsync, err := MeasureFsync(t.TempDir(), 10)
	require.NoError(t, err)
	require.Positive(t, fsync)

	rtt, err := MeasureRTT(100)
	require.NoError(t, err)
	require.Positive(t, rtt)
	require.Less(t, rtt, time.Second)

	concurrent, err := MeasureFsyncConcurrent(t.TempDir(), 3, 10)
	require.NoError(t, err)
	require.Positive(t, concurrent)

	_, err = MeasureFsync(filepath.Join(t.TempDir(), "missing"), 10)
	require.ErrorContains(t, err, "fsync probe")
	_, err = MeasureFsyncConcurrent(filepath.Join(t.TempDir(), "missing"), 3, 10)
	require.ErrorContains(t, err, "fsync probe")
	_, err = MeasureFsync(t.TempDir(), 0)
	require.ErrorContains(t, err, "must be positive")
	_, err = MeasureFsyncConcurrent(t.TempDir(), 0, 10)
	require.ErrorContains(t, err, "writers must be positive")
	_, err = MeasureRTT(0)
	require.ErrorContains(t, err, "must be positive")
}

type fakeNode struct{ leading atomic.Bool }

func TestLeaderTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nodes := []*fakeNode{{}, {}, {}}
		tracker := NewLeaderTracker(nodes, func(n *fakeNode) bool { return n.leading.Load() })
		_, ok := tracker.Current()
		require.False(t, ok)

		_, err := tracker.Refresh(nil, time.Second)
		require.ErrorContains(t, err, "no leader within 1s")

		// An election that ends after 300 ms.
		go func() {
			time.Sleep(300 * time.Millisecond)
			nodes[1].leading.Store(true)
		}()
		begin := time.Now()
		leader, err := tracker.Refresh(nil, time.Second)
		require.NoError(t, err)
		require.Same(t, nodes[1], leader)
		require.InDelta(t, 300*time.Millisecond, time.Since(begin), float64(leaderPoll))
		current, ok := tracker.Current()
		require.True(t, ok)
		require.Same(t, nodes[1], current)

		// A caller holding an older stale leader gets the current one at once.
		again, err := tracker.Refresh(nodes[0], 0)
		require.NoError(t, err)
		require.Same(t, nodes[1], again)

		nodes[1].leading.Store(false)
		nodes[2].leading.Store(true)
		next, err := tracker.Refresh(nodes[1], time.Second)
		require.NoError(t, err)
		require.Same(t, nodes[2], next)
	})
}
