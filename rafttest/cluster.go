package rafttest

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
)

// StoreKind selects the log and stable store of a cluster's nodes.
type StoreKind int

const (
	// MemStores gives each node a raft.InmemStore and a
	// raft.InmemSnapshotStore. They survive Crash and Restart (they stand
	// for the node's disk) but not the test.
	MemStores StoreKind = iota
	// WALStores gives each node a wal.Store and a raft.FileSnapshotStore in
	// its own directory under t.TempDir(). Crash closes the store and
	// Restart reopens it, so every restart runs the wal's recovery.
	WALStores
)

func (k StoreKind) String() string {
	switch k {
	case MemStores:
		return "mem"
	case WALStores:
		return "wal"
	}
	return fmt.Sprintf("StoreKind(%d)", int(k))
}

// Options configures a Cluster. The zero value is a bootstrapped cluster of
// three voters running KV on in-memory stores.
type Options struct {
	// Voters is the number of voters bootstrapped into the cluster
	// (default 3).
	Voters int
	// Nonvoters is the number of nonvoters bootstrapped beside them.
	Nonvoters int

	// FSM returns a new state machine for a node. It is called again on
	// every Restart: a restarted node rebuilds its state from its snapshot
	// and log, as a restarted process would. Default: NewKV.
	FSM func(id raft.ServerID) raft.FSM

	// Config adjusts a node's configuration before the node starts (on
	// every start, restarts included). LocalID is already set. The kit's
	// defaults are fast timeouts (50ms heartbeat, election and lease
	// timeouts, 5ms commit timeout), ShutdownOnRemove off (a removed node
	// stays up and can be added back), and a silent logger unless
	// -rafttest.log is given. A node that shuts itself down counts as
	// crashed: Restart brings it back.
	Config func(conf *raft.Config)

	// Store selects the stores (default MemStores).
	Store StoreKind
	// WAL configures the wal stores; a nil Logger is replaced by the
	// node's logger.
	WAL wal.Options

	// SyncDelay is how long every store write takes to reach the disk,
	// and how long closing a snapshot (taken or installed) takes; a Crash
	// during that time loses it (see CrashableStore).
	SyncDelay time.Duration

	// Seed drives every random choice of the kit (dropped messages,
	// delays, what a crash keeps) and of its nodes (election, heartbeat and
	// snapshot timeouts: the nodes' transports hand raft a seed derived
	// from it). In a testing/synctest bubble a run is then a function of
	// its seed, up to the order of goroutines ready at the same virtual
	// instant. 0 means the -rafttest.seed flag, or a
	// fresh seed; either way it is printed if the test fails.
	Seed int64

	// WaitTimeout bounds the methods that wait and fail the test
	// (WaitForLeader, WaitForApplied, CheckConsistent); default 10s.
	WaitTimeout time.Duration

	// ReadMode is how the cluster's KV clients read (default ReadLog).
	// ReadLease also turns Config.LeaseReads on for every node, with a
	// MaxClockDrift of 5ms; the Config hook runs after and may change both.
	ReadMode ReadMode

	// ClockDrift, when set, gives a node's clock a drift ε on every start,
	// restarts included: the clock its elections and leases run on then
	// advances by (1+ε)·d while real (or virtual) time advances by d, and
	// its timers fire accordingly (ε > -1; 0 is a true clock). Lease reads
	// stay linearizable while any two nodes' rates differ by a factor of at
	// most HeartbeatTimeout/(HeartbeatTimeout-MaxClockDrift) (SafeClockDrift
	// gives the ε for which every pair of clocks within ±ε does); beyond that
	// an old leader's lease can outlive a new leader's election.
	ClockDrift func(id raft.ServerID) float64

	// FSMState returns what CheckConsistent compares between replicas
	// (with reflect.DeepEqual). Default: the bytes the FSM's snapshot
	// persists. Either way the FSM must tolerate being read while Raft
	// applies to it.
	FSMState func(fsm raft.FSM) (any, error)
}

// ErrClosed is returned by the cluster's methods after Close.
var ErrClosed = errors.New("rafttest: cluster closed")

// pollInterval is how often waits look at the nodes. Inside a
// testing/synctest bubble the sleeps between looks are virtual.
const pollInterval = 2 * time.Millisecond

// Cluster is a set of Raft nodes in one process, connected by in-memory
// transports that can be partitioned, slowed down and made lossy, with
// stores that survive crashes.
//
// Create it inside a testing/synctest bubble to run on virtual time; it
// starts no goroutine of its own outside the nodes, and Close (run on test
// cleanup) stops every goroutine it and its nodes started.
//
// Methods are safe for concurrent use. The ones that fail the test
// (WaitForLeader, WaitForApplied, CheckConsistent) call t.Fatalf and so
// must run on the test's goroutine; the others return errors.
type Cluster struct {
	t    testing.TB
	opts Options
	seed int64
	// dir holds the nodes' directories, for WALStores.
	dir string

	// mu guards everything below, and the mutable fields of every Node.
	mu       sync.Mutex
	nodes    []*Node
	byAddr   map[raft.ServerAddress]*Node
	cut      map[link]bool      // links that deliver nothing
	faults   map[link]LinkFault // faults of links that deliver
	linkRand map[linkStream]*linkRand
	closed   bool

	// waiters counts goroutines that wait on futures for Apply.
	waiters sync.WaitGroup

	// leaders records who led in which term, for CheckElectionSafety.
	leaders leaderships
	// applied records the entries KVs applied, for CheckStateMachineSafety.
	applied appliedLedger
}

// Node is one server of a Cluster.
type Node struct {
	c    *Cluster
	id   raft.ServerID
	addr raft.ServerAddress
	dir  string // wal and snapshots, for WALStores

	// life serializes Crash, Restart and Close of this node. It is a
	// channel, not a mutex, because waiting on a channel lets a
	// testing/synctest bubble advance time.
	life chan struct{}

	// Guarded by c.mu.
	live     bool
	raft     *raft.Raft
	fsm      raft.FSM
	disk     Store // the inner store: the node's disk
	store    *CrashableStore
	snaps    raft.SnapshotStore  // the node's disk
	runSnaps *crashableSnapshots // what the current run writes through
	trans    *raft.InmemTransport
	restarts int
}

// NewCluster starts a cluster and registers its Close with t.Cleanup.
// Unless a test fails, nothing is printed.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Voters == 0 {
		opts.Voters = 3
	}
	if opts.Voters < 0 || opts.Nonvoters < 0 {
		t.Fatalf("rafttest: Voters (%d) and Nonvoters (%d) must not be negative", opts.Voters, opts.Nonvoters)
	}
	if opts.FSM == nil {
		opts.FSM = func(raft.ServerID) raft.FSM { return NewKV() }
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 10 * time.Second
	}
	if opts.Store != MemStores && opts.Store != WALStores {
		t.Fatalf("rafttest: unknown store kind %v", opts.Store)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = NewSeed()
	}
	c := &Cluster{
		t: t, opts: opts, seed: seed,
		byAddr:   map[raft.ServerAddress]*Node{},
		cut:      map[link]bool{},
		faults:   map[link]LinkFault{},
		linkRand: map[linkStream]*linkRand{},
	}
	if opts.Store == WALStores {
		// Before Close is registered: cleanups run last first, so the
		// nodes stop before their directories are removed. (Made later,
		// the directory was removed under live nodes, and a node writing
		// a new file meanwhile failed the removal: "directory not
		// empty", chaos seed 5754.)
		c.dir = t.TempDir()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rafttest: cluster seed %d; replay with -rafttest.seed=%d", seed, seed)
		}
	})
	t.Cleanup(c.Close)

	var configuration raft.Configuration
	for i := range opts.Voters + opts.Nonvoters {
		n := c.addNode()
		suffrage := raft.Voter
		if i >= opts.Voters {
			suffrage = raft.Nonvoter
		}
		configuration.Servers = append(configuration.Servers, raft.Server{Suffrage: suffrage, ID: n.id, Address: n.addr})
	}
	for _, n := range c.nodes {
		if err := c.start(n, &configuration); err != nil {
			t.Fatalf("rafttest: start %s: %v", n.id, err)
		}
	}
	return c
}

// Seed returns the seed of the cluster's random choices.
func (c *Cluster) Seed() int64 { return c.seed }

// addNode registers a new, stopped node with the next free name.
func (c *Cluster) addNode() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := len(c.nodes) + 1
	n := &Node{
		c:    c,
		id:   raft.ServerID(fmt.Sprintf("node%d", i)),
		addr: raft.ServerAddress(fmt.Sprintf("inmem-node%d", i)),
		life: make(chan struct{}, 1),
	}
	if c.opts.Store == WALStores {
		n.dir = filepath.Join(c.dir, string(n.id))
	}
	c.nodes = append(c.nodes, n)
	c.byAddr[n.addr] = n
	return n
}

// AddNode starts a new node with empty stores, connected to the others but
// in no configuration: add it with AddVoter or AddNonvoter.
func (c *Cluster) AddNode() (*Node, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	n := c.addNode()
	return n, c.start(n, nil)
}

func (n *Node) lock()   { n.life <- struct{}{} }
func (n *Node) unlock() { <-n.life }

// config builds a node's configuration.
func (c *Cluster) config(id raft.ServerID) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = id
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	// A removed node stays up, outside the cluster, so a test can add it
	// back; raft's default would shut a removed leader down.
	conf.ShutdownOnRemove = false
	conf.Logger = nodeLogger(string(id))
	if c.opts.ReadMode == ReadLease {
		conf.LeaseReads = true
		conf.MaxClockDrift = 5 * time.Millisecond
	}
	if c.opts.Config != nil {
		c.opts.Config(conf)
	}
	return conf
}

// stream derives an independent random stream number from names.
func stream(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// start opens n's stores (creating them on first start), bootstraps them
// with configuration when it is not nil, and starts the node.
func (c *Cluster) start(n *Node, configuration *raft.Configuration) error {
	conf := c.config(n.id)
	c.mu.Lock()
	disk, snaps, restarts := n.disk, n.snaps, n.restarts
	c.mu.Unlock()
	if disk == nil || c.opts.Store == WALStores {
		var err error
		if disk, snaps, err = c.openStores(n, conf); err != nil {
			return err
		}
	}
	store := NewCrashableStore(disk, c.opts.SyncDelay, c.seed^int64(stream(string(n.id), fmt.Sprint(restarts))))
	_, trans := raft.NewInmemTransport(n.addr)
	// Each run of a node draws its own timeouts, all from the cluster's seed.
	nodeSeed := uint64(c.seed) ^ stream(string(n.id), "raft", fmt.Sprint(restarts))
	run := &faultTransport{c: c, from: n.id, inner: trans, seed: max(nodeSeed, 1)}
	if c.opts.ClockDrift != nil {
		run.drift = c.opts.ClockDrift(n.id)
	}
	fsm := c.opts.FSM(n.id)
	c.applied.watch(n.id, fsm)
	runSnaps := &crashableSnapshots{SnapshotStore: snaps, store: store}
	r, err := c.boot(n, conf, configuration, store, runSnaps, run, fsm)
	if err != nil {
		// Leave the disk closed, as after a crash, so a later Restart can
		// open it again.
		_ = trans.Close()
		if closer, ok := disk.(io.Closer); ok {
			_ = closer.Close()
		}
		return err
	}
	c.leaders.watch(n.id, r)
	c.mu.Lock()
	n.live, n.raft, n.fsm = true, r, fsm
	n.disk, n.store, n.snaps, n.runSnaps, n.trans = disk, store, snaps, runSnaps, trans
	n.restarts++
	c.mu.Unlock()
	return nil
}

// boot bootstraps the stores when configuration is set, links the node's
// transport with the others and creates the node.
func (c *Cluster) boot(n *Node, conf *raft.Config, configuration *raft.Configuration, store *CrashableStore,
	snaps raft.SnapshotStore, run *faultTransport, fsm raft.FSM) (*raft.Raft, error) {
	if configuration != nil {
		if err := raft.BootstrapCluster(conf, store.asRaftStore(), store, snaps, run, *configuration); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	c.connect(n, run.inner)
	return raft.NewRaft(conf, fsm, store.asRaftStore(), store, snaps, run)
}

func (c *Cluster) openStores(n *Node, conf *raft.Config) (Store, raft.SnapshotStore, error) {
	if c.opts.Store == MemStores {
		return raft.NewInmemStore(), raft.NewInmemSnapshotStore(), nil
	}
	walOpts := c.opts.WAL
	if walOpts.Logger == nil {
		walOpts.Logger = conf.Logger.Named("wal")
	}
	disk, err := wal.Open(filepath.Join(n.dir, "wal"), walOpts)
	if err != nil {
		return nil, nil, fmt.Errorf("open wal: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.dir, 2, conf.Logger.Named("snapshots"))
	if err != nil {
		_ = disk.Close()
		return nil, nil, fmt.Errorf("open snapshots: %w", err)
	}
	return disk, snaps, nil
}

// connect links trans, n's new transport, with every other node's, both
// ways. Whether a link delivers is decided per message by faultTransport.
func (c *Cluster) connect(n *Node, trans *raft.InmemTransport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.nodes {
		if o == n || o.trans == nil {
			continue
		}
		trans.Connect(o.addr, o.trans)
		o.trans.Connect(n.addr, trans)
	}
}

// Nodes returns every node, live or crashed, in creation order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

// Node returns the node with the given ID, or nil.
func (c *Cluster) Node(id raft.ServerID) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// live returns the running nodes.
func (c *Cluster) live() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if n.live && n.raft.State() != raft.Shutdown {
			out = append(out, n)
		}
	}
	return out
}

// ID returns the node's server ID.
func (n *Node) ID() raft.ServerID { return n.id }

// Address returns the node's transport address.
func (n *Node) Address() raft.ServerAddress { return n.addr }

// Raft returns the running node, or nil while it is crashed. A node that
// shut itself down is still returned (its State is raft.Shutdown).
func (n *Node) Raft() *raft.Raft {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if !n.live {
		return nil
	}
	return n.raft
}

// FSM returns the state machine of the node's current run (a crashed node
// keeps the one of its last run).
func (n *Node) FSM() raft.FSM {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.fsm
}

// running returns the node's Raft and the FSM of the same run, read
// together so that a restart between two reads cannot pair the old node
// with the new, still empty FSM; r is nil while the node is crashed.
func (n *Node) running() (r *raft.Raft, fsm raft.FSM) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if !n.live {
		return nil, nil
	}
	return n.raft, n.fsm
}

// Live reports whether the node is running: started, not crashed, and not
// shut down by raft itself.
func (n *Node) Live() bool {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.live && n.raft.State() != raft.Shutdown
}

// String returns the node's ID.
func (n *Node) String() string { return string(n.id) }

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close shuts every node down and waits for all goroutines of the cluster.
// It runs on test cleanup; calling it earlier is allowed, and calling it
// again does nothing.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	for _, n := range nodes {
		if err := c.stop(n, false); err != nil {
			c.t.Errorf("rafttest: close %s: %v", n.id, err)
		}
	}
	c.waiters.Wait()
}

// stop shuts n down; with crash, its network and then its disk lose power
// first, so writes in progress may be lost.
func (c *Cluster) stop(n *Node, crash bool) error {
	n.lock()
	defer n.unlock()
	return c.stopLocked(n, crash)
}

// stopLocked is stop for a caller holding n's life lock.
func (c *Cluster) stopLocked(n *Node, crash bool) error {
	c.mu.Lock()
	if !n.live {
		c.mu.Unlock()
		return nil
	}
	n.live = false // from here on faultTransport delivers nothing to or from n
	r, store, disk := n.raft, n.store, n.disk
	c.mu.Unlock()
	if crash {
		store.Crash()
	}
	err := r.Shutdown().Error()
	if closer, ok := disk.(io.Closer); ok {
		if cerr := closer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}
	return err
}

// Crash stops a node as a power loss would: its links go down, writes in
// progress keep only what CrashableStore allows, and it shuts down. Its
// stores are kept for Restart. Crashing a crashed node does nothing.
func (c *Cluster) Crash(id raft.ServerID) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("rafttest: no node %q", id)
	}
	if err := c.stop(n, true); err != nil {
		return fmt.Errorf("rafttest: crash %s: %w", id, err)
	}
	return nil
}

// Restart starts a crashed node (or one raft shut down) again from its stores, with a new FSM from
// Options.FSM and a new transport at the same address; the links keep their
// partitions and faults. Restarting a live node does nothing.
func (c *Cluster) Restart(id raft.ServerID) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("rafttest: no node %q", id)
	}
	n.lock()
	defer n.unlock()
	c.mu.Lock()
	live, closed := n.live, c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if live && n.Raft().State() != raft.Shutdown {
		return nil
	}
	if live {
		// Raft shut the node down itself: finish the job, then start it.
		if err := c.stopLocked(n, false); err != nil {
			return fmt.Errorf("rafttest: restart %s: %w", id, err)
		}
	}
	if err := c.start(n, nil); err != nil {
		return fmt.Errorf("rafttest: restart %s: %w", id, err)
	}
	return nil
}

// SafeClockDrift returns the largest ε for which lease reads stay
// linearizable while every node's clock drifts by anything within ±ε. A
// follower refuses votes for heartbeatTimeout on its own clock after it
// last heard from its leader, and the leader's lease runs for
// heartbeatTimeout-maxClockDrift on the leader's clock from when it sent
// what the follower accepted: the lease ends first while
// (1+ε_follower)/(1+ε_leader) ≤ heartbeatTimeout/(heartbeatTimeout-maxClockDrift),
// which for clocks within ±ε holds up to ε = maxClockDrift/(2·heartbeatTimeout-maxClockDrift).
func SafeClockDrift(heartbeatTimeout, maxClockDrift time.Duration) float64 {
	if maxClockDrift <= 0 || heartbeatTimeout <= 0 || maxClockDrift >= heartbeatTimeout {
		return 0
	}
	return float64(maxClockDrift) / float64(2*heartbeatTimeout-maxClockDrift)
}
