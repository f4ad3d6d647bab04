package raft_test

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

// counterFSM is a tiny state machine: it counts the commands applied.
type counterFSM struct {
	mu    sync.Mutex
	count int
}

func (f *counterFSM) Apply(l *raft.Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	return f.count
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, fmt.Errorf("not needed in this example")
}

func (f *counterFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// ExampleNewRaft starts a single-node cluster in memory, waits for it to
// lead, and applies a command.
func ExampleNewRaft() {
	conf := raft.DefaultConfig()
	conf.LocalID = "node1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.Logger = hclog.NewNullLogger()

	store := raft.NewInmemStore()
	snapshots := raft.NewInmemSnapshotStore()
	addr, transport := raft.NewInmemTransport("")
	fsm := &counterFSM{}

	r, err := raft.NewRaft(conf, fsm, store, store, snapshots, transport)
	if err != nil {
		panic(err)
	}
	defer func() { _ = r.Shutdown().Error() }()

	err = r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{Suffrage: raft.Voter, ID: conf.LocalID, Address: addr},
	}}).Error()
	if err != nil {
		panic(err)
	}

	<-r.LeaderCh() // true once this node leads

	f := r.Apply([]byte("hello"), time.Second)
	if err := f.Error(); err != nil {
		panic(err)
	}
	fmt.Println("state:", r.State(), "count:", f.Response())
	// Output: state: Leader count: 1
}
