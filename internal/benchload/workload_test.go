//go:build go1.25

package benchload

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		in      string
		want    Workload
		wantErr string
	}{
		{in: "inmem-inmem", want: Workload{Nodes: 3, Transport: "inmem", Store: "inmem", Clients: 1, Payload: 128}},
		{in: "tcp-wal-c16-p4096", want: Workload{Nodes: 3, Transport: "tcp", Store: "wal", Clients: 16, Payload: 4096}},
		{in: " tcp-wal-p0-n5-c2 ", want: Workload{Nodes: 5, Transport: "tcp", Store: "wal", Clients: 2, Payload: 0}},
		{in: "tcp", wantErr: "want transport-store"},
		{in: "udp-wal", wantErr: `transport "udp"`},
		{in: "tcp-bolt", wantErr: `store "bolt"`},
		{in: "tcp-wal-c0", wantErr: "clients 0"},
		{in: "tcp-wal-cx", wantErr: `bad part "cx"`},
		{in: "tcp-wal-x4", wantErr: `bad part "x4"`},
		{in: "tcp-wal-c", wantErr: `bad part "c"`},
		{in: "tcp-wal-p-1", wantErr: `bad part "p"`},
		{in: "tcp-wal-p999999999", wantErr: "payload 999999999"},
		{in: "tcp-wal-n0", wantErr: "nodes 0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseWorkload(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			back, err := ParseWorkload(got.Name())
			require.NoError(t, err)
			require.Equal(t, got, back, "Name %q must parse back to the same workload", got.Name())
		})
	}
}

func TestParseWorkloadsDefaultIsTheStandardMatrix(t *testing.T) {
	got, err := ParseWorkloads("default")
	require.NoError(t, err)
	require.Equal(t, []string{
		"inmem-inmem-c1-p128", "inmem-inmem-c256-p128",
		"tcp-wal-c1-p128", "tcp-wal-c16-p128", "tcp-wal-c256-p128", "tcp-wal-c64-p4096",
	}, names(got))

	got, err = ParseWorkloads("tcp-wal-c4,,inmem-inmem")
	require.NoError(t, err)
	require.Equal(t, []string{"tcp-wal-c4-p128", "inmem-inmem-c1-p128"}, names(got))

	_, err = ParseWorkloads(" , ")
	require.ErrorContains(t, err, "no workload")
}

func names(ws []Workload) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name()
	}
	return out
}

func TestTargets(t *testing.T) {
	matrix := Matrix()
	// c1 is a C=1 durable row that meets every part of its target: p50
	// 0.5 ms within 1.3 × (0.3 + 0.1), 1.5× theirs in ops/s, half their CPU,
	// and as fast as our core on raft-wal.
	c1 := Comparison{Workload: matrix[2],
		Ours:   Result{OpsPerSec: 150, LatP50Ms: 0.5, LimitFsyncNodesP50Ms: 0.3, LimitRTTP50Ms: 0.1, CPUUsPerOp: 50},
		Core:   Result{Library: "quorumkit-raftwal", OpsPerSec: 150},
		Theirs: Result{OpsPerSec: 100, CPUUsPerOp: 100}}
	// c16 is a loaded durable row that meets its target: 3× theirs, p99
	// half of theirs, half their CPU, as fast as our core.
	c16 := Comparison{Workload: matrix[3],
		Ours:   Result{OpsPerSec: 300, LatP99Ms: 5, CPUUsPerOp: 10},
		Core:   Result{Library: "quorumkit-raftwal", OpsPerSec: 300},
		Theirs: Result{OpsPerSec: 100, LatP99Ms: 10, CPUUsPerOp: 20}}
	with := func(c Comparison, change func(c *Comparison)) Comparison {
		change(&c)
		return c
	}
	tests := []struct {
		name string
		c    Comparison
		want string
	}{
		{"inmem c1 at 2x", Comparison{Workload: matrix[0], Ours: Result{OpsPerSec: 200}, Theirs: Result{OpsPerSec: 100}}, "met"},
		{"inmem c1 below 2x", Comparison{Workload: matrix[0], Ours: Result{OpsPerSec: 199}, Theirs: Result{OpsPerSec: 100}}, "MISSED"},
		{"tcp c1 meets all", c1, "met"},
		{"tcp c1 far from the limit", with(c1, func(c *Comparison) { c.Ours.LatP50Ms = 0.53 }), "MISSED"},
		{"tcp c1 judged on the limit of one writer per node", with(c1, func(c *Comparison) { c.Ours.LimitFsyncP50Ms = 0.1 }), "met"},
		{"tcp c1 below 1.5x theirs", with(c1, func(c *Comparison) { c.Ours.OpsPerSec = 149 }), "MISSED"},
		{"tcp c1 too much CPU", with(c1, func(c *Comparison) { c.Ours.CPUUsPerOp = 51 }), "MISSED"},
		{"tcp c1 slower than our core", with(c1, func(c *Comparison) { c.Core.OpsPerSec = 151 }), "MISSED"},
		{"tcp c1 without our core", with(c1, func(c *Comparison) { c.Core = Result{OpsPerSec: 1000} }), "met"},
		{"tcp c16 meets all", c16, "met"},
		{"tcp c16 p99 too high", with(c16, func(c *Comparison) { c.Ours.LatP99Ms = 5.1 }), "MISSED"},
		{"tcp c16 below 3x", with(c16, func(c *Comparison) { c.Ours.OpsPerSec = 299; c.Core.OpsPerSec = 299 }), "MISSED"},
		{"tcp c16 too much CPU", with(c16, func(c *Comparison) { c.Ours.CPUUsPerOp = 10.5 }), "MISSED"},
		{"tcp 4k holds p99 too", with(c16, func(c *Comparison) { c.Workload = matrix[5]; c.Ours.LatP99Ms = 6 }), "MISSED"},
		{"outside the matrix", Comparison{Workload: Workload{Nodes: 5, Transport: "tcp", Store: "wal", Clients: 1, Payload: 1}}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.c.Verdict())
		})
	}
}

func TestFormatThousands(t *testing.T) {
	tests := map[float64]string{
		0: "0", 7.4: "7", 999.5: "1,000", 1234: "1,234", 123456.7: "123,457",
		1234567: "1,234,567", -1234: "-1,234", math.NaN(): "NaN",
	}
	for in, want := range tests {
		require.Equal(t, want, formatThousands(in), "formatThousands(%v)", in)
	}
}

func TestMedianResult(t *testing.T) {
	runs := []Result{
		{Workload: "w", OpsPerSec: 300, LatP99Ms: 1, Ops: 10, Errors: 1},
		{Workload: "w", OpsPerSec: 100, LatP99Ms: 3, Ops: 20, FirstError: "boom"},
		{Workload: "w", OpsPerSec: 200, LatP99Ms: 2, Ops: 30},
	}
	got := MedianResult(runs)
	require.Equal(t, "w", got.Workload)
	require.Equal(t, 200.0, got.OpsPerSec)
	require.Equal(t, 2.0, got.LatP99Ms)
	require.Equal(t, uint64(60), got.Ops)
	require.Equal(t, uint64(1), got.Errors)
	require.Equal(t, "boom", got.FirstError)

	require.Equal(t, 150.0, MedianResult(runs[1:]).OpsPerSec, "an even count takes the mean of the middle two")
	require.Equal(t, Result{}, MedianResult(nil))
}

func TestWriteComparisonPrintsRatiosAndVerdict(t *testing.T) {
	var out bytes.Buffer
	rows := []Comparison{{
		Workload: Matrix()[4],
		Ours:     Result{OpsPerSec: 300_000, LatP50Ms: 1, LatP99Ms: 2, CPUUsPerOp: 10, LimitFsyncP50Ms: 0.25, LimitFsyncNodesP50Ms: 0.5, LimitRTTP50Ms: 0.125},
		Core:     Result{Library: "quorumkit-raftwal", OpsPerSec: 200_000, LatP50Ms: 1.5, LatP99Ms: 3, CPUUsPerOp: 12},
		Theirs:   Result{OpsPerSec: 100_000, LatP50Ms: 2, LatP99Ms: 8, CPUUsPerOp: 30},
	}, {
		Workload: Matrix()[1],
		Ours:     Result{OpsPerSec: 200_000, LatP50Ms: 1, LatP99Ms: 2},
		Theirs:   Result{OpsPerSec: 100_000, LatP50Ms: 2, LatP99Ms: 8},
	}}
	require.NoError(t, WriteComparison(&out, rows))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3)
	require.Equal(t, []string{
		"tcp-wal-c256-p128", "300,000", "200,000", "100,000", "3.00×", "2.00×", "1.50×",
		"1.000", "1.500", "2.000", "2.000", "3.000", "8.000", "0.25×", "10.0", "12.0", "30.0",
		"0.375", "0.625", "ops/s", "≥", "3×,", "p99", "≤", "0.5×,", "CPU", "≤", "0.5×", "theirs,", "stack", "≥", "core", "met",
	}, strings.Fields(lines[1]))
	require.Equal(t, []string{
		"inmem-inmem-c256-p128", "200,000", "-", "100,000", "2.00×", "-", "-",
		"1.000", "-", "2.000", "2.000", "-", "8.000", "0.25×", "0.0", "-", "0.0",
		"0.000", "0.000", "ops/s", "≥", "3×", "theirs", "MISSED",
	}, strings.Fields(lines[2]), "a build that did not run prints -")
}

func TestWriteTable(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteTable(&out, []Result{{Workload: "tcp-wal-c1-p128", Library: "quorumkit", OpsPerSec: 2500, LatP50Ms: 0.4}}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, "workload", strings.Fields(lines[0])[0])
	fields := strings.Fields(lines[1])
	require.Equal(t, []string{"tcp-wal-c1-p128", "quorumkit", "2,500", "0.400"}, fields[:4])
}

func TestCountersRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, EncodeCounters(&buf, 42, 1<<40))
	commands, bytesApplied, err := DecodeCounters(&buf)
	require.NoError(t, err)
	require.Equal(t, uint64(42), commands)
	require.Equal(t, uint64(1<<40), bytesApplied)

	_, _, err = DecodeCounters(strings.NewReader("short"))
	require.ErrorContains(t, err, "read snapshot")
}
