package benchload

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// formatThousands prints v rounded to a whole number with thousands
// separators: 123,456.
func formatThousands(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var b strings.Builder
	if v <= -0.5 {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// WriteTable prints one line per result.
func WriteTable(out io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tlibrary\tops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tcpu µs/op\tallocs/op\terrors\t"+
		"entries/fsync leader\tfollowers\tentries/rpc\tfsyncs/op\tfsync p50 ms\tfsync×n p50 ms\trtt p50 ms\t")
	for _, r := range results {
		// A build that does not count its batches prints "-".
		counted := func(format string, v float64) string {
			if r.EntriesPerFsync == 0 {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.2f\t%.1f\t%.1f\t%d\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t\n",
			r.Workload, r.Library, formatThousands(r.OpsPerSec), r.LatP50Ms, r.LatP90Ms, r.LatP99Ms,
			r.LatMaxMs, r.CPUUsPerOp, r.AllocsPerOp, r.Errors,
			counted("%.1f", r.LeaderEntriesPerFsync), counted("%.1f", r.FollowerEntriesPerFsync),
			counted("%.1f", r.EntriesPerRPC), counted("%.2f", r.FsyncsPerOp),
			r.LimitFsyncP50Ms, r.LimitFsyncNodesP50Ms, r.LimitRTTP50Ms)
	}
	return tw.Flush()
}

// MedianResult summarises repeated runs of one workload: every measured
// figure is the median of that figure over the runs (so the figures of the
// summary may come from different runs), counts are summed, and the
// descriptive fields come from the first run. It returns the zero Result
// for no runs.
func MedianResult(runs []Result) Result {
	if len(runs) == 0 {
		return Result{}
	}
	out := runs[0]
	med := func(field func(Result) float64) float64 {
		values := make([]float64, len(runs))
		for i, r := range runs {
			values[i] = field(r)
		}
		slices.Sort(values)
		n := len(values)
		if n%2 == 1 {
			return values[n/2]
		}
		return (values[n/2-1] + values[n/2]) / 2
	}
	out.DurationSeconds = med(func(r Result) float64 { return r.DurationSeconds })
	out.OpsPerSec = med(func(r Result) float64 { return r.OpsPerSec })
	out.LatMeanMs = med(func(r Result) float64 { return r.LatMeanMs })
	out.LatP50Ms = med(func(r Result) float64 { return r.LatP50Ms })
	out.LatP90Ms = med(func(r Result) float64 { return r.LatP90Ms })
	out.LatP99Ms = med(func(r Result) float64 { return r.LatP99Ms })
	out.LatP999Ms = med(func(r Result) float64 { return r.LatP999Ms })
	out.LatMaxMs = med(func(r Result) float64 { return r.LatMaxMs })
	out.CPUUsPerOp = med(func(r Result) float64 { return r.CPUUsPerOp })
	out.AllocsPerOp = med(func(r Result) float64 { return r.AllocsPerOp })
	out.LimitFsyncP50Ms = med(func(r Result) float64 { return r.LimitFsyncP50Ms })
	out.LimitRTTP50Ms = med(func(r Result) float64 { return r.LimitRTTP50Ms })
	out.LimitFsyncNodesP50Ms = med(func(r Result) float64 { return r.LimitFsyncNodesP50Ms })
	out.EntriesPerFsync = med(func(r Result) float64 { return r.EntriesPerFsync })
	out.LeaderEntriesPerFsync = med(func(r Result) float64 { return r.LeaderEntriesPerFsync })
	out.FollowerEntriesPerFsync = med(func(r Result) float64 { return r.FollowerEntriesPerFsync })
	out.EntriesPerRPC = med(func(r Result) float64 { return r.EntriesPerRPC })
	out.FsyncsPerOp = med(func(r Result) float64 { return r.FsyncsPerOp })
	out.RPCsPerOp = med(func(r Result) float64 { return r.RPCsPerOp })
	out.Ops, out.Errors = 0, 0
	for _, r := range runs {
		out.Ops += r.Ops
		out.Errors += r.Errors
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
	}
	return out
}

// Comparison is one row of the side-by-side table: the medians of each
// build on one workload.
type Comparison struct {
	Workload Workload
	// Ours is this library's stack: its core on its wal store.
	Ours Result
	// Core is this library's core on hashicorp's raft-wal, which measures
	// the core and the store apart; its Library is "" when it was not run
	// (workloads without a durable store).
	Core Result
	// Theirs is hashicorp/raft on raft-wal.
	Theirs Result
}

// ratio returns a/b, or NaN when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// Verdict says whether the row meets its target of the standard matrix:
// "met", "MISSED", or "-" for a workload outside the matrix.
func (c Comparison) Verdict() string {
	target, ok := TargetFor(c.Workload)
	if !ok {
		return "-"
	}
	if target.Met(c) {
		return "met"
	}
	return "MISSED"
}

// WriteComparison prints the side-by-side table: ops/s of the three builds
// (stack = our core on our wal, core = our core on raft-wal, theirs =
// hashicorp/raft on raft-wal) and the ratios stack/theirs, core/theirs and
// stack/core (above 1 is better for the first); p50, p99 and CPU per op of
// each build with the p99 ratio stack/theirs (below 1 is better); the
// machine's limits; and the verdict against the row's target. A build not
// run prints "-".
func WriteComparison(out io.Writer, rows []Comparison) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload	stack ops/s	core ops/s	theirs ops/s	stack/theirs	core/theirs	stack/core	"+
		"p50 ms stack	core	theirs	p99 ms stack	core	theirs	p99 stack/theirs	cpu µs/op stack	core	theirs	"+
		"fsync+rtt ms	fsync×n+rtt ms	target	verdict	")
	for _, c := range rows {
		target, _ := TargetFor(c.Workload)
		text := target.Text
		if text == "" {
			text = "-"
		}
		ran := c.Core.Library != ""
		coreNum := func(format string, v float64) string {
			if !ran {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		coreOps := "-"
		if ran {
			coreOps = formatThousands(c.Core.OpsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f×\t%s\t%s\t%.3f\t%s\t%.3f\t%.3f\t%s\t%.3f\t%.2f×\t%.1f\t%s\t%.1f\t%.3f\t%.3f\t%s\t%s\t\n",
			c.Workload.Name(),
			formatThousands(c.Ours.OpsPerSec), coreOps, formatThousands(c.Theirs.OpsPerSec),
			ratio(c.Ours.OpsPerSec, c.Theirs.OpsPerSec),
			coreNum("%.2f×", ratio(c.Core.OpsPerSec, c.Theirs.OpsPerSec)),
			coreNum("%.2f×", ratio(c.Ours.OpsPerSec, c.Core.OpsPerSec)),
			c.Ours.LatP50Ms, coreNum("%.3f", c.Core.LatP50Ms), c.Theirs.LatP50Ms,
			c.Ours.LatP99Ms, coreNum("%.3f", c.Core.LatP99Ms), c.Theirs.LatP99Ms,
			ratio(c.Ours.LatP99Ms, c.Theirs.LatP99Ms),
			c.Ours.CPUUsPerOp, coreNum("%.1f", c.Core.CPUUsPerOp), c.Theirs.CPUUsPerOp,
			c.Ours.LimitFsyncP50Ms+c.Ours.LimitRTTP50Ms, c.Ours.LimitFsyncNodesP50Ms+c.Ours.LimitRTTP50Ms, text, c.Verdict())
	}
	return tw.Flush()
}
