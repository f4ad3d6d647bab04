// Package benchload is the workload behind every performance figure of
// quorumkit/raft: a cluster of N nodes in one process, C clients calling
// Apply on the leader with P-byte commands, the latency of every call in a
// histogram, and the machine's own limits (one fsync, one loopback round
// trip) measured in the same run. cmd/raftbench drives it against this
// library, and compat/cmd/versus drives the same code against
// hashicorp/raft, so that both are measured the same way.
//
// The package knows nothing of either library: a Cluster is anything that
// can Apply a command and Close.
package benchload

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Transport names.
const (
	TransportInmem = "inmem"
	TransportTCP   = "tcp"
)

// Store names.
const (
	StoreInmem = "inmem"
	StoreWAL   = "wal"
)

// Workload describes one benchmark run.
type Workload struct {
	Nodes     int    // cluster size
	Transport string // TransportInmem or TransportTCP (127.0.0.1)
	Store     string // StoreInmem or StoreWAL (a durable log in a temp dir, fsync on)
	Clients   int    // concurrent callers of Apply
	Payload   int    // bytes per command
}

// Durable reports whether the workload writes its log to disk.
func (w Workload) Durable() bool { return w.Store == StoreWAL }

// Name is the short form ParseWorkload reads back, such as
// "tcp-wal-c16-p128" (the node count is added as "-n5" when it is not 3).
func (w Workload) Name() string {
	name := fmt.Sprintf("%s-%s-c%d-p%d", w.Transport, w.Store, w.Clients, w.Payload)
	if w.Nodes != 3 {
		name += fmt.Sprintf("-n%d", w.Nodes)
	}
	return name
}

// MaxPayload bounds -payload: a command well beyond what anyone replicates
// through Raft, and below the transports' message limits.
const MaxPayload = 8 << 20

// MaxClients bounds -clients.
const MaxClients = 100_000

// MaxNodes bounds -nodes.
const MaxNodes = 15

// Validate reports the first field that is out of range.
func (w Workload) Validate() error {
	switch {
	case w.Nodes < 1 || w.Nodes > MaxNodes:
		return fmt.Errorf("benchload: nodes %d: must be between 1 and %d", w.Nodes, MaxNodes)
	case w.Transport != TransportInmem && w.Transport != TransportTCP:
		return fmt.Errorf("benchload: transport %q: must be %q or %q", w.Transport, TransportInmem, TransportTCP)
	case w.Store != StoreInmem && w.Store != StoreWAL:
		return fmt.Errorf("benchload: store %q: must be %q or %q", w.Store, StoreInmem, StoreWAL)
	case w.Clients < 1 || w.Clients > MaxClients:
		return fmt.Errorf("benchload: clients %d: must be between 1 and %d", w.Clients, MaxClients)
	case w.Payload < 0 || w.Payload > MaxPayload:
		return fmt.Errorf("benchload: payload %d: must be between 0 and %d bytes", w.Payload, MaxPayload)
	}
	return nil
}

// ParseWorkload reads the form Name writes: transport-store-cC-pP, with an
// optional -nN; the parts after the store may come in any order, and those
// left out default to 3 nodes, 1 client and 128 bytes.
func ParseWorkload(s string) (Workload, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) < 2 {
		return Workload{}, fmt.Errorf("benchload: workload %q: want transport-store[-cC][-pP][-nN]", s)
	}
	w := Workload{Nodes: 3, Transport: parts[0], Store: parts[1], Clients: 1, Payload: 128}
	for _, part := range parts[2:] {
		if len(part) < 2 {
			return Workload{}, fmt.Errorf("benchload: workload %q: bad part %q", s, part)
		}
		n, err := strconv.Atoi(part[1:])
		if err != nil {
			return Workload{}, fmt.Errorf("benchload: workload %q: bad part %q", s, part)
		}
		switch part[0] {
		case 'c':
			w.Clients = n
		case 'p':
			w.Payload = n
		case 'n':
			w.Nodes = n
		default:
			return Workload{}, fmt.Errorf("benchload: workload %q: bad part %q (want cN, pN or nN)", s, part)
		}
	}
	if err := w.Validate(); err != nil {
		return Workload{}, fmt.Errorf("benchload: workload %q: %w", s, err)
	}
	return w, nil
}

// ParseWorkloads reads a comma-separated list of workloads, or "default"
// for the standard matrix.
func ParseWorkloads(s string) ([]Workload, error) {
	if strings.TrimSpace(s) == "default" {
		return Matrix(), nil
	}
	var out []Workload
	for _, item := range strings.Split(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		w, err := ParseWorkload(item)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, errors.New("benchload: no workload given")
	}
	return out, nil
}

// Target is the goal a row of the standard matrix is held to, measured in
// one invocation side by side with hashicorp/raft.
type Target struct {
	// Text states the goal for a reader.
	Text string
	// Met reports whether a row of the side-by-side table reaches the goal.
	Met func(c Comparison) bool
}

// Row is one line of the standard matrix.
type Row struct {
	Workload Workload
	Target   Target
}

// StandardRows returns the standard matrix with its targets: 3 nodes,
// 128-byte commands unless stated. The in-memory rows are held to their
// throughput against theirs. Every durable row is also held to CPU per
// operation at most half of theirs and, when our core on raft-wal was run,
// our stack at least as fast as it; C=1 to a p50 within 1.3 times the fair
// limit when the three nodes share one disk (fdatasync with one writer per
// node at once, plus a round trip) and 1.5 times theirs in ops/s; the
// loaded rows to 3 times theirs in ops/s with p99 at most half of theirs.
func StandardRows() []Row {
	opsAtLeast := func(factor float64) func(c Comparison) bool {
		return func(c Comparison) bool { return c.Ours.OpsPerSec >= factor*c.Theirs.OpsPerSec }
	}
	durable := func(c Comparison) bool {
		if c.Ours.CPUUsPerOp > 0.5*c.Theirs.CPUUsPerOp {
			return false
		}
		return c.Core.Library == "" || c.Ours.OpsPerSec >= c.Core.OpsPerSec
	}
	nearLimit := func(c Comparison) bool {
		limit := 1.3 * (c.Ours.LimitFsyncNodesP50Ms + c.Ours.LimitRTTP50Ms)
		return c.Ours.LatP50Ms <= limit && opsAtLeast(1.5)(c) && durable(c)
	}
	loaded := func(c Comparison) bool {
		return opsAtLeast(3)(c) && c.Ours.LatP99Ms <= 0.5*c.Theirs.LatP99Ms && durable(c)
	}
	const durableText = ", CPU ≤ 0.5× theirs, stack ≥ core"
	w := func(transport, store string, clients, payload int) Workload {
		return Workload{Nodes: 3, Transport: transport, Store: store, Clients: clients, Payload: payload}
	}
	return []Row{
		{w(TransportInmem, StoreInmem, 1, 128), Target{"ops/s ≥ 2× theirs", opsAtLeast(2)}},
		{w(TransportInmem, StoreInmem, 256, 128), Target{"ops/s ≥ 3× theirs", opsAtLeast(3)}},
		{w(TransportTCP, StoreWAL, 1, 128), Target{"p50 ≤ 1.3 × (fsync×n + rtt), ops/s ≥ 1.5×" + durableText, nearLimit}},
		{w(TransportTCP, StoreWAL, 16, 128), Target{"ops/s ≥ 3×, p99 ≤ 0.5×" + durableText, loaded}},
		{w(TransportTCP, StoreWAL, 256, 128), Target{"ops/s ≥ 3×, p99 ≤ 0.5×" + durableText, loaded}},
		{w(TransportTCP, StoreWAL, 64, 4096), Target{"ops/s ≥ 3×, p99 ≤ 0.5×" + durableText, loaded}},
	}
}

// Matrix returns the workloads of the standard matrix.
func Matrix() []Workload {
	rows := StandardRows()
	out := make([]Workload, len(rows))
	for i, r := range rows {
		out[i] = r.Workload
	}
	return out
}

// TargetFor returns the target of w when it is a row of the standard
// matrix.
func TargetFor(w Workload) (Target, bool) {
	for _, r := range StandardRows() {
		if r.Workload == w {
			return r.Target, true
		}
	}
	return Target{}, false
}

// Options are the timing of a run.
type Options struct {
	Warmup   time.Duration // load before measuring, not counted
	Duration time.Duration // the measured window
	// Progress, when not nil, receives a one-line status about once a
	// second while the run goes on, and "" once when it ends (to clear a
	// line drawn over itself).
	Progress func(line string)
	// TempDir is where Bench makes each run's directory; "" means the
	// system default (os.TempDir).
	TempDir string
}
