//go:build go1.25

package raft

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The examples are in package raft, not raft_test, because an external test
// package would import this package by our own module path, which an
// application that knows the module as github.com/hashicorp/raft cannot
// resolve (go mod tidy walks the tests of the packages it imports).

// counterFSM is a tiny state machine: it counts the commands applied.
type counterFSM struct {
	mu    sync.Mutex
	count int
}

func (f *counterFSM) Apply(l *Log) interface{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	return f.count
}

func (f *counterFSM) Snapshot() (FSMSnapshot, error) {
	return nil, fmt.Errorf("not needed in this example")
}

func (f *counterFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// ExampleNewRaft starts a single-node cluster in memory, waits for it to
// lead, and applies a command.
func ExampleNewRaft() {
	conf := DefaultConfig()
	conf.LocalID = "node1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.Logger = hclog.NewNullLogger()

	store := NewInmemStore()
	snapshots := NewInmemSnapshotStore()
	addr, transport := NewInmemTransport("")
	fsm := &counterFSM{}

	r, err := NewRaft(conf, fsm, store, store, snapshots, transport)
	if err != nil {
		panic(err)
	}
	defer func() { _ = r.Shutdown().Error() }()

	err = r.BootstrapCluster(Configuration{Servers: []Server{
		{Suffrage: Voter, ID: conf.LocalID, Address: addr},
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
