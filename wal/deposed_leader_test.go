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

func TestDeposedLeadersPendingWritesOnWALNeverOverwriteTheNewLeadersEntries(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		var blockVotes atomic.Bool
		const n = 3
		var configuration raft.Configuration
		ids := make([]raft.ServerID, n)
		trans := make([]*raft.InmemTransport, n)
		for i := range n {
			ids[i] = raft.ServerID(fmt.Sprintf("node%d", i))
			_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(ids[i]))
			configuration.Servers = append(configuration.Servers, raft.Server{ID: ids[i], Address: raft.ServerAddress(ids[i])})
		}
		for i := range n {
			for j := range n {
				if i != j {
					trans[i].Connect(raft.ServerAddress(ids[j]), trans[j])
				}
			}
		}
		disk, err := Open(filepath.Join(dir, "node0"), Options{})
		require.NoError(t, err)
		wal := &slowWAL{Store: disk}
		stores := []raft.LogStore{wal, raft.NewInmemStore(), raft.NewInmemStore()}
		stables := []raft.StableStore{disk, raft.NewInmemStore(), raft.NewInmemStore()}
		fsms := make([]*countingFSM, n)
		nodes := make([]*raft.Raft, n)
		for i := range n {
			conf := raft.DefaultConfig()
			conf.LocalID = ids[i]
			conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
			if i == 0 {
				// node0 keeps leading long after it stops hearing answers.
				conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Second, time.Second, time.Second
			}
			conf.CommitTimeout = 5 * time.Millisecond
			conf.Logger = nil
			conf.LogOutput = io.Discard
			snaps := raft.NewInmemSnapshotStore()
			var tr raft.Transport = &votelessTransport{InmemTransport: trans[i], block: &blockVotes}
			require.NoError(t, raft.BootstrapCluster(conf, stores[i], stables[i], snaps, tr, configuration))
			fsms[i] = &countingFSM{}
			nodes[i], err = raft.NewRaft(conf, fsms[i], stores[i], stables[i], snaps, tr)
			require.NoError(t, err)
		}
		defer func() {
			for _, r := range nodes {
				require.NoError(t, r.Shutdown().Error())
			}
			require.NoError(t, disk.Close())
		}()

		leaderOf := func(candidates ...int) int {
			for range 1000 {
				for _, i := range candidates {
					if nodes[i].State() == raft.Leader {
						return i
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Fatal("no leader")
			return -1
		}
		if l := leaderOf(0, 1, 2); l != 0 {
			require.NoError(t, nodes[l].LeadershipTransferToServer(ids[0], raft.ServerAddress(ids[0])).Error())
		}
		require.Equal(t, 0, leaderOf(0, 1, 2))
		for range 5 {
			require.NoError(t, nodes[0].Apply([]byte("before"), 0).Error())
		}

		wal.mu.Lock()
		wal.delays = map[string]time.Duration{"stale-1": 500 * time.Millisecond, "stale-2": 1500 * time.Millisecond}
		wal.mu.Unlock()
		blockVotes.Store(true)
		trans[0].Disconnect("node1")
		trans[0].Disconnect("node2")
		index := nodes[0].LastIndex() + 1
		stale1 := nodes[0].Apply([]byte("stale-1"), 0)
		synctest.Wait() // stale-1 is in the disk write
		stale2 := nodes[0].Apply([]byte("stale-2"), 0)
		synctest.Wait() // stale-2 waits for it

		newLeader := leaderOf(1, 2)
		for range 5 {
			require.NoError(t, nodes[newLeader].Apply([]byte("after"), 0).Error())
		}
		require.ErrorIs(t, stale1.Error(), raft.ErrLeadershipLost)
		require.ErrorIs(t, stale2.Error(), raft.ErrLeadershipLost)
		blockVotes.Store(false)
		trans[0].Connect("node1", trans[1])
		trans[0].Connect("node2", trans[2])
		for fsms[0].count() < 10 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // every write still on the way lands

		wal.mu.Lock()
		require.Empty(t, wal.errs, "a write of the deposed leader's node failed")
		wal.mu.Unlock()
		for i := index; i < index+2; i++ {
			var want, got raft.Log
			require.NoError(t, stores[newLeader].GetLog(i, &want))
			require.NoError(t, disk.GetLog(i, &got))
			require.Equal(t, [2]any{want.Term, want.Data}, [2]any{got.Term, got.Data},
				"entry %d on the deposed leader's wal is not the new leader's", i)
		}
	})
}
