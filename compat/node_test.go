package compat

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	ours "github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// Timing shared by every node of both libraries: hashicorp/raft's defaults,
// which is what its users run. The clusters run on real sockets, so on real
// time; a shorter lease let a leader step down on a loaded 2-core machine
// running the race detector. Every wait in the tests is bounded by
// waitTimeout.
const (
	heartbeatTimeout = time.Second
	electionTimeout  = time.Second
	leaseTimeout     = 500 * time.Millisecond
	commitTimeout    = 10 * time.Millisecond
	// trailingLogs is small so that a snapshot compacts the log and a new
	// or lagging node must catch up by InstallSnapshot.
	trailingLogs = 4
	rpcTimeout   = 2 * time.Second
	// opTimeout bounds how long an operation may wait to be enqueued.
	opTimeout = 5 * time.Second
	// waitTimeout bounds every wait for the cluster to reach a state.
	waitTimeout = 20 * time.Second
	pollEvery   = 10 * time.Millisecond
)

type kind string

const (
	kindOurs   kind = "ours"
	kindTheirs kind = "theirs"
)

// member is one server of a bootstrap configuration.
type member struct{ id, addr string }

// node is one cluster member of either library, driven through the calls
// both libraries share. Stores survive stop and start, as on a restart.
type node interface {
	id() string
	addr() string
	kind() kind
	fsm() *kvState
	// start bootstraps the node's stores with servers (unless servers is
	// nil) and starts it with a fresh FSM and a transport on its address.
	start(servers []member)
	// stop shuts the node down and closes its transport.
	stop()
	running() bool
	isLeader() bool
	leaderID() string
	apply(cmd string) error
	// applyAll submits every command, each with extensions, before waiting
	// for any, so that the leader batches and pipelines them.
	applyAll(cmds []string, extensions []byte) error
	// storedLog reads the entry at index from the node's log store.
	storedLog(index uint64) (storedEntry, error)
	lastIndex() uint64
	transferTo(target node) error
	// verifyLeader confirms leadership with a round of heartbeats.
	verifyLeader() error
	// barrier waits until the FSM has applied every earlier entry.
	barrier() error
	addVoter(peer node) error
	removeServer(peer node) error
	snapshot() error
	addNonvoter(peer node) error
	// servers maps each server of the node's latest configuration to its
	// suffrage ("Voter", "Nonvoter").
	servers() (map[string]string, error)
}

// storedEntry is a log entry as either library's store holds it.
type storedEntry struct {
	Index, Term uint64
	Type        uint8
	Data        []byte
	Extensions  []byte
	AppendedAt  time.Time
}

// waitAll waits for futures of either library, returning the first error.
func waitAll[F interface{ Error() error }](futures []F) error {
	for i, f := range futures {
		if err := f.Error(); err != nil {
			return fmt.Errorf("command %d: %w", i, err)
		}
	}
	return nil
}

// logBuffer collects a node's log lines, printed only if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nodeBase holds what both kinds of node share.
type nodeBase struct {
	t *testing.T
	// newTimeFormat makes the transport encode times in the msgpack
	// timestamp format instead of the legacy binary one.
	newTimeFormat bool
	name          string
	address       string
	state         *kvState
	logs          *logBuffer
	logger        hclog.Logger
	snapDir       string
}

func newNodeBase(t *testing.T, k kind, id string, newTimeFormat bool) nodeBase {
	logs := &logBuffer{}
	level := hclog.Debug
	if v := os.Getenv("COMPAT_LOG"); v != "" {
		level = hclog.LevelFromString(v)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: fmt.Sprintf("%s(%s)", id, k), Output: logs, Level: level})
	return nodeBase{t: t, newTimeFormat: newTimeFormat, name: id, address: "127.0.0.1:0", state: newKVState(), logs: logs, logger: logger, snapDir: t.TempDir()}
}

func (b *nodeBase) id() string    { return b.name }
func (b *nodeBase) addr() string  { return b.address }
func (b *nodeBase) fsm() *kvState { return b.state }
func (b *nodeBase) dumpLogsOnFailure() {
	b.t.Cleanup(func() {
		if b.t.Failed() {
			b.t.Logf("logs of %s:\n%s", b.name, b.logs.String())
		}
	})
}

// ---- quorumkit/raft ----

type oursNode struct {
	nodeBase
	store *ours.InmemStore
	snaps *ours.FileSnapshotStore
	trans *ours.NetworkTransport
	raft  *ours.Raft
}

// newOursNode makes a stopped quorumkit/raft node listening on a free
// loopback port; start runs it. It is shut down when the test ends.
func newOursNode(t *testing.T, id string, newTimeFormat bool) *oursNode {
	n := &oursNode{nodeBase: newNodeBase(t, kindOurs, id, newTimeFormat), store: ours.NewInmemStore()}
	snaps, err := ours.NewFileSnapshotStoreWithLogger(n.snapDir, 2, n.logger)
	require.NoError(t, err)
	n.snaps = snaps
	n.listen()
	n.dumpLogsOnFailure()
	t.Cleanup(n.stop)
	return n
}

func (n *oursNode) listen() {
	trans, err := ours.NewTCPTransportWithConfig(n.address, nil, &ours.NetworkTransportConfig{
		MaxPool: 3, Timeout: rpcTimeout, Logger: n.logger, MsgpackUseNewTimeFormat: n.newTimeFormat,
	})
	require.NoError(n.t, err, "%s: listen on %s", n.name, n.address)
	n.trans, n.address = trans, string(trans.LocalAddr())
}

func (n *oursNode) config() *ours.Config {
	conf := ours.DefaultConfig()
	conf.LocalID = ours.ServerID(n.name)
	conf.HeartbeatTimeout = heartbeatTimeout
	conf.ElectionTimeout = electionTimeout
	conf.LeaderLeaseTimeout = leaseTimeout
	conf.CommitTimeout = commitTimeout
	conf.TrailingLogs = trailingLogs
	conf.Logger = n.logger
	return conf
}

func (n *oursNode) kind() kind { return kindOurs }

func (n *oursNode) start(servers []member) {
	if n.trans == nil {
		n.listen()
	}
	conf := n.config()
	if servers != nil {
		var configuration ours.Configuration
		for _, m := range servers {
			configuration.Servers = append(configuration.Servers, ours.Server{
				Suffrage: ours.Voter, ID: ours.ServerID(m.id), Address: ours.ServerAddress(m.addr)})
		}
		require.NoError(n.t, ours.BootstrapCluster(conf, n.store, n.store, n.snaps, n.trans, configuration))
	}
	n.state = newKVState()
	r, err := ours.NewRaft(conf, oursFSM{n.state}, n.store, n.store, n.snaps, n.trans)
	require.NoError(n.t, err, "%s: NewRaft", n.name)
	n.raft = r
}

func (n *oursNode) stop() {
	if n.raft != nil {
		require.NoError(n.t, n.raft.Shutdown().Error(), "%s: shutdown", n.name)
		n.raft = nil
	}
	if n.trans != nil {
		require.NoError(n.t, n.trans.Close(), "%s: close transport", n.name)
		n.trans = nil
	}
}

func (n *oursNode) running() bool {
	return n.raft != nil && n.raft.State() != ours.Shutdown
}

func (n *oursNode) isLeader() bool { return n.running() && n.raft.State() == ours.Leader }

func (n *oursNode) leaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

func (n *oursNode) apply(cmd string) error {
	return n.raft.Apply([]byte(cmd), opTimeout).Error()
}

func (n *oursNode) applyAll(cmds []string, extensions []byte) error {
	futures := make([]ours.ApplyFuture, len(cmds))
	for i, cmd := range cmds {
		futures[i] = n.raft.ApplyLog(ours.Log{Data: []byte(cmd), Extensions: extensions}, opTimeout)
	}
	return waitAll(futures)
}

func (n *oursNode) storedLog(index uint64) (storedEntry, error) {
	var l ours.Log
	err := n.store.GetLog(index, &l)
	return storedEntry{l.Index, l.Term, uint8(l.Type), l.Data, l.Extensions, l.AppendedAt}, err
}

func (n *oursNode) lastIndex() uint64 { return n.raft.LastIndex() }

func (n *oursNode) verifyLeader() error { return n.raft.VerifyLeader().Error() }

func (n *oursNode) barrier() error { return n.raft.Barrier(opTimeout).Error() }

func (n *oursNode) transferTo(target node) error {
	return n.raft.LeadershipTransferToServer(ours.ServerID(target.id()), ours.ServerAddress(target.addr())).Error()
}

func (n *oursNode) addVoter(peer node) error {
	return n.raft.AddVoter(ours.ServerID(peer.id()), ours.ServerAddress(peer.addr()), 0, opTimeout).Error()
}

func (n *oursNode) addNonvoter(peer node) error {
	return n.raft.AddNonvoter(ours.ServerID(peer.id()), ours.ServerAddress(peer.addr()), 0, opTimeout).Error()
}

func (n *oursNode) removeServer(peer node) error {
	return n.raft.RemoveServer(ours.ServerID(peer.id()), 0, opTimeout).Error()
}

func (n *oursNode) snapshot() error { return n.raft.Snapshot().Error() }

func (n *oursNode) servers() (map[string]string, error) {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, err
	}
	servers := map[string]string{}
	for _, s := range future.Configuration().Servers {
		servers[string(s.ID)] = s.Suffrage.String()
	}
	return servers, nil
}

// ---- hashicorp/raft ----

type theirsNode struct {
	nodeBase
	store *hraft.InmemStore
	snaps *hraft.FileSnapshotStore
	trans *hraft.NetworkTransport
	raft  *hraft.Raft
}

// newTheirsNode makes a stopped hashicorp/raft node listening on a free
// loopback port; start runs it. It is shut down when the test ends.
func newTheirsNode(t *testing.T, id string, newTimeFormat bool) *theirsNode {
	n := &theirsNode{nodeBase: newNodeBase(t, kindTheirs, id, newTimeFormat), store: hraft.NewInmemStore()}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(n.snapDir, 2, n.logger)
	require.NoError(t, err)
	n.snaps = snaps
	n.listen()
	n.dumpLogsOnFailure()
	t.Cleanup(n.stop)
	return n
}

func (n *theirsNode) listen() {
	trans, err := hraft.NewTCPTransportWithConfig(n.address, nil, &hraft.NetworkTransportConfig{
		MaxPool: 3, Timeout: rpcTimeout, Logger: n.logger, MsgpackUseNewTimeFormat: n.newTimeFormat,
	})
	require.NoError(n.t, err, "%s: listen on %s", n.name, n.address)
	n.trans, n.address = trans, string(trans.LocalAddr())
}

func (n *theirsNode) config() *hraft.Config {
	conf := hraft.DefaultConfig()
	conf.LocalID = hraft.ServerID(n.name)
	conf.HeartbeatTimeout = heartbeatTimeout
	conf.ElectionTimeout = electionTimeout
	conf.LeaderLeaseTimeout = leaseTimeout
	conf.CommitTimeout = commitTimeout
	conf.TrailingLogs = trailingLogs
	conf.Logger = n.logger
	return conf
}

func (n *theirsNode) kind() kind { return kindTheirs }

func (n *theirsNode) start(servers []member) {
	if n.trans == nil {
		n.listen()
	}
	conf := n.config()
	if servers != nil {
		var configuration hraft.Configuration
		for _, m := range servers {
			configuration.Servers = append(configuration.Servers, hraft.Server{
				Suffrage: hraft.Voter, ID: hraft.ServerID(m.id), Address: hraft.ServerAddress(m.addr)})
		}
		require.NoError(n.t, hraft.BootstrapCluster(conf, n.store, n.store, n.snaps, n.trans, configuration))
	}
	n.state = newKVState()
	r, err := hraft.NewRaft(conf, theirsFSM{n.state}, n.store, n.store, n.snaps, n.trans)
	require.NoError(n.t, err, "%s: NewRaft", n.name)
	n.raft = r
}

func (n *theirsNode) stop() {
	if n.raft != nil {
		require.NoError(n.t, n.raft.Shutdown().Error(), "%s: shutdown", n.name)
		n.raft = nil
	}
	if n.trans != nil {
		require.NoError(n.t, n.trans.Close(), "%s: close transport", n.name)
		n.trans = nil
	}
}

func (n *theirsNode) running() bool {
	return n.raft != nil && n.raft.State() != hraft.Shutdown
}

func (n *theirsNode) isLeader() bool { return n.running() && n.raft.State() == hraft.Leader }

func (n *theirsNode) leaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

func (n *theirsNode) apply(cmd string) error {
	return n.raft.Apply([]byte(cmd), opTimeout).Error()
}

func (n *theirsNode) applyAll(cmds []string, extensions []byte) error {
	futures := make([]hraft.ApplyFuture, len(cmds))
	for i, cmd := range cmds {
		futures[i] = n.raft.ApplyLog(hraft.Log{Data: []byte(cmd), Extensions: extensions}, opTimeout)
	}
	return waitAll(futures)
}

func (n *theirsNode) storedLog(index uint64) (storedEntry, error) {
	var l hraft.Log
	err := n.store.GetLog(index, &l)
	return storedEntry{l.Index, l.Term, uint8(l.Type), l.Data, l.Extensions, l.AppendedAt}, err
}

func (n *theirsNode) lastIndex() uint64 { return n.raft.LastIndex() }

func (n *theirsNode) verifyLeader() error { return n.raft.VerifyLeader().Error() }

func (n *theirsNode) barrier() error { return n.raft.Barrier(opTimeout).Error() }

func (n *theirsNode) transferTo(target node) error {
	return n.raft.LeadershipTransferToServer(hraft.ServerID(target.id()), hraft.ServerAddress(target.addr())).Error()
}

func (n *theirsNode) addVoter(peer node) error {
	return n.raft.AddVoter(hraft.ServerID(peer.id()), hraft.ServerAddress(peer.addr()), 0, opTimeout).Error()
}

func (n *theirsNode) addNonvoter(peer node) error {
	return n.raft.AddNonvoter(hraft.ServerID(peer.id()), hraft.ServerAddress(peer.addr()), 0, opTimeout).Error()
}

func (n *theirsNode) removeServer(peer node) error {
	return n.raft.RemoveServer(hraft.ServerID(peer.id()), 0, opTimeout).Error()
}

func (n *theirsNode) snapshot() error { return n.raft.Snapshot().Error() }

func (n *theirsNode) servers() (map[string]string, error) {
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, err
	}
	servers := map[string]string{}
	for _, s := range future.Configuration().Servers {
		servers[string(s.ID)] = s.Suffrage.String()
	}
	return servers, nil
}

// newNode makes a stopped node of the given kind.
func newNode(t *testing.T, k kind, id string, newTimeFormat bool) node {
	if k == kindOurs {
		return newOursNode(t, id, newTimeFormat)
	}
	return newTheirsNode(t, id, newTimeFormat)
}
