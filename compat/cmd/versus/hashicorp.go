package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	hraft "github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/quorumkit/raft/internal/benchload"
)

// theirLogCache is the size of the LogCache in front of raft-wal: the way
// hashicorp's own products deploy a durable log store, so that replicating
// fresh entries reads no disk (our wal store caches recent entries itself).
const theirLogCache = 512

// theirFSM is the counting state machine of benchload, for hashicorp/raft.
type theirFSM struct {
	commands atomic.Uint64
	bytes    atomic.Uint64
}

func (f *theirFSM) Apply(l *hraft.Log) any {
	f.commands.Add(1)
	f.bytes.Add(uint64(len(l.Data)))
	return nil
}

func (f *theirFSM) Snapshot() (hraft.FSMSnapshot, error) {
	return &theirSnapshot{commands: f.commands.Load(), bytes: f.bytes.Load()}, nil
}

func (f *theirFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	commands, bytes, err := benchload.DecodeCounters(rc)
	if err != nil {
		return err
	}
	f.commands.Store(commands)
	f.bytes.Store(bytes)
	return nil
}

type theirSnapshot struct{ commands, bytes uint64 }

func (s *theirSnapshot) Persist(sink hraft.SnapshotSink) error {
	if err := benchload.EncodeCounters(sink, s.commands, s.bytes); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *theirSnapshot) Release() {}

// hashicorpCluster is a cluster of hashicorp/raft nodes in one process,
// built through its published API only.
type hashicorpCluster struct {
	nodes   []*hraft.Raft
	stores  []*raftwal.WAL
	leaders *benchload.LeaderTracker[*hraft.Raft]
	counts  []*benchload.NodeCounts // per node, filled by the store and transport wrappers
}

// startHashicorp is the StartFunc for hashicorp/raft, set up as
// benchload.StartQuorumkit sets up ours: DefaultConfig with BatchApplyCh,
// the same transports, raft-wal (behind a LogCache) and a
// FileSnapshotStore for StoreWAL, its in-memory stores otherwise, and every
// node bootstrapping the same configuration.
func startHashicorp(w benchload.Workload, dir string) (_ benchload.Cluster, err error) {
	c := &hashicorpCluster{}
	transports := make([]hraft.Transport, w.Nodes)
	defer func() {
		if err == nil {
			return
		}
		for _, t := range transports[len(c.nodes):] {
			if closer, ok := t.(io.Closer); ok {
				closer.Close()
			}
		}
		c.Close()
	}()
	var configuration hraft.Configuration
	for i := range w.Nodes {
		switch w.Transport {
		case benchload.TransportInmem:
			_, transports[i] = hraft.NewInmemTransport("")
		case benchload.TransportTCP:
			t, err := hraft.NewTCPTransport("127.0.0.1:0", nil, benchload.TCPMaxPool, benchload.TCPTimeout, io.Discard)
			if err != nil {
				return nil, fmt.Errorf("tcp transport: %w", err)
			}
			transports[i] = t
		default:
			return nil, fmt.Errorf("unknown transport %q", w.Transport)
		}
		configuration.Servers = append(configuration.Servers, hraft.Server{
			Suffrage: hraft.Voter,
			ID:       hraft.ServerID(benchload.NodeID(i)),
			Address:  transports[i].LocalAddr(),
		})
	}
	if w.Transport == benchload.TransportInmem {
		for _, from := range transports {
			for _, to := range transports {
				from.(*hraft.InmemTransport).Connect(to.LocalAddr(), to)
			}
		}
	}
	for i := range w.Nodes {
		id := benchload.NodeID(i)
		conf := hraft.DefaultConfig()
		conf.LocalID = hraft.ServerID(id)
		conf.Logger = benchload.QuietLogger("hashicorp-" + id)
		conf.BatchApplyCh = true
		var logs hraft.LogStore
		var stable hraft.StableStore
		var snaps hraft.SnapshotStore
		switch w.Store {
		case benchload.StoreInmem:
			store := hraft.NewInmemStore()
			logs, stable, snaps = store, store, hraft.NewInmemSnapshotStore()
		case benchload.StoreWAL:
			nodeDir := filepath.Join(dir, id)
			walDir := filepath.Join(nodeDir, "wal")
			if err := os.MkdirAll(walDir, 0o755); err != nil {
				return nil, err
			}
			store, err := raftwal.Open(walDir, raftwal.WithLogger(benchload.QuietLogger("raft-wal-"+id)))
			if err != nil {
				return nil, fmt.Errorf("raft-wal %s: %w", id, err)
			}
			c.stores = append(c.stores, store)
			cache, err := hraft.NewLogCache(theirLogCache, store)
			if err != nil {
				return nil, err
			}
			files, err := hraft.NewFileSnapshotStore(nodeDir, benchload.SnapshotsRetained, io.Discard)
			if err != nil {
				return nil, err
			}
			logs, stable, snaps = cache, store, files
		default:
			return nil, fmt.Errorf("unknown store %q", w.Store)
		}
		counts := &benchload.NodeCounts{}
		c.counts = append(c.counts, counts)
		logs = countTheirStore(logs, counts)
		trans := countTheirTransport(transports[i], counts)
		if err := hraft.BootstrapCluster(conf, logs, stable, snaps, trans, configuration); err != nil {
			return nil, fmt.Errorf("bootstrap %s: %w", id, err)
		}
		node, err := hraft.NewRaft(conf, &theirFSM{}, logs, stable, snaps, trans)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", id, err)
		}
		c.nodes = append(c.nodes, node)
	}
	c.leaders = benchload.NewLeaderTracker(c.nodes, func(r *hraft.Raft) bool { return r.State() == hraft.Leader })
	leader, err := c.leaders.Refresh(nil, benchload.ElectionWait)
	if err != nil {
		return nil, err
	}
	if err := leader.Barrier(benchload.ElectionWait).Error(); err != nil {
		return nil, fmt.Errorf("first barrier: %w", err)
	}
	return c, nil
}

func (c *hashicorpCluster) Apply(cmd []byte) error {
	leader, _ := c.leaders.Current()
	err := leader.Apply(cmd, benchload.EnqueueTimeout).Error()
	if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipLost) ||
		errors.Is(err, hraft.ErrLeadershipTransferInProgress) {
		if _, refreshErr := c.leaders.Refresh(leader, benchload.ElectionWait); refreshErr != nil {
			return errors.Join(err, refreshErr)
		}
	}
	return err
}

func (c *hashicorpCluster) BatchCounts() benchload.BatchCounts {
	leader := -1
	if current, ok := c.leaders.Current(); ok {
		for i, n := range c.nodes {
			if n == current {
				leader = i
			}
		}
	}
	return benchload.SumCounts(c.counts, leader)
}

// Close shuts every node down; waiting on the future is what makes
// hashicorp/raft close its transport.
func (c *hashicorpCluster) Close() error {
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
