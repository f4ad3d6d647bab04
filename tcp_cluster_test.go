//go:build go1.25

package raft

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// Cluster tests on real TCP (and TLS) on 127.0.0.1 with FileSnapshotStores
// on disk. Real sockets and files cannot run in a synctest bubble, so these
// tests use real time: timeouts are generous for a loaded machine, and every
// wait polls under a bound (tcpWaitTimeout) instead of sleeping and hoping.

const (
	tcpWaitTimeout = 30 * time.Second
	tcpRPCTimeout  = 2 * time.Second
)

// listenFunc opens a node's transport on bind ("127.0.0.1:0" for a fresh
// port, or the node's old address on a restart).
type listenFunc func(bind string, config *NetworkTransportConfig) (*NetworkTransport, error)

func listenTCP(bind string, config *NetworkTransportConfig) (*NetworkTransport, error) {
	return NewTCPTransportWithConfig(bind, nil, config)
}

func listenTLS(tlsConfig *tls.Config) listenFunc {
	return func(bind string, config *NetworkTransportConfig) (*NetworkTransport, error) {
		return NewTLSTransportWithConfig(bind, nil, tlsConfig, config)
	}
}

// tcpNode is a node on a real network transport. Its log, stable and
// snapshot stores survive a restart; its FSM and transport do not.
type tcpNode struct {
	t      *testing.T
	id     ServerID
	addr   ServerAddress
	listen listenFunc
	conf   *Config
	logs   *logBuffer
	store  *InmemStore
	snaps  *FileSnapshotStore
	fsm    *countingFSM
	trans  *NetworkTransport
	raft   *Raft
}

// newTCPNode opens a stopped node's transport on a free loopback port. The
// node is shut down when the test ends, and its log printed if it failed.
func newTCPNode(t *testing.T, id ServerID, listen listenFunc, tweak func(*Config)) *tcpNode {
	logs := &logBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: string(id), Output: logs, Level: hclog.Debug})
	// The default timeouts: shorter leases depose leaders when a loaded
	// machine runs the race detector.
	conf := DefaultConfig()
	conf.LocalID = id
	conf.Logger = logger
	if tweak != nil {
		tweak(conf)
	}
	snaps, err := NewFileSnapshotStoreWithLogger(t.TempDir(), 2, logger)
	require.NoError(t, err)
	n := &tcpNode{t: t, id: id, listen: listen, conf: conf, logs: logs, store: NewInmemStore(), snaps: snaps}
	n.openTransport("127.0.0.1:0")
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("log of %s:\n%s", id, logs.String())
		}
	})
	return n
}

func (n *tcpNode) openTransport(bind string) {
	trans, err := n.listen(bind, &NetworkTransportConfig{MaxPool: 3, Timeout: tcpRPCTimeout, Logger: n.conf.Logger})
	require.NoError(n.t, err, "%s: listen on %s", n.id, bind)
	n.trans, n.addr = trans, trans.LocalAddr()
}

// start runs the node from its stores with a fresh FSM, reopening its
// transport at the same address if it was stopped.
func (n *tcpNode) start() {
	if n.trans == nil {
		n.openTransport(string(n.addr))
	}
	n.fsm = newCountingFSM()
	r, err := NewRaft(n.conf, n.fsm, n.store, n.store, n.snaps, n.trans)
	require.NoError(n.t, err, "%s: NewRaft", n.id)
	n.raft = r
}

// stop shuts the node down, keeping its stores.
func (n *tcpNode) stop() {
	if n.raft != nil {
		require.NoError(n.t, n.raft.Shutdown().Error(), "%s: shutdown", n.id)
		n.raft = nil
	}
	if n.trans != nil {
		require.NoError(n.t, n.trans.Close(), "%s: close transport", n.id)
		n.trans = nil
	}
}

func (n *tcpNode) running() bool { return n.raft != nil && n.raft.State() != Shutdown }

// newTCPCluster starts one bootstrapped voter per listener.
func newTCPCluster(t *testing.T, listeners []listenFunc, tweak func(*Config)) []*tcpNode {
	var nodes []*tcpNode
	var configuration Configuration
	for i, listen := range listeners {
		n := newTCPNode(t, ServerID(fmt.Sprintf("node%d", i)), listen, tweak)
		nodes = append(nodes, n)
		configuration.Servers = append(configuration.Servers, Server{Suffrage: Voter, ID: n.id, Address: n.addr})
	}
	for _, n := range nodes {
		require.NoError(t, BootstrapCluster(n.conf, n.store, n.store, n.snaps, n.trans, configuration))
		n.start()
	}
	return nodes
}

// waitTCPLeader waits until exactly one of nodes leads and every one of
// them names it as leader, and returns it.
func waitTCPLeader(t *testing.T, nodes ...*tcpNode) *tcpNode {
	t.Helper()
	var leader *tcpNode
	require.Eventually(t, func() bool {
		leader = nil
		for _, n := range nodes {
			if n.running() && n.raft.State() == Leader {
				if leader != nil {
					return false
				}
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		for _, n := range nodes {
			if _, id := n.raft.LeaderWithID(); id != leader.id {
				return false
			}
		}
		return true
	}, tcpWaitTimeout, 10*time.Millisecond, "one leader that every node follows")
	return leader
}

// waitTCPConverged waits until every node has applied count commands, then
// checks that they applied the same ones.
func waitTCPConverged(t *testing.T, count int, nodes ...*tcpNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.fsm.len() < count {
				return false
			}
		}
		return true
	}, tcpWaitTimeout, 10*time.Millisecond, "%d commands applied on every node", count)
	want := nodes[0].fsm.commands()
	require.Len(t, want, count)
	for _, n := range nodes[1:] {
		require.Equal(t, want, n.fsm.commands(), "FSM of %s differs from %s", n.id, nodes[0].id)
	}
}

// TestTCPClusterLeaderFailoverAndSnapshotCatchUp: on TCP with snapshots on
// disk, the leader is killed, the other two elect a new leader and keep
// writing well past a compaction, and the old leader restarts from its
// stores and catches up by InstallSnapshot.
func TestTCPClusterLeaderFailoverAndSnapshotCatchUp(t *testing.T) {
	nodes := newTCPCluster(t, []listenFunc{listenTCP, listenTCP, listenTCP}, func(conf *Config) {
		conf.SnapshotThreshold = 1024
		conf.SnapshotInterval = 50 * time.Millisecond
		conf.TrailingLogs = 128
	})
	old := waitTCPLeader(t, nodes...)
	applyN(t, old.raft, "before", 20)
	waitTCPConverged(t, 20, nodes...)
	lastBeforeKill := old.raft.LastIndex()
	old.stop()

	var survivors []*tcpNode
	for _, n := range nodes {
		if n != old {
			survivors = append(survivors, n)
		}
	}
	leader := waitTCPLeader(t, survivors...)
	// More than SnapshotThreshold, so the new leader snapshots and compacts
	// away the entries the old node lacks.
	written := 1500
	applyN(t, leader.raft, "after", written)
	waitTCPConverged(t, 20+written, survivors...)
	require.Eventually(t, func() bool {
		first, err := leader.store.FirstIndex()
		return err == nil && first > lastBeforeKill+1
	}, tcpWaitTimeout, 10*time.Millisecond, "the new leader compacts its log past index %d", lastBeforeKill+1)
	snapshots, err := leader.snaps.List()
	require.NoError(t, err)
	require.NotEmpty(t, snapshots, "the new leader keeps its snapshots on disk")

	old.start()
	restoresAtStart := old.fsm.restores.Load()
	waitTCPConverged(t, 20+written, nodes...)
	require.Greater(t, old.fsm.restores.Load(), restoresAtStart, "the old leader caught up by InstallSnapshot")
	require.Equal(t, leader.id, waitTCPLeader(t, nodes...).id, "the rejoining node did not depose the leader")

	applyN(t, leader.raft, "rejoined", 10)
	waitTCPConverged(t, 30+written, nodes...)
}

// TestTLSClusterFormsWithCertificatesFromItsCA: three nodes holding
// certificates from the cluster's CA elect a leader and replicate over
// mutual TLS, including a leadership transfer.
func TestTLSClusterFormsWithCertificatesFromItsCA(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	var listeners []listenFunc
	for i := range 3 {
		listeners = append(listeners, listenTLS(mutualTLS(ca.issue(t, fmt.Sprintf("node%d", i)), ca)))
	}
	nodes := newTCPCluster(t, listeners, nil)
	leader := waitTCPLeader(t, nodes...)
	applyN(t, leader.raft, "tls", 20)
	waitTCPConverged(t, 20, nodes...)

	require.NoError(t, leader.raft.LeadershipTransfer().Error())
	next := waitTCPLeader(t, nodes...)
	require.NotEqual(t, leader.id, next.id, "leadership moved")
	applyN(t, next.raft, "tls-next", 20)
	waitTCPConverged(t, 40, nodes...)
	for _, n := range nodes {
		require.NotContains(t, n.logs.String(), "TLS handshake failed", "%s refused a peer", n.id)
	}
}

// TestTLSClusterRefusesIntruders: a member of the configuration that holds
// a certificate from another CA, or speaks plain TCP, gets nothing from
// the TLS cluster; its attempts are refused and logged, and the two trusted
// members still form a quorum and replicate.
func TestTLSClusterRefusesIntruders(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	rogueCA := newTestCA(t, "rogue CA")
	cases := []struct {
		name string
		// intruder is how the third member listens and dials.
		intruder listenFunc
		// intruderLogs is what the intruder logs when the leader dials it.
		intruderLogs string
	}{
		// It trusts the cluster's CA, but the cluster does not trust it.
		{"certificate from another CA", listenTLS(mutualTLS(rogueCA.issue(t, "node2"), ca)), "TLS handshake failed"},
		{"plain TCP", listenTCP, "unknown rpc type 22"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := newTCPCluster(t, []listenFunc{
				listenTLS(mutualTLS(ca.issue(t, "node0"), ca)),
				listenTLS(mutualTLS(ca.issue(t, "node1"), ca)),
				tc.intruder,
			}, nil)
			trusted, intruder := nodes[:2], nodes[2]

			leader := waitTCPLeader(t, trusted...)
			applyN(t, leader.raft, "trusted", 20)
			waitTCPConverged(t, 20, trusted...)

			// The intruder hears no leader, so it campaigns: every
			// connection it opens to a trusted member is refused and
			// logged there. The leader's connections to it fail too.
			for _, n := range trusted {
				require.Eventually(t, func() bool { return strings.Contains(n.logs.String(), "TLS handshake failed") },
					tcpWaitTimeout, 10*time.Millisecond, "%s logs the intruder's refused handshake", n.id)
			}
			require.Eventually(t, func() bool { return strings.Contains(intruder.logs.String(), tc.intruderLogs) },
				tcpWaitTimeout, 10*time.Millisecond, "intruder logs the leader's connection as refused")

			require.Zero(t, intruder.fsm.len(), "the intruder applied nothing")
			require.NotEqual(t, Leader, intruder.raft.State())
			_, intruderLeader := intruder.raft.LeaderWithID()
			require.Empty(t, intruderLeader, "the intruder never heard from a leader")
			require.Equal(t, leader.id, waitTCPLeader(t, trusted...).id, "the intruder did not disturb the leader")
			require.Equal(t, uint64(0), intruder.raft.CommitIndex())
		})
	}
}
