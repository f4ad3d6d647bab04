package raft

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// How the main loop answers the RPCs that reach it: the protocol check,
// the dispatch by request type, and the heartbeat fast path.

// header is the RPC header this node sends. It is built once: protocol
// version, ID and address do not change while the node runs. Receivers
// treat its byte slices as read-only.
func (r *Raft) header() RPCHeader { return r.rpcHeader }

// checkRPCHeader refuses RPCs from peers speaking a protocol we do not:
// versions outside [own-1, ProtocolVersionMax].
func (r *Raft) checkRPCHeader(rpc RPC) error {
	wh, ok := rpc.Command.(WithRPCHeader)
	if !ok {
		return errUnexpectedCommand
	}
	v := wh.GetRPCHeader().ProtocolVersion
	if v < r.config().ProtocolVersion-1 || v > ProtocolVersionMax {
		return ErrUnsupportedProtocol
	}
	return nil
}

// processRPC handles an incoming RPC on the main loop, and any RPC the
// handler took off the channel after it (AppendEntries groups).
func (r *Raft) processRPC(rpc RPC) {
	for {
		next := r.processOneRPC(rpc)
		if next == nil {
			return
		}
		rpc = *next
	}
}

// processOneRPC handles one incoming RPC. It returns an RPC the handler
// took off the channel but did not handle.
func (r *Raft) processOneRPC(rpc RPC) (next *RPC) {
	if err := r.checkRPCHeader(rpc); err != nil {
		rpc.Respond(nil, err)
		return nil
	}
	switch cmd := rpc.Command.(type) {
	case *AppendEntriesRequest:
		return r.appendEntries(rpc, cmd)
	case *RequestVoteRequest:
		r.requestVote(rpc, cmd)
	case *RequestPreVoteRequest:
		r.requestPreVote(rpc, cmd)
	case *InstallSnapshotRequest:
		r.installSnapshot(rpc, cmd)
	case *TimeoutNowRequest:
		r.timeoutNow(rpc, cmd)
	default:
		r.logger.Error("got unexpected command", "command", hclog.Fmt("%#v", rpc.Command))
		rpc.Respond(nil, errUnexpectedCommand)
	}
	return nil
}

// processHeartbeat is the transport's fast path for heartbeats. A follower
// that already knows this leader in this term answers here, without waiting
// for the main loop (which may be busy with the disk); anything else goes
// to the main loop.
func (r *Raft) processHeartbeat(rpc RPC) {
	defer measureSince([]string{"raft", "rpc", "processHeartbeat"}, time.Now())
	req, ok := rpc.Command.(*AppendEntriesRequest)
	if !ok || r.checkRPCHeader(rpc) != nil || len(req.Entries) > 0 {
		r.forwardHeartbeat(rpc)
		return
	}
	r.heartbeatMu.Lock()
	known := r.getState() == Follower && req.Term == r.getCurrentTerm() &&
		r.leaderID != "" && ServerID(req.ID) == r.leaderID
	if known {
		r.lastContact.store(r.clock.now())
		lastIndex := r.getLastIndex()
		resp := &AppendEntriesResponse{
			RPCHeader: r.header(),
			Term:      req.Term,
			LastLog:   lastIndex,
			Success:   true,
		}
		r.heartbeatMu.Unlock()
		rpc.Respond(resp, nil)
		return
	}
	r.heartbeatMu.Unlock()
	r.forwardHeartbeat(rpc)
}

func (r *Raft) forwardHeartbeat(rpc RPC) {
	select {
	case r.heartbeatCh <- rpc:
	case <-r.shutdownCh:
		rpc.Respond(nil, ErrRaftShutdown)
	}
}

// timeoutNow starts an election at once, as asked by the leader handing
// over leadership. Unlike hashicorp/raft, a TimeoutNow from a server that is
// not our current leader is refused.
func (r *Raft) timeoutNow(rpc RPC, req *TimeoutNowRequest) {
	_, leaderID := r.LeaderWithID()
	if leaderID == "" || ServerID(req.ID) != leaderID {
		rpc.Respond(nil, fmt.Errorf("timeout now refused: %q is not the current leader", req.ID))
		return
	}
	r.setLeader("", "")
	r.candidateFromLeadershipTransfer.Store(true)
	r.setState(Candidate)
	rpc.Respond(&TimeoutNowResponse{RPCHeader: r.header()}, nil)
}
