//go:build go1.25

package wal

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// The raft package's TestDeposedLeadersPendingWriteNeverOverwritesTheNewLeadersEntryInACluster
// on a wal store: a leader cut off with writes still on the way to its
// disk hears of a newer leader through that leader's entries. The store
// must end up holding the new leader's entries, and see no failed write.
// The bubble's clock is virtual; the wal's files are real.

// slowWAL delays writes holding chosen entries and records write errors.
type slowWAL struct {
	*Store
	mu     sync.Mutex
	delays map[string]time.Duration
	errs   []error
}

func (s *slowWAL) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	var delay time.Duration
	for _, l := range logs {
		delay = max(delay, s.delays[string(l.Data)])
	}
	s.mu.Unlock()
	time.Sleep(delay)
	err := s.Store.StoreLogs(logs)
	if err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
	}
	return err
}

func (s *slowWAL) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// votelessTransport fails vote and prevote requests to node0 while block
// is set.
type votelessTransport struct {
	*raft.InmemTransport
	block *atomic.Bool
}

func (t *votelessTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if t.block.Load() && id == "node0" {
		return errors.New("votes blocked by the test")
	}
	return t.InmemTransport.RequestVote(id, target, args, resp)
}

func (t *votelessTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if t.block.Load() && id == "node0" {
		return errors.New("votes blocked by the test")
	}
	return t.InmemTransport.RequestPreVote(id, target, args, resp)
}

type countingFSM struct {
	mu      sync.Mutex
	applied int
}

func (f *countingFSM) Apply(*raft.Log) interface{} {
	f.mu.Lock()
	f.applied++
	f.mu.Unlock()
	return nil
}

func (f *countingFSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("not supported") }
func (f *countingFSM) Restore(io.ReadCloser) error         { return errors.New("not supported") }

// deposedCluster is three nodes on in-memory transports; node0 keeps its
// log on a slowWAL over a real wal Store, the others in memory.
type deposedCluster struct {
	ids        []raft.ServerID
	trans      []*raft.InmemTransport
	stores     []raft.LogStore
	fsms       []*countingFSM
	nodes      []*raft.Raft
	disk       *Store
	wal        *slowWAL
	blockVotes atomic.Bool // node0's votes and prevotes fail while set
}

// startDeposedCluster bootstraps and starts the three nodes, node0 with
// timeouts of a second so that it keeps leading long after it stops hearing
// answers, the others with 50ms.
func startDeposedCluster(t *testing.T, dir string) *deposedCluster {
	const n = 3
	c := &deposedCluster{ids: make([]raft.ServerID, n), trans: make([]*raft.InmemTransport, n)}
	var configuration raft.Configuration
	for i := range n {
		c.ids[i] = raft.ServerID(fmt.Sprintf("node%d", i))
		_, c.trans[i] = raft.NewInmemTransport(raft.ServerAddress(c.ids[i]))
		configuration.Servers = append(configuration.Servers, raft.Server{ID: c.ids[i], Address: raft.ServerAddress(c.ids[i])})
	}
	for i := range n {
		for j := range n {
			if i != j {
				c.trans[i].Connect(raft.ServerAddress(c.ids[j]), c.trans[j])
			}
		}
	}
	disk, err := Open(filepath.Join(dir, "node0"), Options{})
	require.NoError(t, err)
	c.disk = disk
	c.wal = &slowWAL{Store: disk}
	c.stores = []raft.LogStore{c.wal, raft.NewInmemStore(), raft.NewInmemStore()}
	stables := []raft.StableStore{disk, raft.NewInmemStore(), raft.NewInmemStore()}
	c.fsms = make([]*countingFSM, n)
	c.nodes = make([]*raft.Raft, n)
	for i := range n {
		conf := raft.DefaultConfig()
		conf.LocalID = c.ids[i]
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		if i == 0 {
			// node0 keeps leading long after it stops hearing answers.
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Second, time.Second, time.Second
		}
		conf.CommitTimeout = 5 * time.Millisecond
		conf.Logger = nil
		conf.LogOutput = io.Discard
		snaps := raft.NewInmemSnapshotStore()
		var tr raft.Transport = &votelessTransport{InmemTransport: c.trans[i], block: &c.blockVotes}
		require.NoError(t, raft.BootstrapCluster(conf, c.stores[i], stables[i], snaps, tr, configuration))
		c.fsms[i] = &countingFSM{}
		c.nodes[i], err = raft.NewRaft(conf, c.fsms[i], c.stores[i], stables[i], snaps, tr)
		require.NoError(t, err)
	}
	return c
}

// close shuts every node down and closes the wal.
func (c *deposedCluster) close(t *testing.T) {
	for _, r := range c.nodes {
		require.NoError(t, r.Shutdown().Error())
	}
	require.NoError(t, c.disk.Close())
}

// leaderOf waits for one of candidates to lead and returns it.
func (c *deposedCluster) leaderOf(t *testing.T, candidates ...int) int {
	for range 1000 {
		for _, i := range candidates {
			if c.nodes[i].State() == raft.Leader {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader")
	return -1
}

func TestDeposedLeadersPendingWritesOnWALNeverOverwriteTheNewLeadersEntries(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := startDeposedCluster(t, dir)
		defer c.close(t)
		nodes, trans, wal := c.nodes, c.trans, c.wal

		if l := c.leaderOf(t, 0, 1, 2); l != 0 {
			require.NoError(t, nodes[l].LeadershipTransferToServer(c.ids[0], raft.ServerAddress(c.ids[0])).Error())
		}
		require.Equal(t, 0, c.leaderOf(t, 0, 1, 2))
		for range 5 {
			require.NoError(t, nodes[0].Apply([]byte("before"), 0).Error())
		}

		wal.mu.Lock()
		wal.delays = map[string]time.Duration{"stale-1": 500 * time.Millisecond, "stale-2": 1500 * time.Millisecond}
		wal.mu.Unlock()
		c.blockVotes.Store(true)
		trans[0].Disconnect("node1")
		trans[0].Disconnect("node2")
		index := nodes[0].LastIndex() + 1
		stale1 := nodes[0].Apply([]byte("stale-1"), 0)
		synctest.Wait() // stale-1 is in the disk write
		stale2 := nodes[0].Apply([]byte("stale-2"), 0)
		synctest.Wait() // stale-2 waits for it

		newLeader := c.leaderOf(t, 1, 2)
		for range 5 {
			require.NoError(t, nodes[newLeader].Apply([]byte("after"), 0).Error())
		}
		require.ErrorIs(t, stale1.Error(), raft.ErrLeadershipLost)
		require.ErrorIs(t, stale2.Error(), raft.ErrLeadershipLost)
		c.blockVotes.Store(false)
		trans[0].Connect("node1", trans[1])
		trans[0].Connect("node2", trans[2])
		for c.fsms[0].count() < 10 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // every write still on the way lands

		wal.mu.Lock()
		require.Empty(t, wal.errs, "a write of the deposed leader's node failed")
		wal.mu.Unlock()
		for i := index; i < index+2; i++ {
			var want, got raft.Log
			require.NoError(t, c.stores[newLeader].GetLog(i, &want))
			require.NoError(t, c.disk.GetLog(i, &got))
			require.Equal(t, [2]any{want.Term, want.Data}, [2]any{got.Term, got.Data},
				"entry %d on the deposed leader's wal is not the new leader's", i)
		}
	})
}
