package raft

import "errors"

// Sentinel errors. Callers compare with errors.Is; the texts are part of the
// compatibility contract (docs/COMPATIBILITY.md §5) since some callers match on them.
var (
	// ErrLeader: the operation is for followers only.
	ErrLeader = errors.New("node is the leader")

	// ErrNotLeader: the operation needs the leader and this node is not it.
	// The command never entered the log, so it is safe to retry elsewhere.
	ErrNotLeader = errors.New("node is not the leader")

	// ErrNotVoter: the operation needs a voter and this node is not one.
	ErrNotVoter = errors.New("node is not a voter")

	// ErrLeadershipLost: this node stopped leading after the command entered
	// its log and before it committed. The outcome is unknown: a later
	// leader may still commit the entry.
	ErrLeadershipLost = errors.New("leadership lost while committing log")

	// ErrAbortedByRestore: a user snapshot restore replaced the state while
	// the command was in flight.
	ErrAbortedByRestore = errors.New("snapshot restored while committing log")

	// ErrRaftShutdown: the node has been shut down.
	ErrRaftShutdown = errors.New("raft is already shutdown")

	// ErrEnqueueTimeout: the main loop did not take the command within the
	// caller's timeout. The command never entered the log.
	ErrEnqueueTimeout = errors.New("timed out enqueuing operation")

	// ErrNothingNewToSnapshot: the FSM has applied nothing since start or
	// since the last restore, so a snapshot would add nothing.
	ErrNothingNewToSnapshot = errors.New("nothing new to snapshot")

	// ErrUnsupportedProtocol: the operation or the peer's RPC header needs a
	// protocol version this node does not speak.
	ErrUnsupportedProtocol = errors.New("operation not supported with current protocol version")

	// ErrCantBootstrap: the stores already hold state (a term, log entries
	// or a snapshot), so bootstrapping would overwrite a cluster.
	ErrCantBootstrap = errors.New("bootstrap only works on new clusters")

	// ErrLeadershipTransferInProgress: the leader is handing leadership over
	// and takes no new commands meanwhile. The command never entered the log.
	ErrLeadershipTransferInProgress = errors.New("leadership transfer in progress")

	// ErrIncompatibleLogStore: a Config option needs an interface the log
	// store does not offer (RestoreCommittedLogs needs a
	// CommitTrackingLogStore).
	ErrIncompatibleLogStore = errors.New("log store does not implement some required methods or malformed")

	// ErrTransportShutdown: the transport has been closed.
	ErrTransportShutdown = errors.New("transport shutdown")

	// ErrPipelineShutdown: the append pipeline has been closed.
	ErrPipelineShutdown = errors.New("append pipeline closed")

	// ErrLogNotFound: the store holds no entry at that index. Stores must
	// return this value, or an error wrapping it: Raft tests for it with
	// errors.Is.
	ErrLogNotFound = errors.New("log not found")

	// ErrPipelineReplicationNotSupported: the transport offers no pipeline;
	// Raft quietly keeps replicating one request at a time.
	ErrPipelineReplicationNotSupported = errors.New("pipeline replication not supported")
)

// Unexported error texts that peers and callers match on.
var (
	errUnexpectedCommand       = errors.New("unexpected command")
	errTransferToSelf          = errors.New("cannot transfer leadership to itself")
	errLeadershipTransferTimed = errors.New("leadership transfer timeout")
	errCannotFindPeer          = errors.New("cannot find peer")
	errShortRead               = errors.New("short read")
	errNoSnapshot              = errors.New("no snapshot available")
)
