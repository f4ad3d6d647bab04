package benchload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster is a running cluster under test, whatever library it is built
// with.
type Cluster interface {
	// Apply replicates cmd through the current leader and returns once the
	// leader's FSM has applied it, or with the error the library reported.
	// It is called by many clients at once. cmd is not modified after the
	// call, and the cluster may keep it.
	Apply(cmd []byte) error
	// Close stops every node and releases their stores and transports.
	Close() error
}

// StartFunc starts a cluster for w, keeping any files under dir (which
// exists, is empty, and is removed after Close). It returns once the
// cluster has a leader that can take Apply calls.
type StartFunc func(w Workload, dir string) (Cluster, error)

// Result is the outcome of one run, in the form -json prints.
type Result struct {
	Library      string `json:"library"`
	Workload     string `json:"workload"`
	Nodes        int    `json:"nodes"`
	Clients      int    `json:"clients"`
	PayloadBytes int    `json:"payload_bytes"`
	Transport    string `json:"transport"`
	Store        string `json:"store"`

	WarmupSeconds   float64 `json:"warmup_s"`
	DurationSeconds float64 `json:"duration_s"` // the measured window as it actually elapsed
	Ops             uint64  `json:"ops"`        // Apply calls that succeeded within the window
	Errors          uint64  `json:"errors"`     // Apply calls that failed within the window
	FirstError      string  `json:"first_error,omitempty"`

	OpsPerSec  float64 `json:"ops_per_sec"`
	LatMeanMs  float64 `json:"lat_mean_ms"`
	LatP50Ms   float64 `json:"lat_p50_ms"`
	LatP90Ms   float64 `json:"lat_p90_ms"`
	LatP99Ms   float64 `json:"lat_p99_ms"`
	LatP999Ms  float64 `json:"lat_p999_ms"`
	LatMaxMs   float64 `json:"lat_max_ms"`
	CPUUsPerOp float64 `json:"cpu_us_per_op"` // user+sys time of the whole process over the window, per op; 0 where the OS does not say
	// AllocsPerOp counts heap allocations of the whole process (every node
	// and the clients) over the window, per op.
	AllocsPerOp float64 `json:"allocs_per_op"`

	// Batching over the window, where the cluster counts it (BatchCounts;
	// 0 otherwise). EntriesPerFsync is log entries per StoreLogs call (one
	// fdatasync each) over all nodes, LeaderEntriesPerFsync and
	// FollowerEntriesPerFsync the same for the leader and the followers;
	// EntriesPerRPC is entries per AppendEntries request that carried any;
	// FsyncsPerOp and RPCsPerOp are those StoreLogs calls and requests
	// per Apply.
	EntriesPerFsync         float64 `json:"entries_per_fsync,omitempty"`
	LeaderEntriesPerFsync   float64 `json:"leader_entries_per_fsync,omitempty"`
	FollowerEntriesPerFsync float64 `json:"follower_entries_per_fsync,omitempty"`
	EntriesPerRPC           float64 `json:"entries_per_rpc,omitempty"`
	FsyncsPerOp             float64 `json:"fsyncs_per_op,omitempty"`
	RPCsPerOp               float64 `json:"rpcs_per_op,omitempty"`

	// The machine's limits, measured just before the cluster started, on
	// the file system of its stores and on loopback.
	LimitFsyncP50Ms float64 `json:"limit_fsync_p50_ms"` // 4 KiB append + fdatasync
	LimitRTTP50Ms   float64 `json:"limit_rtt_p50_ms"`   // 128-byte TCP ping-pong on 127.0.0.1
	// LimitFsyncNodesP50Ms is the fsync limit with one writer per node,
	// all at once: the cost of one durable write while the whole cluster
	// writes to the same file system.
	LimitFsyncNodesP50Ms float64 `json:"limit_fsync_nodes_p50_ms"`

	GoVersion  string `json:"go_version"`
	OS         string `json:"goos"`
	Arch       string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	StartedAt  string `json:"started_at"` // RFC 3339
}

// clientState is what one client goroutine records; each client writes
// only its own, so recording takes no lock. The padding keeps the counters
// of neighbouring clients off one cache line.
type clientState struct {
	hist      Histogram
	completed atomic.Uint64 // every finished call, for the progress line
	errors    uint64
	firstErr  error
	_         [64]byte
}

// Run phases.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

// clientGrace bounds how long Run waits for clients to finish their last
// call once the window has closed: a call stuck beyond it means the
// cluster is broken.
const clientGrace = 30 * time.Second

// Run drives w against c: w.Clients goroutines call Apply back to back,
// first for opts.Warmup, then for the measured opts.Duration. A call counts
// when it finishes inside the window; its latency is the whole call. Run
// does not close c.
func Run(ctx context.Context, c Cluster, w Workload, opts Options) (Result, error) {
	if err := w.Validate(); err != nil {
		return Result{}, err
	}
	if opts.Duration <= 0 {
		return Result{}, errors.New("benchload: duration must be positive")
	}
	if opts.Warmup < 0 {
		return Result{}, errors.New("benchload: warmup must not be negative")
	}
	started := time.Now()
	l := startLoad(ctx, c, w)
	p := newProgress(opts.Progress, w, l.clients)
	if opts.Progress != nil {
		defer opts.Progress("")
	}
	if opts.Warmup > 0 && !p.wait(ctx, "warmup", opts.Warmup) {
		return l.abort(ctx, w)
	}
	runtime.GC() // the warm-up's garbage is not the window's to collect
	start := startWindow(c)
	l.phase.Store(phaseMeasure)
	if !p.wait(ctx, "measure", opts.Duration) {
		return l.abort(ctx, w)
	}
	l.phase.Store(phaseDone)
	used := start.end()

	select {
	case <-l.finished:
	case <-time.After(clientGrace):
		return Result{}, fmt.Errorf("benchload: %s: Apply calls still blocked %s after the run ended", w.Name(), clientGrace)
	}
	return newResult(w, opts, started, used, l.clients), nil
}

// load is the set of client goroutines of one Run and the phase they are in.
type load struct {
	clients  []clientState
	phase    atomic.Int32
	finished chan struct{} // closed when every client has returned
}

// startLoad starts w.Clients goroutines that call c.Apply back to back until
// the phase is phaseDone or ctx ends, recording calls that finish in the
// measured phase.
func startLoad(ctx context.Context, c Cluster, w Workload) *load {
	l := &load{clients: make([]clientState, w.Clients), finished: make(chan struct{})}
	var wg sync.WaitGroup
	for i := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs := &l.clients[i]
			cmd := make([]byte, w.Payload)
			for j := range cmd {
				cmd[j] = byte(i + j)
			}
			for l.phase.Load() != phaseDone && ctx.Err() == nil {
				begin := time.Now()
				err := c.Apply(cmd)
				elapsed := time.Since(begin)
				cs.completed.Add(1)
				if l.phase.Load() != phaseMeasure {
					continue
				}
				if err != nil {
					cs.errors++
					if cs.firstErr == nil {
						cs.firstErr = err
					}
					continue
				}
				cs.hist.Record(elapsed)
			}
		}()
	}
	go func() { wg.Wait(); close(l.finished) }()
	return l
}

// abort stops the clients, waits for them, and reports that ctx ended the run.
func (l *load) abort(ctx context.Context, w Workload) (Result, error) {
	l.phase.Store(phaseDone)
	<-l.finished
	return Result{}, fmt.Errorf("benchload: %s: %w", w.Name(), ctx.Err())
}

// progress reports the clients' rate through report (nil: no reports).
type progress struct {
	report    func(string)
	name      string
	clients   []clientState
	lastCount uint64
	lastTime  time.Time
}

func newProgress(report func(string), w Workload, clients []clientState) *progress {
	return &progress{report: report, name: w.Name(), clients: clients, lastTime: time.Now()}
}

// line reports the calls completed since the previous line, per second.
func (p *progress) line(stage string, since time.Time, of time.Duration) {
	if p.report == nil {
		return
	}
	var count uint64
	for i := range p.clients {
		count += p.clients[i].completed.Load()
	}
	now := time.Now()
	rate := float64(count-p.lastCount) / now.Sub(p.lastTime).Seconds()
	p.lastCount, p.lastTime = count, now
	p.report(fmt.Sprintf("%s: %s %s/%s, %s ops/s", p.name, stage,
		now.Sub(since).Round(time.Second), of, formatThousands(rate)))
}

// wait sleeps for d, reporting progress about once a second; it returns
// false when ctx ends first.
func (p *progress) wait(ctx context.Context, stage string, d time.Duration) bool {
	since := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-tick.C:
			p.line(stage, since, d)
		}
	}
}

// window holds what the process had used when the measured window opened.
type window struct {
	mem      runtime.MemStats
	cpu      time.Duration
	cpuKnown bool
	counter  BatchCounter
	counts   BatchCounts
	openedAt time.Time
}

// usage is what the process used over the measured window.
type usage struct {
	elapsed  time.Duration
	cpu      time.Duration
	cpuKnown bool
	mallocs  uint64
	counted  bool
	counts   BatchCounts
}

// startWindow reads the process's counters as the window opens.
func startWindow(c Cluster) *window {
	w := &window{}
	runtime.ReadMemStats(&w.mem)
	w.cpu, w.cpuKnown = processCPUTime()
	if counter, ok := c.(BatchCounter); ok {
		w.counter = counter
		w.counts = counter.BatchCounts()
	}
	w.openedAt = time.Now()
	return w
}

// end reads the counters again as the window closes.
func (w *window) end() usage {
	u := usage{elapsed: time.Since(w.openedAt), cpuKnown: w.cpuKnown}
	cpu, _ := processCPUTime()
	u.cpu = cpu - w.cpu
	if w.counter != nil {
		u.counted = true
		u.counts = w.counter.BatchCounts().Sub(w.counts)
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	u.mallocs = mem.Mallocs - w.mem.Mallocs
	return u
}

// newResult merges the clients' records into the Result of the window.
func newResult(w Workload, opts Options, started time.Time, used usage, clients []clientState) Result {
	var hist Histogram
	var errCount uint64
	var firstErr error
	for i := range clients {
		hist.Merge(&clients[i].hist)
		errCount += clients[i].errors
		if firstErr == nil {
			firstErr = clients[i].firstErr
		}
	}
	res := Result{
		Workload:        w.Name(),
		Nodes:           w.Nodes,
		Clients:         w.Clients,
		PayloadBytes:    w.Payload,
		Transport:       w.Transport,
		Store:           w.Store,
		WarmupSeconds:   opts.Warmup.Seconds(),
		DurationSeconds: used.elapsed.Seconds(),
		Ops:             hist.Count(),
		Errors:          errCount,
		OpsPerSec:       float64(hist.Count()) / used.elapsed.Seconds(),
		LatMeanMs:       ms(hist.Mean()),
		LatP50Ms:        ms(hist.Quantile(0.50)),
		LatP90Ms:        ms(hist.Quantile(0.90)),
		LatP99Ms:        ms(hist.Quantile(0.99)),
		LatP999Ms:       ms(hist.Quantile(0.999)),
		LatMaxMs:        ms(hist.Max()),
		GoVersion:       runtime.Version(),
		OS:              runtime.GOOS,
		Arch:            runtime.GOARCH,
		NumCPU:          runtime.NumCPU(),
		GOMAXPROCS:      runtime.GOMAXPROCS(0),
		StartedAt:       started.UTC().Format(time.RFC3339),
	}
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	if ops := float64(hist.Count()); ops > 0 {
		if used.cpuKnown {
			res.CPUUsPerOp = float64(used.cpu.Microseconds()) / ops
		}
		res.AllocsPerOp = float64(used.mallocs) / ops
		if used.counted {
			res.setBatching(used.counts, ops)
		}
	}
	return res
}

// setBatching fills the batching figures from the counts of a window in
// which ops Apply calls succeeded.
func (r *Result) setBatching(c BatchCounts, ops float64) {
	per := func(a, b uint64) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	r.EntriesPerFsync = per(c.LeaderEntries+c.FollowerEntries, c.LeaderStores+c.FollowerStores)
	r.LeaderEntriesPerFsync = per(c.LeaderEntries, c.LeaderStores)
	r.FollowerEntriesPerFsync = per(c.FollowerEntries, c.FollowerStores)
	r.EntriesPerRPC = per(c.SentEntries, c.AppendRPCs)
	r.FsyncsPerOp = float64(c.LeaderStores+c.FollowerStores) / ops
	r.RPCsPerOp = float64(c.AppendRPCs) / ops
}

// Bench runs w once against the library that start builds: it makes a
// temporary directory under opts.TempDir, measures the machine's limits
// there and on loopback, starts the cluster, runs the load, closes the
// cluster and removes the directory.
func Bench(ctx context.Context, library string, w Workload, opts Options, start StartFunc) (Result, error) {
	if err := w.Validate(); err != nil {
		return Result{}, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "raftbench-")
	if err != nil {
		return Result{}, fmt.Errorf("benchload: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	fsync, err := MeasureFsync(dir, fsyncSamples)
	if err != nil {
		return Result{}, err
	}
	fsyncNodes, err := MeasureFsyncConcurrent(dir, w.Nodes, fsyncSamples)
	if err != nil {
		return Result{}, err
	}
	rtt, err := MeasureRTT(rttSamples)
	if err != nil {
		return Result{}, err
	}
	runtime.GC()
	cluster, err := start(w, dir)
	if err != nil {
		return Result{}, fmt.Errorf("benchload: %s: start %s cluster: %w", w.Name(), library, err)
	}
	res, runErr := Run(ctx, cluster, w, opts)
	closeErr := cluster.Close()
	if runErr != nil {
		return Result{}, runErr
	}
	if closeErr != nil {
		return Result{}, fmt.Errorf("benchload: %s: close %s cluster: %w", w.Name(), library, closeErr)
	}
	res.Library = library
	res.LimitFsyncP50Ms = ms(fsync)
	res.LimitRTTP50Ms = ms(rtt)
	res.LimitFsyncNodesP50Ms = ms(fsyncNodes)
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
