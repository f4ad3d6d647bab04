// Command versus runs the benchload workloads against three builds in one
// invocation, rotating their order run by run so that all see the same
// machine, and prints the ratios between them for every row:
//
//   - stack: quorumkit/raft on its own wal store;
//   - core: quorumkit/raft on hashicorp/raft-wal behind a LogCache (only
//     for durable workloads; with in-memory stores it would be the stack);
//   - theirs: hashicorp/raft v1.7 on hashicorp/raft-wal behind a LogCache.
//
// stack/theirs is what a user gains; core/theirs and stack/core measure
// the core and the store apart.
//
//	cd compat && go run ./cmd/versus -workloads default
//
// It lives in the compat module so that the main module never depends on
// hashicorp/raft. hashicorp/raft is used only through its published API.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/quorumkit/raft/internal/benchload"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// contender is one library under test.
type contender struct {
	name  string
	start benchload.StartFunc
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("versus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Five short runs per library and row: on a shared machine the load of
	// others comes and goes over tens of seconds, so the medians of many
	// alternating runs are steadier than one long run each.
	flags := benchload.RegisterFlags(fs, 3*time.Second, time.Second, 5)
	buildList := fs.String("builds", "stack,core,theirs", "builds to run, comma-separated: stack (ours on our wal), core (ours on raft-wal, durable workloads only), theirs (hashicorp/raft)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole invocation to this file (with -builds, of one build)")
	workloads, ok := flags.Parse(fs, args, stderr)
	if !ok {
		return 2
	}
	stopProfiles, err := benchload.StartProfiles(*cpuProfile, "")
	if err != nil {
		fmt.Fprintln(stderr, "versus:", err)
		return 1
	}
	defer stopProfiles()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	ours := contender{"quorumkit", benchload.StartQuorumkit}
	core := contender{"quorumkit-raftwal", benchload.StartQuorumkitOn(openRaftWAL)}
	theirs := contender{"hashicorp", startHashicorp}
	selected, err := parseBuilds(*buildList)
	if err != nil {
		fmt.Fprintln(stderr, "versus: -builds:", err)
		return 2
	}
	encoder := json.NewEncoder(stdout)
	var rows []benchload.Comparison
	var all []benchload.Result
	for _, w := range workloads {
		var builds []contender
		if selected["stack"] {
			builds = append(builds, ours)
		}
		if selected["core"] && w.Durable() {
			builds = append(builds, core)
		}
		if selected["theirs"] {
			builds = append(builds, theirs)
		}
		results, err := runAlternating(ctx, w, builds, flags, encoder, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "versus:", err)
			return 1
		}
		row := benchload.Comparison{
			Workload: w,
			Ours:     benchload.MedianResult(results[ours.name]),
			Core:     benchload.MedianResult(results[core.name]),
			Theirs:   benchload.MedianResult(results[theirs.name]),
		}
		rows = append(rows, row)
		for _, r := range []benchload.Result{row.Ours, row.Core, row.Theirs} {
			if r.Library != "" {
				all = append(all, r)
			}
		}
	}
	if flags.JSON {
		return 0
	}
	fmt.Fprintf(stdout, "medians of %d alternating runs of %s each (after %s warm-up); stack = quorumkit on its wal, "+
		"core = quorumkit on raft-wal %s, theirs = hashicorp/raft on raft-wal\n\n",
		flags.Runs, flags.Duration, flags.Warmup, raftWALVersion())
	if err := benchload.WriteComparison(stdout, rows); err != nil {
		fmt.Fprintln(stderr, "versus:", err)
		return 1
	}
	fmt.Fprintln(stdout)
	if err := benchload.WriteTable(stdout, all); err != nil {
		fmt.Fprintln(stderr, "versus:", err)
		return 1
	}
	return 0
}

// parseBuilds reads the -builds list into the set of build names it holds.
func parseBuilds(list string) (map[string]bool, error) {
	selected := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name != "stack" && name != "core" && name != "theirs" {
			return nil, fmt.Errorf("unknown build %q (want stack, core or theirs)", name)
		}
		selected[name] = true
	}
	return selected, nil
}

// runAlternating runs w flags.Runs times on every build, rotating which goes
// first, and returns the results by library name. With -json it prints each
// result as it comes; it warns on stderr of runs in which Apply calls failed.
func runAlternating(ctx context.Context, w benchload.Workload, builds []contender, flags *benchload.Flags,
	encoder *json.Encoder, stderr io.Writer) (map[string][]benchload.Result, error) {
	results := map[string][]benchload.Result{}
	for i := range flags.Runs {
		// Rotate who goes first, so no build always runs on the
		// machine another just warmed up (or heated).
		for j := range builds {
			c := builds[(i+j)%len(builds)]
			res, err := benchload.Bench(ctx, c.name, w, flags.Options(c.name), c.start)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			if res.Errors > 0 {
				fmt.Fprintf(stderr, "versus: %s %s: %d Apply calls failed, the first with: %s\n",
					c.name, w.Name(), res.Errors, res.FirstError)
			}
			if flags.JSON {
				if err := encoder.Encode(res); err != nil {
					return nil, err
				}
			}
			results[c.name] = append(results[c.name], res)
		}
	}
	return results, nil
}
