package raft

import "time"

// mainLoopRequest is a request the public API hands to the main loop on
// opsCh. Each request says what every role does with it, so a new request
// does not compile until the leader and the other roles answer it.
type mainLoopRequest interface {
	// respond fails the request before the main loop took it.
	respond(err error)
	// serveLeader answers the request on the leader's loop.
	serveLeader(l *leader)
	// serveNonLeader answers the request on a follower's or a candidate's
	// loop.
	serveNonLeader(r *Raft)
}

func (f *configurationsFuture) serveLeader(l *leader) { f.serveNonLeader(l.r) }
func (f *configurationsFuture) serveNonLeader(r *Raft) {
	f.configurations = r.configurations.Clone()
	f.respond(nil)
}

func (f *bootstrapFuture) serveLeader(*leader) { f.respond(ErrCantBootstrap) }
func (f *bootstrapFuture) serveNonLeader(r *Raft) {
	if r.getState() != Follower {
		f.respond(ErrCantBootstrap)
		return
	}
	f.respond(r.liveBootstrap(f.configuration))
}

func (v *verifyFuture) serveLeader(l *leader) { l.startVerify(v) }
func (v *verifyFuture) serveNonLeader(*Raft)  { v.respond(ErrNotLeader) }

func (f *leadershipTransferFuture) serveLeader(l *leader) { l.startLeadershipTransfer(f) }
func (f *leadershipTransferFuture) serveNonLeader(*Raft)  { f.respond(ErrNotLeader) }

func (f *userRestoreFuture) serveLeader(l *leader) { l.restoreUserSnapshot(f) }
func (f *userRestoreFuture) serveNonLeader(*Raft)  { f.respond(ErrNotLeader) }

// sendOp hands a request to the main loop, waiting at most timeout (0:
// forever). It returns false, having answered the request, when that fails.
func (r *Raft) sendOp(op mainLoopRequest, timeout time.Duration) bool {
	timer, stop := enqueueTimer(timeout)
	defer stop()
	select {
	case r.opsCh <- op:
		return true
	case <-timer:
		op.respond(ErrEnqueueTimeout)
	case <-r.shutdownCh:
		op.respond(ErrRaftShutdown)
	}
	return false
}

// nonLeaderEvent says which of its own inputs woke a follower's or a
// candidate's loop.
type nonLeaderEvent int

const (
	// servedInput: an RPC or a request came and was answered.
	servedInput nonLeaderEvent = iota
	// timerFired: the role's timer fired.
	timerFired
	// timerReset: the timer is to be started anew (ReloadConfig).
	timerReset
	// voteArrived: an answer of the current vote round came.
	voteArrived
	// shuttingDown: the node is shutting down.
	shuttingDown
)

// serveNonLeader waits for the next input of a follower's or a candidate's
// loop. What every node that does not lead answers the same way, it answers
// itself: RPCs, and applies, reads, membership changes and main-loop
// requests, which a non-leader refuses. It reports the role's own inputs
// instead: timer firing, a poke on resetCh, an answer on votes (returned),
// or shutdown. A nil channel is never ready.
func (r *Raft) serveNonLeader(timer <-chan time.Time, resetCh <-chan struct{}, votes <-chan voteResult) (nonLeaderEvent, voteResult) {
	r.mainSaturation.sleeping()
	select {
	case rpc := <-r.rpcCh:
		r.mainSaturation.working()
		r.processRPC(rpc)
	case rpc := <-r.heartbeatCh:
		r.mainSaturation.working()
		r.processRPC(rpc)
	case a := <-r.applyCh:
		r.mainSaturation.working()
		a.respond(ErrNotLeader)
	case f := <-r.readCh:
		r.mainSaturation.working()
		f.respond(ErrNotLeader)
	case c := <-r.configurationChangeCh:
		r.mainSaturation.working()
		c.respond(ErrNotLeader)
	case op := <-r.opsCh:
		r.mainSaturation.working()
		op.serveNonLeader(r)
	case vote := <-votes:
		r.mainSaturation.working()
		return voteArrived, vote
	case <-resetCh:
		r.mainSaturation.working()
		return timerReset, voteResult{}
	case <-timer:
		r.mainSaturation.working()
		return timerFired, voteResult{}
	case <-r.shutdownCh:
		r.mainSaturation.working()
		return shuttingDown, voteResult{}
	}
	return servedInput, voteResult{}
}
