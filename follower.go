package raft

import (
	"time"
)

// runFollower is the follower's loop: answer RPCs, and campaign when the
// leader has been silent for a heartbeat timeout.
func (r *Raft) runFollower() {
	leaderAddr, leaderID := r.LeaderWithID()
	r.logger.Info("entering follower state", "follower", r, "leader-address", leaderAddr, "leader-id", leaderID)
	incrCounter([]string{"raft", "state", "follower"}, 1)
	warnedNoPeers := false
	heartbeatTimer := r.randomTimeout(r.config().HeartbeatTimeout)

	for r.getState() == Follower {
		event, _ := r.serveNonLeader(heartbeatTimer, r.timerResetCh, nil)
		switch event {
		case timerReset:
			heartbeatTimer = r.randomTimeout(r.config().HeartbeatTimeout)
		case timerFired:
			timeout := r.config().HeartbeatTimeout
			heartbeatTimer = r.randomTimeout(timeout)
			if r.clock.since(r.lastContact.load()) < timeout {
				continue
			}
			if r.leaderSilent(&warnedNoPeers, leaderAddr, leaderID) {
				r.setState(Candidate)
				return
			}
		case shuttingDown:
			return
		}
	}
}

// leaderSilent is called when no leader was heard for a heartbeat timeout.
// It forgets the leader and reports whether to campaign: only a voter of
// its latest configuration does. warnedNoPeers keeps the warnings of one
// follower term to one.
func (r *Raft) leaderSilent(warnedNoPeers *bool, leaderAddr ServerAddress, leaderID ServerID) bool {
	// The leader has gone quiet: forget it, so that prevotes and votes for
	// others are no longer refused on its account.
	r.setLeader("", "")
	latest := r.configurations.latest
	switch {
	case r.configurations.latestIndex == 0:
		if !*warnedNoPeers {
			r.logger.Warn("no known peers, aborting election")
			*warnedNoPeers = true
		}
	case r.configurations.latestIndex == r.configurations.committedIndex && !hasVote(latest, r.localID):
		if !*warnedNoPeers {
			r.logger.Warn("not part of stable configuration, aborting election")
			*warnedNoPeers = true
		}
	case !hasVote(latest, r.localID):
		// A nonvoter, or removed in a configuration not yet committed:
		// never campaign.
	default:
		incrCounter([]string{"raft", "transition", "heartbeat_timeout"}, 1)
		r.logger.Warn("heartbeat timeout reached, starting election", "last-leader-addr", leaderAddr, "last-leader-id", leaderID)
		return true
	}
	return false
}

// maxAppendGroup bounds how many AppendEntries requests waiting on the
// RPC channel are handled together.
const maxAppendGroup = 64

// appendRequest is one AppendEntries request of a group handled together.
type appendRequest struct {
	rpc  RPC
	req  *AppendEntriesRequest
	resp *AppendEntriesResponse
	// accepted: the request's previous entry matched and its entries are
	// staged; it succeeds once they are durable.
	accepted bool
	// stored are the entries it added to the log.
	stored []*Log
}

// appendEntries handles an AppendEntries request (§5.3), in any role,
// together with the AppendEntries requests of the same leader and term
// already waiting behind it (a pipelined stream): their new entries reach
// the disk with one write, and each is answered, in order, once that
// write is durable (follower group commit). It returns an RPC it took off
// the channel but could not group, for the caller to handle next.
func (r *Raft) appendEntries(rpc RPC, a *AppendEntriesRequest) (next *RPC) {
	defer measureSince([]string{"raft", "rpc", "appendEntries"}, time.Now())
	group := []*appendRequest{{rpc: rpc, req: a}}
	if len(a.Entries) > 0 {
	collect:
		for len(group) < maxAppendGroup {
			select {
			case more := <-r.rpcCh:
				req, ok := more.Command.(*AppendEntriesRequest)
				if !ok || req.Term != a.Term || string(req.ID) != string(a.ID) || r.checkRPCHeader(more) != nil {
					next = &more
					break collect
				}
				group = append(group, &appendRequest{rpc: more, req: req})
			default:
				break collect
			}
		}
	}
	if len(group) > 1 {
		addSample([]string{"raft", "rpc", "appendEntries", "group"}, float32(len(group)))
	}
	r.appendGroup(group)
	return next
}

// appendGroup checks and stages each request of group in order, writes
// what they add with as few writes as possible (one, unless a request
// truncates a conflicting suffix after others added entries), then
// advances the commit index and answers them in order.
func (r *Raft) appendGroup(group []*appendRequest) {
	var w followerWrite
	var writeErr error
	if err := r.log.settleIfLeaderWriteFailed(); err != nil {
		writeErr = err
	}
	start := time.Now()
	for _, ar := range group {
		ar.resp = &AppendEntriesResponse{RPCHeader: r.header(), Term: r.getCurrentTerm(), LastLog: r.getLastIndex()}
		if writeErr != nil || !r.checkAppend(ar.req, ar.resp) {
			continue
		}
		snapshotIndex, _ := r.getLastSnapshot()
		plan, err := r.log.planAsFollower(ar.req.Entries, snapshotIndex)
		if err == nil && plan.truncatedFrom > 0 && !w.empty() {
			// The truncation waits for what is gathered so far.
			err = r.log.flush(&w)
			if err == nil {
				plan, err = r.log.planAsFollower(ar.req.Entries, snapshotIndex)
			}
		}
		if err != nil {
			writeErr = err
			continue
		}
		if plan.truncatedFrom > 0 && plan.truncatedFrom <= r.configurations.latestIndex {
			// The latest configuration is in the suffix that goes.
			r.setLatestConfiguration(r.configurations.committed, r.configurations.committedIndex)
		}
		r.log.stage(&w, plan)
		ar.accepted, ar.stored = true, plan.newEntries
	}
	if err := r.log.flush(&w); err != nil && writeErr == nil {
		writeErr = err
	}
	if writeErr != nil {
		r.logger.Error("failed to append to logs", "error", writeErr)
	} else {
		measureSince([]string{"raft", "rpc", "appendEntries", "storeLogs"}, start)
	}

	for _, ar := range group {
		if ar.accepted && writeErr == nil {
			r.finishAppend(ar)
		}
		ar.resp.LastLog = r.getLastIndex()
		ar.rpc.Respond(ar.resp, nil)
	}
}

// checkAppend applies the rules that come before an AppendEntries request's
// entries are looked at: its term, the leader it names, and the match of
// its previous entry (log matching). False means answer resp as it is.
func (r *Raft) checkAppend(a *AppendEntriesRequest, resp *AppendEntriesResponse) bool {
	if a.Term < r.getCurrentTerm() {
		return false
	}
	// A leader of this term or a newer one exists: follow it. A candidate
	// started by TimeoutNow is no exception: it has moved to a new term
	// before it handles another RPC, so the old leader's requests fail the
	// term check above, and one of its new term comes from a real leader.
	if a.Term > r.getCurrentTerm() || r.getState() != Follower {
		if err := r.stepDownTo(a.Term); err != nil {
			return false
		}
		resp.Term = a.Term
	}

	leaderAddr := a.Addr
	if len(leaderAddr) == 0 {
		leaderAddr = a.Leader
	}
	r.setLeader(r.trans.DecodePeer(leaderAddr), ServerID(a.ID))

	// The entry before the new ones must match ours (log matching).
	snapshotIndex, snapshotTerm := r.getLastSnapshot()
	if a.PrevLogEntry > 0 && a.PrevLogEntry > snapshotIndex {
		lastIndex, lastTerm := r.getLastLog()
		var prevTerm uint64
		switch {
		case a.PrevLogEntry == lastIndex:
			prevTerm = lastTerm
		case a.PrevLogEntry > lastIndex:
			resp.NoRetryBackoff = true
			return false
		default:
			entry, err := r.getEntry(a.PrevLogEntry)
			if err != nil {
				r.logger.Warn("failed to get previous log", "previous-index", a.PrevLogEntry, "last-index", lastIndex, "error", err)
				resp.NoRetryBackoff = true
				return false
			}
			prevTerm = entry.Term
		}
		if prevTerm != a.PrevLogTerm {
			r.logger.Warn("previous log term mis-match", "ours", prevTerm, "remote", a.PrevLogTerm)
			resp.NoRetryBackoff = true
			return false
		}
	} else if a.PrevLogEntry > 0 && a.PrevLogEntry == snapshotIndex && a.PrevLogTerm != snapshotTerm {
		// Our snapshot holds only committed entries, which every leader
		// has; a different term here means a confused leader.
		r.logger.Warn("previous log term mis-match at snapshot", "ours", snapshotTerm, "remote", a.PrevLogTerm)
		resp.NoRetryBackoff = true
		return false
	}
	// Entries at or below our snapshot are committed and so equal to the
	// leader's; only the ones above it are examined.
	return true
}

// finishAppend completes an accepted request whose entries are durable:
// their configurations take effect, the commit index follows the leader's,
// and the answer is a success.
func (r *Raft) finishAppend(ar *appendRequest) {
	for _, entry := range ar.stored {
		if err := r.processConfigurationLogEntry(entry); err != nil {
			r.logger.Error("bad configuration entry", "index", entry.Index, "error", err)
		}
	}
	// §5.3: the commit index follows the leader's, but only as far as the
	// entries this request proved equal to the leader's.
	a := ar.req
	if a.LeaderCommitIndex > 0 && a.LeaderCommitIndex > r.getCommitIndex() {
		verified := a.PrevLogEntry + uint64(len(a.Entries))
		if newCommit := min(a.LeaderCommitIndex, verified); newCommit > r.getCommitIndex() {
			start := time.Now()
			r.commitIndex.Store(newCommit)
			if r.configurations.latestIndex <= newCommit {
				r.setCommittedConfiguration(r.configurations.latest, r.configurations.latestIndex)
			}
			r.processLogs(newCommit, nil)
			measureSince([]string{"raft", "rpc", "appendEntries", "processLogs"}, start)
		}
	}
	ar.resp.Success = true
	r.lastContact.store(r.clock.now())
}
