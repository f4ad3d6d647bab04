package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quorumkit/raft/internal/benchload"
)

// TestSmokeSideBySide runs the builds on two tiny workloads in real
// time (an election at the default timeouts, about 2 s per cluster, then
// 200 ms of load), one in memory and one over TCP with the durable stores,
// and checks all produce sane results (the core on raft-wal only where the
// store is durable), and that every build reports its batching.
func TestSmokeSideBySide(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-workloads", "inmem-inmem-c2,tcp-wal-c4", "-runs", "1", "-duration", "200ms", "-warmup", "0s",
		"-json", "-quiet", "-dir", t.TempDir()}
	require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())

	seen := map[string]int{}
	scanner := bufio.NewScanner(&stdout)
	for scanner.Scan() {
		var res benchload.Result
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &res))
		require.Zero(t, res.Errors, "%s %s: first error: %s", res.Library, res.Workload, res.FirstError)
		require.Positive(t, res.Ops, "%s %s", res.Library, res.Workload)
		require.Positive(t, res.LatP50Ms)
		require.LessOrEqual(t, res.LatP50Ms, res.LatMaxMs)
		require.GreaterOrEqual(t, res.EntriesPerFsync, 1.0, "%s %s: every StoreLogs carries an entry", res.Library, res.Workload)
		require.GreaterOrEqual(t, res.EntriesPerRPC, 1.0, "%s %s: every counted RPC carries an entry", res.Library, res.Workload)
		require.Positive(t, res.FsyncsPerOp, "%s %s", res.Library, res.Workload)
		seen[res.Library+" "+res.Workload]++
	}
	require.NoError(t, scanner.Err())
	require.Equal(t, map[string]int{
		"quorumkit inmem-inmem-c2-p128": 1, "hashicorp inmem-inmem-c2-p128": 1,
		"quorumkit tcp-wal-c4-p128": 1, "quorumkit-raftwal tcp-wal-c4-p128": 1, "hashicorp tcp-wal-c4-p128": 1,
	}, seen)
}

func TestComparisonTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"-workloads", "inmem-inmem-c1", "-runs", "2", "-duration", "100ms", "-warmup", "0s", "-quiet"}
	require.Equal(t, 0, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
	out := stdout.String()
	require.Contains(t, out, "medians of 2 alternating runs")
	var row []string
	for line := range strings.SplitSeq(out, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && fields[0] == "inmem-inmem-c1-p128" && strings.HasSuffix(fields[4], "×") {
			row = fields
		}
	}
	require.NotNil(t, row, "no comparison row in:\n%s", out)
	require.Contains(t, []string{"met", "MISSED"}, row[len(row)-1], "the last column is the verdict: %q", row)
}
