// Command versus runs the benchload workloads against quorumkit/raft and
// hashicorp/raft v1.7 (with hashicorp/raft-wal as its durable store) in one
// invocation, alternating the two libraries run by run so that both see the
// same machine, and prints the ratio ours/theirs for every row.
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
	workloads, ok := flags.Parse(fs, args, stderr)
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	ours := contender{"quorumkit", benchload.StartQuorumkit}
	theirs := contender{"hashicorp", startHashicorp}
	encoder := json.NewEncoder(stdout)
	var rows []benchload.Comparison
	var all []benchload.Result
	for _, w := range workloads {
		results := map[string][]benchload.Result{}
		for i := range flags.Runs {
			// Alternate who goes first, so neither always runs on the
			// machine the other just warmed up (or heated).
			order := []contender{ours, theirs}
			if i%2 == 1 {
				order = []contender{theirs, ours}
			}
			for _, c := range order {
				res, err := benchload.Bench(ctx, c.name, w, flags.Options(c.name), c.start)
				if err != nil {
					fmt.Fprintf(stderr, "versus: %s: %v\n", c.name, err)
					return 1
				}
				if res.Errors > 0 {
					fmt.Fprintf(stderr, "versus: %s %s: %d Apply calls failed, the first with: %s\n",
						c.name, w.Name(), res.Errors, res.FirstError)
				}
				if flags.JSON {
					if err := encoder.Encode(res); err != nil {
						fmt.Fprintln(stderr, "versus:", err)
						return 1
					}
				}
				results[c.name] = append(results[c.name], res)
			}
		}
		row := benchload.Comparison{
			Workload: w,
			Ours:     benchload.MedianResult(results[ours.name]),
			Theirs:   benchload.MedianResult(results[theirs.name]),
		}
		rows = append(rows, row)
		all = append(all, row.Ours, row.Theirs)
	}
	if flags.JSON {
		return 0
	}
	fmt.Fprintf(stdout, "medians of %d alternating runs of %s each (after %s warm-up), ratio = ours/theirs\n\n",
		flags.Runs, flags.Duration, flags.Warmup)
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
