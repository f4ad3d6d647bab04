package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

// demoFlags are the settings of `raftkv demo`.
type demoFlags struct {
	keys      int
	writers   int
	valueSize int
	logLevel  string
}

// demo is a three-node cluster in one process, with what the walkthrough
// needs to restart a node where it was.
type demo struct {
	out     io.Writer
	dir     string
	level   hclog.Level
	nodes   []*node // nil while a node is down
	configs []nodeConfig
	timeout time.Duration // bound on every wait for the cluster
}

// runDemo starts three nodes over loopback TCP, writes keys, kills the leader,
// checks the survivors, restarts the old leader and watches it catch up.
func runDemo(args []string, out io.Writer) error {
	var f demoFlags
	fs := flag.NewFlagSet("raftkv demo", flag.ContinueOnError)
	fs.IntVar(&f.keys, "keys", 10000, "how many keys to write")
	fs.IntVar(&f.writers, "writers", 64, "concurrent writers")
	fs.IntVar(&f.valueSize, "value-size", 64, "bytes per value")
	fs.StringVar(&f.logLevel, "log-level", "off", "log level of the nodes (to stderr)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("demo: unexpected argument %q", fs.Arg(0))
	case f.keys < 1, f.writers < 1, f.valueSize < 16:
		return errors.New("demo: -keys and -writers must be positive and -value-size at least 16")
	}
	level, err := parseLogLevel(f.logLevel)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "raftkv-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{out: out, dir: dir, level: level, timeout: 30 * time.Second}
	defer d.stopAll()
	return d.run(f)
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(f demoFlags) error {
	d.printf("Starting 3 nodes on 127.0.0.1 with write-ahead logs in %s\n", d.dir)
	start := time.Now()
	if err := d.startCluster(); err != nil {
		return err
	}
	leader, err := d.waitForLeader(-1)
	if err != nil {
		return err
	}
	d.printf("%s leads (elected %v after start, term %d)\n\n", d.nodes[leader].id, roundDuration(time.Since(start)), d.nodes[leader].raft.CurrentTerm())

	d.printf("Writing %d keys with %d concurrent writers\n", f.keys, f.writers)
	writeTime, err := d.writeKeys(0, f.keys, f)
	if err != nil {
		return err
	}
	rate := float64(f.keys) / writeTime.Seconds()
	d.printf("Wrote %d keys in %v: %.0f writes/s, each durable on a majority before acknowledged\n\n", f.keys, roundDuration(writeTime), rate)

	leader, err = d.waitForLeader(-1)
	if err != nil {
		return err
	}
	oldLeader := d.nodes[leader]
	d.printf("Killing the leader, %s, without handing leadership over\n", oldLeader.id)
	killedAt := time.Now()
	if err := oldLeader.close(false); err != nil {
		return fmt.Errorf("stop %s: %w", oldLeader.id, err)
	}
	d.nodes[leader] = nil
	newLeader, err := d.waitForLeader(leader)
	if err != nil {
		return err
	}
	electionTime := time.Since(killedAt)
	d.printf("%s took over after %v (term %d)\n", d.nodes[newLeader].id, roundDuration(electionTime), d.nodes[newLeader].raft.CurrentTerm())

	survivors := d.running()
	if err := d.checkKeys(survivors, 0, f.keys, f.valueSize); err != nil {
		return err
	}
	d.printf("All %d keys readable on %s\n\n", f.keys, nodeNames(survivors))

	extra := max(f.keys/10, 1)
	if _, err := d.writeKeys(f.keys, extra, f); err != nil {
		return err
	}
	d.printf("Wrote %d more keys while %s was down\n", extra, oldLeader.id)

	restartedAt := time.Now()
	restarted, err := openNode(d.configs[leader])
	if err != nil {
		return fmt.Errorf("restart %s: %w", oldLeader.id, err)
	}
	d.nodes[leader] = restarted
	d.printf("Restarted %s: its log on disk ends at index %d\n", restarted.id, restarted.raft.LastIndex())
	target := d.nodes[newLeader].raft.CommitIndex()
	if err := d.waitUntil(func() bool {
		return restarted.raft.AppliedIndex() >= target
	}); err != nil {
		return fmt.Errorf("%s did not catch up to index %d (applied %d): %w", restarted.id, target, restarted.raft.AppliedIndex(), err)
	}
	catchUpTime := time.Since(restartedAt)
	if err := d.checkKeys([]*node{restarted}, 0, f.keys+extra, f.valueSize); err != nil {
		return err
	}
	d.printf("%s caught up to index %d in %v and serves all %d keys\n\n", restarted.id, target, roundDuration(catchUpTime), f.keys+extra)

	// Followers learn the last commit index with the next heartbeat: let
	// every node apply it before the summary shows their indexes.
	final := d.nodes[newLeader].raft.CommitIndex()
	if err := d.waitUntil(func() bool {
		for _, n := range d.nodes {
			if n.raft.AppliedIndex() < final {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("nodes did not all apply index %d: %w", final, err)
	}

	d.printf("Summary\n")
	d.printf("  writes:             %d keys at %.0f writes/s (%d writers, %d-byte values)\n", f.keys, rate, f.writers, f.valueSize)
	d.printf("  failover:           new leader %v after the old one died\n", roundDuration(electionTime))
	d.printf("  catch-up:           restarted node current after %v\n", roundDuration(catchUpTime))
	for _, n := range d.nodes {
		d.printf("  %-6s %-9s term %d, applied index %d, %d keys\n", n.id, n.raft.State(), n.raft.CurrentTerm(), n.raft.AppliedIndex(), n.fsm.size())
	}
	d.stopAll()
	d.printf("Stopped all nodes and removed %s\n", d.dir)
	return nil
}

// startCluster opens three nodes on free loopback ports and bootstraps them
// as one cluster (they learn each other's port only once bound, hence
// BootstrapCluster after NewRaft).
func (d *demo) startCluster() error {
	var servers []raft.Server
	for i := range 3 {
		id := fmt.Sprintf("node%d", i+1)
		cfg := nodeConfig{
			ID:       id,
			RaftAddr: "127.0.0.1:0",
			DataDir:  fmt.Sprintf("%s/%s", d.dir, id),
			Logger:   hclog.New(&hclog.LoggerOptions{Name: id, Level: d.level, Output: os.Stderr}),
		}
		n, err := openNode(cfg)
		if err != nil {
			return err
		}
		// A restart must come back on the same address, which peers know.
		cfg.RaftAddr = string(n.trans.LocalAddr())
		d.nodes = append(d.nodes, n)
		d.configs = append(d.configs, cfg)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: n.trans.LocalAddr()})
	}
	// Every server of the initial configuration is bootstrapped with it: a
	// server that is not in its own configuration refuses to vote.
	for _, n := range d.nodes {
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			return fmt.Errorf("bootstrap %s: %w", n.id, err)
		}
	}
	return nil
}

// running returns the nodes that are up.
func (d *demo) running() []*node {
	var up []*node
	for _, n := range d.nodes {
		if n != nil {
			up = append(up, n)
		}
	}
	return up
}

func (d *demo) stopAll() {
	for i, n := range d.nodes {
		if n != nil {
			_ = n.close(false)
			d.nodes[i] = nil
		}
	}
}

// waitUntil polls cond until it holds or d.timeout passes. The demo runs in
// real time against real sockets and disks, so polling is the honest way to
// watch it.
func (d *demo) waitUntil(cond func() bool) error {
	deadline := time.Now().Add(d.timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %v", d.timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// waitForLeader returns the index of the running node that leads, other
// than skip.
func (d *demo) waitForLeader(skip int) (int, error) {
	leader := -1
	err := d.waitUntil(func() bool {
		for i, n := range d.nodes {
			if i != skip && n != nil && n.isLeader() {
				leader = i
				return true
			}
		}
		return false
	})
	if err != nil {
		return -1, fmt.Errorf("no leader: %w", err)
	}
	return leader, nil
}

// demoKey and demoValue are the i-th key and its value.
func demoKey(i int) string { return fmt.Sprintf("key-%07d", i) }

func demoValue(i, size int) string {
	v := fmt.Sprintf("value-%d-", i)
	return v + strings.Repeat("x", max(size-len(v), 0))
}

// writeKeys writes keys first to first+count-1 through the leader with
// f.writers goroutines, showing progress, and returns how long it took. A
// write that fails because leadership moved is retried on the new leader.
func (d *demo) writeKeys(first, count int, f demoFlags) (time.Duration, error) {
	var next, done atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout+time.Duration(count)*time.Millisecond)
	defer cancel()
	errs := make(chan error, f.writers)
	var wg sync.WaitGroup
	start := time.Now()
	stopProgress := d.showProgress(&done, count, start)
	for range f.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				cmd := encodeCommand(opPut, demoKey(first+i), demoValue(first+i, f.valueSize))
				if err := d.applyRetrying(ctx, cmd); err != nil {
					errs <- err
					cancel()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	return elapsed, nil
}

// applyRetrying applies cmd on whichever node leads, retrying while
// leadership moves. Retrying a put is safe: it is idempotent.
func (d *demo) applyRetrying(ctx context.Context, cmd []byte) error {
	for {
		leader, err := d.waitForLeader(-1)
		if err != nil {
			return err
		}
		n := d.nodes[leader]
		if n == nil {
			continue
		}
		_, err = n.apply(ctx, cmd)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost):
			continue
		default:
			return err
		}
	}
}

// showProgress draws a progress bar until the returned function is called.
// On a terminal it redraws one line; otherwise it prints a line every 25%.
func (d *demo) showProgress(done *atomic.Int64, total int, start time.Time) (stop func()) {
	terminal := false
	if f, ok := d.out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	const width = 40
	draw := func(n int) string {
		filled := n * width / total
		rate := float64(n) / max(time.Since(start).Seconds(), 1e-9)
		return fmt.Sprintf("  [%s%s] %*d/%d  %6.0f writes/s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), len(fmt.Sprint(total)), n, total, rate)
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()
		lastQuarter := 0
		for {
			select {
			case <-quit:
				if terminal {
					d.printf("\r%s\n", draw(int(done.Load())))
				} else if lastQuarter < 4 {
					d.printf("%s\n", draw(int(done.Load())))
				}
				return
			case <-ticker.C:
				n := int(done.Load())
				if terminal {
					d.printf("\r%s", draw(n))
				} else if q := n * 4 / total; q > lastQuarter {
					lastQuarter = q
					d.printf("%s\n", draw(n))
				}
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// checkKeys waits until every node in nodes has applied what the leader
// has, then reads keys first to first+count-1 from each node's local state
// and compares them with what was written.
func (d *demo) checkKeys(nodes []*node, first, count, valueSize int) error {
	leader, err := d.waitForLeader(-1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	if err := d.nodes[leader].linearizableRead(ctx); err != nil {
		return fmt.Errorf("barrier on %s: %w", d.nodes[leader].id, err)
	}
	target := d.nodes[leader].raft.AppliedIndex()
	for _, n := range nodes {
		if err := d.waitUntil(func() bool { return n.raft.AppliedIndex() >= target }); err != nil {
			return fmt.Errorf("%s did not apply up to index %d: %w", n.id, target, err)
		}
		for i := first; i < first+count; i++ {
			got, ok := n.fsm.get(demoKey(i))
			if want := demoValue(i, valueSize); !ok || got != want {
				return fmt.Errorf("%s: key %s = %q (present %v), want %q", n.id, demoKey(i), got, ok, want)
			}
		}
	}
	return nil
}

func nodeNames(nodes []*node) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.id
	}
	return strings.Join(names, " and ")
}

// roundDuration keeps durations readable: milliseconds below ten seconds.
func roundDuration(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
