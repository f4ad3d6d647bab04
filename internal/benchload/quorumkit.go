package benchload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
)

// Settings both libraries' clusters share, so that they are measured alike.
const (
	// TCPMaxPool is the connection pool size of each TCP transport.
	TCPMaxPool = 3
	// TCPTimeout is the I/O timeout of each TCP transport.
	TCPTimeout = 10 * time.Second
	// SnapshotsRetained is how many snapshots a FileSnapshotStore keeps.
	SnapshotsRetained = 2
	// ElectionWait bounds the wait for a leader, at start and after one
	// is lost.
	ElectionWait = 30 * time.Second
	// EnqueueTimeout bounds how long Apply waits to hand a command to the
	// leader.
	EnqueueTimeout = 10 * time.Second
)

// NodeID returns the server ID (and directory name) of node i.
func NodeID(i int) string { return fmt.Sprintf("node%d", i) }

// QuietLogger returns the logger every node of a benchmark uses: errors
// only, so that the progress line stays readable and logging costs nothing.
func QuietLogger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Error, Output: os.Stderr})
}

// benchFSM is the counting state machine (see counter.go).
type benchFSM struct {
	commands atomic.Uint64
	bytes    atomic.Uint64
}

func (f *benchFSM) Apply(l *raft.Log) any {
	f.commands.Add(1)
	f.bytes.Add(uint64(len(l.Data)))
	return nil
}

func (f *benchFSM) Snapshot() (raft.FSMSnapshot, error) {
	return &benchSnapshot{commands: f.commands.Load(), bytes: f.bytes.Load()}, nil
}

func (f *benchFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	commands, bytes, err := DecodeCounters(rc)
	if err != nil {
		return err
	}
	f.commands.Store(commands)
	f.bytes.Store(bytes)
	return nil
}

type benchSnapshot struct{ commands, bytes uint64 }

func (s *benchSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := EncodeCounters(sink, s.commands, s.bytes); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *benchSnapshot) Release() {}

// quorumkitCluster is a cluster of this library's nodes in one process.
type quorumkitCluster struct {
	nodes   []*raft.Raft
	stores  []io.Closer // durable stores to close after the nodes stop
	leaders *LeaderTracker[*raft.Raft]
	counts  []*NodeCounts // per node, filled by the store and transport wrappers
}

// OpenDurable opens the durable log and stable store of one node in dir
// (which does not exist yet) for StoreWAL; closer releases them once the
// node has stopped.
type OpenDurable func(dir, id string) (logs raft.LogStore, stable raft.StableStore, closer io.Closer, err error)

// OpenWAL is the OpenDurable of this library's own stack: the wal package.
func OpenWAL(dir, id string) (raft.LogStore, raft.StableStore, io.Closer, error) {
	store, err := wal.Open(dir, wal.Options{Logger: QuietLogger("wal-" + id)})
	if err != nil {
		return nil, nil, nil, err
	}
	return store, store, store, nil
}

// StartQuorumkit is the StartFunc for this library's stack: this core on
// the wal package (see StartQuorumkitOn).
func StartQuorumkit(w Workload, dir string) (Cluster, error) {
	return StartQuorumkitOn(OpenWAL)(w, dir)
}

// StartQuorumkitOn returns the StartFunc for this library's core on the
// durable stores open makes: every node uses DefaultConfig with
// BatchApplyCh, the transport and store w names (open's stores and a
// FileSnapshotStore under dir for StoreWAL, in-memory stores otherwise),
// and all of them bootstrap the same configuration. Each node's log store
// and transport are wrapped to count batches (BatchCounts).
func StartQuorumkitOn(open OpenDurable) StartFunc {
	return func(w Workload, dir string) (Cluster, error) { return startQuorumkit(w, dir, open) }
}

func startQuorumkit(w Workload, dir string, open OpenDurable) (_ Cluster, err error) {
	c := &quorumkitCluster{}
	transports := make([]raft.Transport, w.Nodes)
	defer func() {
		if err == nil {
			return
		}
		// A started node closes its transport on shutdown; the others
		// are closed here.
		for _, t := range transports[len(c.nodes):] {
			if closer, ok := t.(io.Closer); ok {
				closer.Close()
			}
		}
		c.Close()
	}()
	var configuration raft.Configuration
	for i := range w.Nodes {
		switch w.Transport {
		case TransportInmem:
			_, transports[i] = raft.NewInmemTransport("")
		case TransportTCP:
			t, err := raft.NewTCPTransport("127.0.0.1:0", nil, TCPMaxPool, TCPTimeout, io.Discard)
			if err != nil {
				return nil, fmt.Errorf("tcp transport: %w", err)
			}
			transports[i] = t
		default:
			return nil, fmt.Errorf("unknown transport %q", w.Transport)
		}
		configuration.Servers = append(configuration.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(NodeID(i)),
			Address:  transports[i].LocalAddr(),
		})
	}
	if w.Transport == TransportInmem {
		for _, from := range transports {
			for _, to := range transports {
				from.(*raft.InmemTransport).Connect(to.LocalAddr(), to)
			}
		}
	}
	for i := range w.Nodes {
		conf := raft.DefaultConfig()
		conf.LocalID = raft.ServerID(NodeID(i))
		conf.Logger = QuietLogger("raft-" + NodeID(i))
		conf.BatchApplyCh = true
		var logs raft.LogStore
		var stable raft.StableStore
		var snaps raft.SnapshotStore
		switch w.Store {
		case StoreInmem:
			store := raft.NewInmemStore()
			logs, stable, snaps = store, store, raft.NewInmemSnapshotStore()
		case StoreWAL:
			nodeDir := filepath.Join(dir, NodeID(i))
			var closer io.Closer
			logs, stable, closer, err = open(filepath.Join(nodeDir, "wal"), NodeID(i))
			if err != nil {
				return nil, fmt.Errorf("open store of %s: %w", NodeID(i), err)
			}
			c.stores = append(c.stores, closer)
			snaps, err = raft.NewFileSnapshotStore(nodeDir, SnapshotsRetained, io.Discard)
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown store %q", w.Store)
		}
		counts := &NodeCounts{}
		c.counts = append(c.counts, counts)
		logs = countStores(logs, counts)
		trans := countTransport(transports[i], counts)
		if err := raft.BootstrapCluster(conf, logs, stable, snaps, trans, configuration); err != nil {
			return nil, fmt.Errorf("bootstrap %s: %w", NodeID(i), err)
		}
		node, err := raft.NewRaft(conf, &benchFSM{}, logs, stable, snaps, trans)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", NodeID(i), err)
		}
		c.nodes = append(c.nodes, node)
	}
	c.leaders = NewLeaderTracker(c.nodes, func(r *raft.Raft) bool { return r.State() == raft.Leader })
	leader, err := c.leaders.Refresh(nil, ElectionWait)
	if err != nil {
		return nil, err
	}
	// The leader's no-op of its term commits before the load starts.
	if err := leader.Barrier(ElectionWait).Error(); err != nil {
		return nil, fmt.Errorf("first barrier: %w", err)
	}
	return c, nil
}

func (c *quorumkitCluster) Apply(cmd []byte) error {
	leader, _ := c.leaders.Current()
	err := leader.Apply(cmd, EnqueueTimeout).Error()
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		if _, refreshErr := c.leaders.Refresh(leader, ElectionWait); refreshErr != nil {
			return errors.Join(err, refreshErr)
		}
	}
	return err
}

func (c *quorumkitCluster) BatchCounts() BatchCounts {
	leader := -1
	if current, ok := c.leaders.Current(); ok {
		for i, n := range c.nodes {
			if n == current {
				leader = i
			}
		}
	}
	return SumCounts(c.counts, leader)
}

func (c *quorumkitCluster) Close() error {
	var errs []error
	for _, node := range c.nodes {
		if err := node.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, store := range c.stores {
		if err := store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
