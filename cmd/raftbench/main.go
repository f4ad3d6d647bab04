// Command raftbench measures quorumkit/raft end to end: it starts a cluster
// of -nodes nodes in this process, connected by the in-memory or the TCP
// transport (on 127.0.0.1), with in-memory stores or the durable wal store
// (fsync on, in a temporary directory), and has -clients goroutines call
// Apply on the leader with -payload-byte commands for -duration after
// -warmup. It prints a table, or with -json one JSON object per run, with
// throughput, latency percentiles, CPU and allocations per operation, and
// the machine's limits measured in the same run: one 4 KiB append with
// fdatasync on the stores' file system, and one 128-byte round trip on
// loopback.
//
// The standard matrix, whose figures the README quotes:
//
//	go run ./cmd/raftbench -workloads default
//
// One workload:
//
//	go run ./cmd/raftbench -transport tcp -store wal -clients 16
//
// The same workloads against hashicorp/raft, side by side, are run by
// compat/cmd/versus.
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

// library names this library in results.
const library = "quorumkit"

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("raftbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := benchload.RegisterFlags(fs, 10*time.Second, 2*time.Second, 1)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured windows to this file")
	traceFile := fs.String("trace", "", "write an execution trace of the whole run to this file (go tool trace; -pprof=sync or sched shows where goroutines wait)")
	workloads, ok := flags.Parse(fs, args, stderr)
	if !ok {
		return 2
	}
	stopProfiles, err := benchload.StartProfiles(*cpuProfile, *traceFile)
	if err != nil {
		fmt.Fprintln(stderr, "raftbench:", err)
		return 1
	}
	defer stopProfiles()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	opts := flags.Options("")
	encoder := json.NewEncoder(stdout)
	var summary []benchload.Result
	for _, w := range workloads {
		var runs []benchload.Result
		for range flags.Runs {
			res, err := benchload.Bench(ctx, library, w, opts, benchload.StartQuorumkit)
			if err != nil {
				fmt.Fprintln(stderr, "raftbench:", err)
				return 1
			}
			if res.Errors > 0 {
				fmt.Fprintf(stderr, "raftbench: %s: %d Apply calls failed, the first with: %s\n", w.Name(), res.Errors, res.FirstError)
			}
			if flags.JSON {
				if err := encoder.Encode(res); err != nil {
					fmt.Fprintln(stderr, "raftbench:", err)
					return 1
				}
			}
			runs = append(runs, res)
		}
		summary = append(summary, benchload.MedianResult(runs))
	}
	if flags.JSON {
		return 0
	}
	if flags.Runs > 1 {
		fmt.Fprintf(stdout, "medians of %d runs of %s each\n", flags.Runs, flags.Duration)
	}
	if err := benchload.WriteTable(stdout, summary); err != nil {
		fmt.Fprintln(stderr, "raftbench:", err)
		return 1
	}
	return 0
}
