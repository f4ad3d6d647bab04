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
		select {
		case rpc := <-r.rpcCh:
			r.processRPC(rpc)
		case rpc := <-r.heartbeatCh:
			r.processRPC(rpc)
		case a := <-r.applyCh:
			a.respond(ErrNotLeader)
		case f := <-r.readCh:
			f.respond(ErrNotLeader)
		case c := <-r.configurationChangeCh:
			c.respond(ErrNotLeader)
		case op := <-r.opsCh:
			r.handleOpNotLeader(op)
		case <-r.timerResetCh:
			heartbeatTimer = r.randomTimeout(r.config().HeartbeatTimeout)
		case <-heartbeatTimer:
			timeout := r.config().HeartbeatTimeout
			heartbeatTimer = r.randomTimeout(timeout)
			if time.Since(r.lastContact.load()) < timeout {
				continue
			}
			// The leader has gone quiet: forget it, so that prevotes and
			// votes for others are no longer refused on its account.
			r.setLeader("", "")
			latest := r.configurations.latest
			switch {
			case r.configurations.latestIndex == 0:
				if !warnedNoPeers {
					r.logger.Warn("no known peers, aborting election")
					warnedNoPeers = true
				}
			case r.configurations.latestIndex == r.configurations.committedIndex && !hasVote(latest, r.localID):
				if !warnedNoPeers {
					r.logger.Warn("not part of stable configuration, aborting election")
					warnedNoPeers = true
				}
			case !hasVote(latest, r.localID):
				// A nonvoter, or removed in a configuration not yet
				// committed: never campaign.
			default:
				incrCounter([]string{"raft", "transition", "heartbeat_timeout"}, 1)
				r.logger.Warn("heartbeat timeout reached, starting election", "last-leader-addr", leaderAddr, "last-leader-id", leaderID)
				r.setState(Candidate)
				return
			}
		case <-r.shutdownCh:
			return
		}
	}
}

// handleOpNotLeader answers a main-loop request on a node that is not the
// leader.
func (r *Raft) handleOpNotLeader(op interface{}) {
	switch op := op.(type) {
	case *configurationsFuture:
		op.configurations = r.configurations.Clone()
		op.respond(nil)
	case *bootstrapFuture:
		if r.getState() != Follower {
			op.respond(ErrCantBootstrap)
			return
		}
		op.respond(r.liveBootstrap(op.configuration))
	case *verifyFuture:
		op.respond(ErrNotLeader)
	case *leadershipTransferFuture:
		op.respond(ErrNotLeader)
	case *userRestoreFuture:
		op.respond(ErrNotLeader)
	default:
		r.logger.Error("unexpected request on main loop", "type", op)
	}
}

// appendEntries handles an AppendEntries request (§5.3), in any role.
func (r *Raft) appendEntries(rpc RPC, a *AppendEntriesRequest) {
	defer measureSince([]string{"raft", "rpc", "appendEntries"}, time.Now())
	lastIndex := r.getLastIndex()
	resp := &AppendEntriesResponse{
		RPCHeader: r.header(),
		Term:      r.getCurrentTerm(),
		LastLog:   lastIndex,
	}
	var rpcErr error
	defer func() { rpc.Respond(resp, rpcErr) }()

	if a.Term < r.getCurrentTerm() {
		return
	}
	// A leader of this term or a newer one exists: follow it. A candidate
	// started by TimeoutNow keeps campaigning against the old leader.
	if a.Term > r.getCurrentTerm() || (r.getState() != Follower && !r.candidateFromLeadershipTransfer.Load()) {
		if err := r.stepDownTo(a.Term); err != nil {
			return
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
			return
		default:
			entry, err := r.getEntry(a.PrevLogEntry)
			if err != nil {
				r.logger.Warn("failed to get previous log", "previous-index", a.PrevLogEntry, "last-index", lastIndex, "error", err)
				resp.NoRetryBackoff = true
				return
			}
			prevTerm = entry.Term
		}
		if prevTerm != a.PrevLogTerm {
			r.logger.Warn("previous log term mis-match", "ours", prevTerm, "remote", a.PrevLogTerm)
			resp.NoRetryBackoff = true
			return
		}
	} else if a.PrevLogEntry > 0 && a.PrevLogEntry == snapshotIndex && a.PrevLogTerm != snapshotTerm {
		// Our snapshot holds only committed entries, which every leader
		// has; a different term here means a confused leader.
		r.logger.Warn("previous log term mis-match at snapshot", "ours", snapshotTerm, "remote", a.PrevLogTerm)
		resp.NoRetryBackoff = true
		return
	}
	// Entries at or below our snapshot are committed and so equal to the
	// leader's; only the ones above it are examined.

	if len(a.Entries) > 0 {
		start := time.Now()
		if err := r.appendNewEntries(a.Entries, snapshotIndex); err != nil {
			r.logger.Error("failed to append to logs", "error", err)
			lastIndex := r.getLastIndex()
			resp.LastLog = lastIndex
			return
		}
		measureSince([]string{"raft", "rpc", "appendEntries", "storeLogs"}, start)
	}

	// §5.3: the commit index follows the leader's, but only as far as the
	// entries this request proved equal to the leader's.
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

	lastIndex = r.getLastIndex()
	resp.LastLog = lastIndex
	resp.Success = true
	r.lastContact.store(time.Now())
}

// appendNewEntries stores the entries of an AppendEntries request that we
// do not hold yet, first removing any conflicting suffix of our log.
func (r *Raft) appendNewEntries(entries []*Log, snapshotIndex uint64) error {
	lastIndex, _ := r.getLastLog()
	var newEntries []*Log
	for i, entry := range entries {
		if entry.Index <= snapshotIndex {
			continue
		}
		if entry.Index > lastIndex {
			newEntries = entries[i:]
			break
		}
		stored, err := r.getEntry(entry.Index)
		if err != nil {
			return err
		}
		if stored.Term != entry.Term {
			// §5.3: a conflicting entry and all that follow it go.
			r.logger.Warn("clearing log suffix", "from", entry.Index, "to", lastIndex)
			if err := r.logs.DeleteRange(entry.Index, lastIndex); err != nil {
				return err
			}
			r.tail.truncateAfter(entry.Index - 1)
			if entry.Index <= r.configurations.latestIndex {
				r.setLatestConfiguration(r.configurations.committed, r.configurations.committedIndex)
			}
			// Until the new entries are stored the log ends before them.
			if prev, err := r.getEntry(entry.Index - 1); err == nil {
				r.setLastLog(prev.Index, prev.Term)
			} else {
				r.setLastLog(0, 0)
			}
			newEntries = entries[i:]
			break
		}
	}
	if len(newEntries) == 0 {
		return nil
	}
	r.stageCommitIndex()
	if err := r.logs.StoreLogs(newEntries); err != nil {
		// Some entries may have been written: learn where the log ends.
		r.tail.reset()
		r.reloadLastLog()
		return err
	}
	r.tail.append(newEntries)
	for _, entry := range newEntries {
		if err := r.processConfigurationLogEntry(entry); err != nil {
			r.logger.Error("bad configuration entry", "index", entry.Index, "error", err)
		}
	}
	last := newEntries[len(newEntries)-1]
	r.setLastLog(last.Index, last.Term)
	return nil
}

// stageCommitIndex tells a CommitTrackingLogStore the commit index, which
// it persists with the next write, so that a restart can replay committed
// entries (Config.RestoreCommittedLogs).
func (r *Raft) stageCommitIndex() {
	if store, ok := r.logs.(CommitTrackingLogStore); ok {
		if err := store.StageCommitIndex(r.getCommitIndex()); err != nil {
			r.logger.Error("failed to stage commit index in log store", "error", err)
		}
	}
}

// reloadLastLog reads the last log entry back from the store.
func (r *Raft) reloadLastLog() {
	lastIndex, err := r.logs.LastIndex()
	if err != nil {
		r.logger.Error("failed to read last log index", "error", err)
		return
	}
	if lastIndex == 0 {
		r.setLastLog(0, 0)
		return
	}
	var entry Log
	if err := r.logs.GetLog(lastIndex, &entry); err != nil {
		r.logger.Error("failed to read last log", "index", lastIndex, "error", err)
		return
	}
	r.setLastLog(entry.Index, entry.Term)
}

// getEntry returns the entry at index, from memory when possible.
func (r *Raft) getEntry(index uint64) (*Log, error) {
	if entry, ok := r.tail.get(index); ok {
		return entry, nil
	}
	entry := new(Log)
	if err := r.logs.GetLog(index, entry); err != nil {
		return nil, err
	}
	return entry, nil
}
