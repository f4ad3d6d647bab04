package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quorumkit/raft/internal/benchload"
)

// TestSmokeJSON runs two tiny workloads end to end, one in memory and one
// over real TCP with the durable wal store, in real time (each cluster
// needs an election at the default timeouts, about 2 s, then 200 ms of
// load), and checks that every JSON field is sane.
func TestSmokeJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-workloads", "inmem-inmem-c2-p64,tcp-wal-c4-p128", "-duration", "200ms", "-warmup", "0s",
		"-json", "-quiet", "-dir", t.TempDir()}
	require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())

	var results []benchload.Result
	scanner := bufio.NewScanner(&stdout)
	for scanner.Scan() {
		var fields map[string]any
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &fields))
		for _, key := range []string{"ops_per_sec", "lat_p50_ms", "lat_p90_ms", "lat_p99_ms", "lat_max_ms",
			"cpu_us_per_op", "allocs_per_op", "nodes", "clients", "payload_bytes", "transport", "store",
			"limit_fsync_p50_ms", "limit_rtt_p50_ms"} {
			require.Contains(t, fields, key)
		}
		var res benchload.Result
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &res))
		results = append(results, res)
	}
	require.NoError(t, scanner.Err())
	require.Len(t, results, 2)

	want := []struct {
		transport, store string
		clients, payload int
	}{{"inmem", "inmem", 2, 64}, {"tcp", "wal", 4, 128}}
	for i, res := range results {
		require.Equal(t, "quorumkit", res.Library)
		require.Equal(t, 3, res.Nodes)
		require.Equal(t, want[i].transport, res.Transport)
		require.Equal(t, want[i].store, res.Store)
		require.Equal(t, want[i].clients, res.Clients)
		require.Equal(t, want[i].payload, res.PayloadBytes)
		require.Zero(t, res.Errors, "first error: %s", res.FirstError)
		require.Positive(t, res.Ops)
		require.InDelta(t, float64(res.Ops)/res.DurationSeconds, res.OpsPerSec, 1e-6)
		require.GreaterOrEqual(t, res.DurationSeconds, 0.2)
		require.Positive(t, res.LatP50Ms)
		require.LessOrEqual(t, res.LatP50Ms, res.LatP90Ms)
		require.LessOrEqual(t, res.LatP90Ms, res.LatP99Ms)
		require.LessOrEqual(t, res.LatP99Ms, res.LatMaxMs)
		require.Positive(t, res.CPUUsPerOp)
		require.Positive(t, res.AllocsPerOp)
		require.Positive(t, res.LimitFsyncP50Ms)
		require.Positive(t, res.LimitFsyncNodesP50Ms)
		require.Positive(t, res.LimitRTTP50Ms)
	}
	// Every durable write is synced on a quorum (2 of 3), and a client has
	// one write in flight, so one sync covers at most as many writes as there
	// are clients: the counts show the syncs happened. (A comparison of
	// latencies here failed on a loaded machine: timings belong in
	// benchmarks.)
	durable := results[1]
	require.GreaterOrEqual(t, durable.FsyncsPerOp, 2.0/float64(durable.Clients))
}

func TestTableOutput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	profile, tracePath := filepath.Join(t.TempDir(), "cpu.prof"), filepath.Join(t.TempDir(), "run.trace")
	args := []string{"-transport", "inmem", "-clients", "3", "-duration", "100ms", "-warmup", "0s", "-quiet",
		"-cpuprofile", profile, "-trace", tracePath}
	require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Len(t, lines, 2, "header and one row: %q", stdout.String())
	require.Equal(t, []string{"inmem-inmem-c3-p128", "quorumkit"}, strings.Fields(lines[1])[:2])
	for _, path := range []string{profile, tracePath} {
		info, err := os.Stat(path)
		require.NoError(t, err)
		require.Positive(t, info.Size(), "%s is empty", path)
	}

	// An output file that cannot be created fails the run before any load.
	stdout.Reset()
	stderr.Reset()
	args = []string{"-duration", "1ms", "-quiet", "-trace", filepath.Join(t.TempDir(), "missing", "run.trace")}
	require.Equal(t, 1, run(args, &stdout, &stderr))
	require.Contains(t, stderr.String(), "run.trace")
	require.Empty(t, stdout.String())
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-transport", "udp"}, `transport "udp"`},
		{[]string{"-clients", "0"}, "clients 0"},
		{[]string{"-duration", "0s"}, "-duration must be positive"},
		{[]string{"-runs", "0"}, "-runs must be between"},
		{[]string{"-workloads", "tcp-wal-q3"}, `bad part "q3"`},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-nosuchflag"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, run(tt.args, &stdout, &stderr))
			require.Contains(t, stderr.String(), tt.wantErr)
			require.Empty(t, stdout.String())
		})
	}
}
