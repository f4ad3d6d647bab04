package raft

import "time"

// LeadershipTransfer hands leadership to the most up-to-date voter. The
// future resolves once leadership has moved, or fails after
// ElectionTimeout with "leadership transfer timeout".
func (r *Raft) LeadershipTransfer() Future {
	return r.initiateLeadershipTransfer(nil, nil)
}

// LeadershipTransferToServer hands leadership to the given voter.
func (r *Raft) LeadershipTransferToServer(id ServerID, address ServerAddress) Future {
	return r.initiateLeadershipTransfer(&id, &address)
}

func (r *Raft) initiateLeadershipTransfer(id *ServerID, address *ServerAddress) Future {
	if id != nil && *id == r.localID {
		return errorFuture{errTransferToSelf}
	}
	f := &leadershipTransferFuture{id: id, address: address}
	r.initFuture(&f.deferError)
	r.sendOp(f, 0)
	return f
}

// transferResult is what a transfer goroutine reports to the leader loop.
type transferResult struct {
	future *leadershipTransferFuture
	err    error
}

// startLeadershipTransfer picks the target and starts the transfer: catch
// the target up, then send it TimeoutNow. Applies and membership changes are
// refused while it runs.
func (l *leader) startLeadershipTransfer(f *leadershipTransferFuture) {
	r := l.r
	if l.transfer != nil {
		f.respond(ErrLeadershipTransferInProgress)
		return
	}
	var target *followerReplication
	if f.id != nil {
		repl, ok := l.replState[*f.id]
		if !ok || !votersOf(r.configurations.latest).isVoter(*f.id) {
			f.respond(errCannotFindPeer)
			return
		}
		target = repl
	} else {
		// The voter furthest ahead needs the least catching up.
		var best uint64
		for _, id := range votersOf(r.configurations.latest).ids {
			repl, ok := l.replState[id]
			if !ok {
				continue
			}
			if match := l.commitment.matchIndexOf(id); target == nil || match > best {
				target, best = repl, match
			}
		}
		if target == nil {
			f.respond(errCannotFindPeer)
			return
		}
	}
	l.transfer = f
	r.logger.Info("starting leadership transfer", "target", target.getPeer().ID)
	commitment, stopCh, doneCh := l.commitment, l.stopCh, l.transferDoneCh
	r.goFunc(func() { r.runLeadershipTransfer(f, target, commitment, stopCh, doneCh) })
}

// runLeadershipTransfer drives one transfer. It only reports to the leader
// loop; the leader loop answers the future.
func (r *Raft) runLeadershipTransfer(f *leadershipTransferFuture, target *followerReplication,
	c *commitment, stopCh <-chan struct{}, doneCh chan<- transferResult) {
	timeout := r.config().ElectionTimeout
	deadline := time.After(timeout)
	report := func(err error) {
		select {
		case doneCh <- transferResult{future: f, err: err}:
		case <-stopCh:
			// Leadership ended meanwhile; teardown answers the future.
		}
	}
	peer := target.getPeer()
	// A target that was unreachable a moment ago may be deep in a back-off
	// (up to 10s): catch it up now, not after the transfer timed out.
	target.kick()
	for c.matchIndexOf(peer.ID) < r.getLastIndex() {
		target.trigger()
		// Woken when the target's match index reaches our last entry.
		caughtUp, stopWaiting := c.awaitMatch(peer.ID, r.getLastIndex())
		select {
		case <-caughtUp:
		case <-deadline:
			stopWaiting()
			report(errLeadershipTransferTimed)
			return
		case <-stopCh:
			stopWaiting()
			return
		case <-r.shutdownCh:
			stopWaiting()
			return
		}
	}
	var resp TimeoutNowResponse
	req := &TimeoutNowRequest{RPCHeader: r.header()}
	if err := r.trans.TimeoutNow(peer.ID, peer.Address, req, &resp); err != nil {
		report(err)
		return
	}
	// The target campaigns now; our leadership ends when it wins.
	select {
	case <-stopCh:
	case <-time.After(timeout):
		report(errLeadershipTransferTimed)
	case <-r.shutdownCh:
	}
}
