package rafttest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/quorumkit/raft"
)

// crashableSnapshots is the snapshot store a node of the kit runs on: the
// node's snapshot store (its disk, kept across restarts) under the same
// power as its CrashableStore. Closing a sink, which makes a snapshot
// durable, takes the store's SyncDelay; a crash before or during that time
// loses the snapshot (the sink is cancelled and Close fails with
// ErrCrashed), as a power cut before the final rename of a file snapshot
// would. A crash after Close keeps the snapshot, whatever the node had not
// yet done with it, such as trimming its log.
type crashableSnapshots struct {
	raft.SnapshotStore
	store *CrashableStore
	// writing counts the sinks open now: snapshots being taken or
	// installed.
	writing atomic.Int32
	// armed, when set, is told when the next snapshot is about to be made
	// durable; that Close then waits for the power to go (or a while).
	armed atomic.Pointer[chan struct{}]
}

func (s *crashableSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	if s.store.Crashed() {
		return nil, ErrCrashed
	}
	sink, err := s.SnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	s.writing.Add(1)
	return &crashableSink{SnapshotSink: sink, snapshots: s}, nil
}

type crashableSink struct {
	raft.SnapshotSink
	snapshots *crashableSnapshots
	done      atomic.Bool
}

func (k *crashableSink) finish() {
	if k.done.CompareAndSwap(false, true) {
		k.snapshots.writing.Add(-1)
	}
}

func (k *crashableSink) Close() error {
	defer k.finish()
	store := k.snapshots.store
	if armed := k.snapshots.armed.Swap(nil); armed != nil {
		close(*armed)
		// A crash is on its way: it lands in the middle of this write.
		select {
		case <-store.crashedCh:
		case <-time.After(time.Second):
		}
	}
	if store.syncDelay > 0 && !store.Crashed() {
		time.Sleep(store.syncDelay)
	}
	if store.Crashed() {
		_ = k.SnapshotSink.Cancel()
		return ErrCrashed
	}
	return k.SnapshotSink.Close()
}

func (k *crashableSink) Cancel() error {
	defer k.finish()
	return k.SnapshotSink.Cancel()
}

// WritingSnapshot reports whether the node is writing a snapshot now:
// taking one or installing one from the leader. A Crash at such a moment
// loses it.
func (n *Node) WritingSnapshot() bool {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	return n.live && n.runSnaps != nil && n.runSnaps.writing.Load() > 0
}

// ErrNoSnapshotWrite is returned by CrashDuringSnapshot when the node wrote
// no snapshot within the timeout; it was not crashed.
var ErrNoSnapshotWrite = errors.New("rafttest: no snapshot write started within the timeout")

// CrashDuringSnapshot crashes node id in the middle of its next snapshot
// write, a snapshot it takes or one it installs from the leader: it waits
// up to timeout for the node to start making a snapshot durable, then
// crashes it (as Crash) before that write completes, so the snapshot is
// lost and the node restarts from what it had before. It returns
// ErrNoSnapshotWrite, leaving the node up, if no write starts in time.
func (c *Cluster) CrashDuringSnapshot(id raft.ServerID, timeout time.Duration) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("rafttest: no node %q", id)
	}
	c.mu.Lock()
	snaps, live := n.runSnaps, n.live
	c.mu.Unlock()
	if !live || snaps == nil {
		return fmt.Errorf("rafttest: crash %s during a snapshot: node is down", id)
	}
	started := make(chan struct{})
	snaps.armed.Store(&started)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-started:
		return c.Crash(id)
	case <-timer.C:
		if snaps.armed.CompareAndSwap(&started, nil) {
			return ErrNoSnapshotWrite
		}
		// The write started just now.
		return c.Crash(id)
	}
}
