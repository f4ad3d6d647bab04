// Package raft is an embeddable implementation of the Raft consensus
// protocol: it keeps a replicated log on a cluster of servers and feeds the
// same committed entries, in the same order, to a state machine on every
// server. It is a drop-in replacement for github.com/hashicorp/raft: the
// same public API, the same storage interfaces, and the same TCP wire
// protocol.
//
// # The pieces
//
// A node is built from parts the application chooses:
//
//   - an FSM: the application's state machine. Apply is called with each
//     committed LogCommand entry; Snapshot and Restore support log
//     compaction and catching up new servers.
//   - a LogStore and a StableStore: durable storage for the log and for the
//     current term and vote. InmemStore serves tests; the wal subpackage is
//     the durable store for production.
//   - a SnapshotStore: FileSnapshotStore in production, InmemSnapshotStore
//     or DiscardSnapshotStore in tests.
//   - a Transport: NetworkTransport over TCP (optionally TLS) between
//     machines, InmemTransport between nodes in one process.
//
// # Starting a cluster
//
// Every server creates its node with NewRaft. A brand-new cluster is
// bootstrapped once, on the servers of its initial configuration, with
// BootstrapCluster (the package-level function before NewRaft, or the
// method after it); a restarted server resumes from its stores and must
// not be bootstrapped again:
//
//	conf := raft.DefaultConfig()
//	conf.LocalID = "node1"
//	r, err := raft.NewRaft(conf, fsm, logStore, stableStore, snapshots, transport)
//	...
//	r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
//		{ID: "node1", Address: transport.LocalAddr()},
//		{ID: "node2", Address: "10.0.0.2:7000"},
//		{ID: "node3", Address: "10.0.0.3:7000"},
//	}})
//
// The servers then elect a leader. LeaderCh, Config.NotifyCh, State and
// LeaderWithID tell the application who leads.
//
// # Writing
//
// Commands go to the leader with Apply. The returned future resolves once
// the entry is committed by a majority and applied to the leader's FSM;
// Response returns what FSM.Apply returned:
//
//	f := r.Apply(cmd, time.Second)
//	if err := f.Error(); err != nil {
//		// ErrNotLeader, ErrEnqueueTimeout: the command never entered the
//		// log; retry it on the leader. ErrLeadershipLost, ErrRaftShutdown:
//		// its outcome is unknown.
//	}
//	result := f.Response()
//
// # Reading
//
// Reading the local FSM directly is fast but may be stale. For a
// linearizable read without a log write, call ReadIndex on the leader and
// read the FSM once its Error returns nil:
//
//	if err := r.ReadIndex(time.Second).Error(); err != nil {
//		// ErrNotLeader: forward the read to the leader.
//	}
//	value := myFSM.Get(key)
//
// Many concurrent reads share one heartbeat round; with Config.LeaseReads
// the leader skips the round while its lease (HeartbeatTimeout minus
// MaxClockDrift from the send time of the last request a quorum accepted)
// holds. Barrier returns once every earlier entry is applied locally (a log
// write); VerifyLeader checks that this node still leads by a heartbeat
// round to a quorum.
//
// # Membership
//
// AddVoter, AddNonvoter, DemoteVoter and RemoveServer change the cluster
// one server at a time, on the leader; a change waits until the leader has
// committed an entry of its term and resolves once committed.
// LeadershipTransfer hands leadership to another voter. RecoverCluster
// rewrites the membership of a stopped node when a quorum is lost for good.
//
// # Snapshots
//
// SnapshotThreshold, SnapshotInterval and TrailingLogs decide when the log
// is compacted; Snapshot takes one now and Restore replaces every node's
// state with a snapshot you supply. Followers too far behind receive the
// leader's snapshot by InstallSnapshot, streamed.
//
// # Transport
//
// NewTCPTransport and NewTLSStreamLayer speak hashicorp/raft's wire
// protocol. Every read and write has a deadline (the timeout argument), a
// message larger than NetworkTransportConfig.MaxMessageSize
// (DefaultMaxMessageSize, 64 MiB) is refused before it is allocated, and
// replication is pipelined.
//
// # Packages
//
// This package, its tests included, imports no other package of its
// module, so that an application can switch from hashicorp/raft with one
// replace line: under the replace this package is known as
// github.com/hashicorp/raft, and an import of a sibling package by our own
// path would name a module the application does not require. That holds
// for test files too (go mod tidy walks the tests of imported packages), so
// the examples are in package raft rather than raft_test. Subpackages (wal,
// rafttest, bench) import this one, never the reverse.
//
// # Differences from hashicorp/raft
//
// The README lists them; in short: only protocol version 3 is spoken,
// GetConfiguration reports the real index, failed store writes make the
// node step down instead of panicking, and the test kit lives in the
// rafttest subpackage.
package raft
