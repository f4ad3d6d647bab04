package benchload

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Flags are the command-line settings raftbench and versus share.
type Flags struct {
	Nodes     int
	Transport string
	Store     string
	Clients   int
	Payload   int
	Workloads string
	Duration  time.Duration
	Warmup    time.Duration
	Runs      int
	JSON      bool
	Quiet     bool
	TempDir   string
}

// RegisterFlags defines the shared flags on fs with the given defaults for
// -duration, -warmup and -runs.
func RegisterFlags(fs *flag.FlagSet, duration, warmup time.Duration, runs int) *Flags {
	f := &Flags{}
	fs.IntVar(&f.Nodes, "nodes", 3, "cluster size")
	fs.StringVar(&f.Transport, "transport", TransportInmem, "transport: inmem or tcp (127.0.0.1)")
	fs.StringVar(&f.Store, "store", StoreInmem, "log store: inmem, or wal (durable, fsync on, in a temp dir)")
	fs.IntVar(&f.Clients, "clients", 1, "concurrent clients calling Apply on the leader")
	fs.IntVar(&f.Payload, "payload", 128, "bytes per command")
	fs.StringVar(&f.Workloads, "workloads", "",
		`"default" for the standard matrix, or a comma-separated list such as tcp-wal-c16-p128 (transport-store-cC-pP[-nN]); empty runs the one workload the other flags describe`)
	fs.DurationVar(&f.Duration, "duration", duration, "measured time per run")
	fs.DurationVar(&f.Warmup, "warmup", warmup, "load before measuring, per run")
	fs.IntVar(&f.Runs, "runs", runs, "runs per workload; tables show the median")
	fs.BoolVar(&f.JSON, "json", false, "print one JSON object per run on stdout instead of the table")
	fs.BoolVar(&f.Quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&f.TempDir, "dir", "", "parent directory of the runs' temporary directories (default: the system's)")
	return f
}

// WorkloadList returns the workloads to run: the -workloads list, or the
// one the single-workload flags describe.
func (f *Flags) WorkloadList() ([]Workload, error) {
	if f.Workloads != "" {
		return ParseWorkloads(f.Workloads)
	}
	w := Workload{Nodes: f.Nodes, Transport: f.Transport, Store: f.Store, Clients: f.Clients, Payload: f.Payload}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return []Workload{w}, nil
}

// Check reports a flag value out of range.
func (f *Flags) Check() error {
	switch {
	case f.Duration <= 0:
		return errors.New("-duration must be positive")
	case f.Warmup < 0:
		return errors.New("-warmup must not be negative")
	case f.Runs < 1 || f.Runs > 100:
		return errors.New("-runs must be between 1 and 100")
	}
	return nil
}

// Options returns the run options, with a progress line on stderr unless
// -quiet.
func (f *Flags) Options(library string) Options {
	opts := Options{Warmup: f.Warmup, Duration: f.Duration, TempDir: f.TempDir}
	if !f.Quiet {
		opts.Progress = ProgressPrinter(os.Stderr, library)
	}
	return opts
}

// ProgressPrinter returns a Progress function that writes to out: over
// itself on a terminal, one line each otherwise.
func ProgressPrinter(out *os.File, prefix string) func(string) {
	terminal := false
	if info, err := out.Stat(); err == nil {
		terminal = info.Mode()&os.ModeCharDevice != 0
	}
	return func(line string) {
		if line == "" {
			if terminal {
				fmt.Fprintf(out, "\r%-100s\r", "")
			}
			return
		}
		if prefix != "" {
			line = prefix + " " + line
		}
		if terminal {
			fmt.Fprintf(out, "\r%-100s\r", strings.TrimSpace(line))
			return
		}
		fmt.Fprintln(out, line)
	}
}

// Parse parses args into fs (on which f was registered), refuses positional
// arguments and invalid values with a message on stderr prefixed by the
// command's name, and returns the workloads to run; ok is false when the
// command should exit with status 2.
func (f *Flags) Parse(fs *flag.FlagSet, args []string, stderr io.Writer) (workloads []Workload, ok bool) {
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return nil, false
	}
	err := f.Check()
	if err == nil {
		workloads, err = f.WorkloadList()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return nil, false
	}
	return workloads, true
}
