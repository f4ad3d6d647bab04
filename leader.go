package raft

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
)

// leaderState is what a leader keeps for one term. The main loop owns it;
// replicators and the log writer reach it only through its channels and
// the commitment tracker.
type leaderState struct {
	term uint64
	// commitCh wakes the loop when the commit index moves.
	commitCh   chan struct{}
	commitment *commitment
	// inflight holds the futures of dispatched entries not yet committed,
	// in index order.
	inflight []*logFuture
	// replState has one replicator per other server of the latest
	// configuration.
	replState map[ServerID]*followerReplication
	// stopping holds replicators of removed servers still finishing their
	// last send; teardown waits for them too.
	stopping []*followerReplication
	// notify holds the leadership checks in progress.
	notify map[*verifyFuture]struct{}
	// verifyDoneCh receives checks whose outcome is decided.
	verifyDoneCh chan *verifyFuture
	// stepDownCh receives a newer term seen by a replicator.
	stepDownCh chan uint64
	// writeErrCh receives the failure of a write of this term's entries.
	writeErrCh chan error
	// stopCh is closed when the term of leadership ends.
	stopCh chan struct{}
	// removed is set once a configuration without us as voter commits.
	removed bool
	// transfer is the leadership transfer in progress, if any.
	transfer *leadershipTransferFuture
	// transferDoneCh receives the outcome of a failed transfer.
	transferDoneCh chan transferResult
	// pendingReads wait for the first commit of this term.
	pendingReads []*readIndexFuture
	// readRound is the leadership check confirming reads, if one is out;
	// nextReads wait for it to finish.
	readRound *verifyFuture
	nextReads []*readIndexFuture
}

// runLeader leads for one term: set up replication, append the no-op that
// lets earlier entries commit, then serve until leadership ends.
func (r *Raft) runLeader() {
	term := r.getCurrentTerm()
	r.logger.Info("entering leader state", "leader", r)
	incrCounter([]string{"raft", "state", "leader"}, 1)
	r.notifyLeadership(true)

	lastIndex := r.getLastIndex()
	ls := &r.leaderState
	*ls = leaderState{
		term:         term,
		commitCh:     make(chan struct{}, 1),
		replState:    map[ServerID]*followerReplication{},
		notify:       map[*verifyFuture]struct{}{},
		verifyDoneCh: make(chan *verifyFuture, 16),
		stepDownCh:   make(chan uint64, 1),
		writeErrCh:   make(chan error, 1),
		stopCh:       make(chan struct{}),

		transferDoneCh: make(chan transferResult),
	}
	// §5.4.2: the no-op at lastIndex+1 is the first entry of this term;
	// commitment counts replicas only from there.
	ls.commitment = newCommitment(ls.commitCh, r.configurations.latest, lastIndex+1)
	defer r.teardownLeader()

	r.startStopReplication()
	noop := r.newLogFuture(Log{Type: LogNoop})
	r.dispatchLogs([]*logFuture{noop})
	r.leaderLoop()
}

func (r *Raft) newLogFuture(entry Log) *logFuture {
	f := &logFuture{log: entry}
	f.init()
	f.shutdownCh = r.shutdownCh
	return f
}

// teardownLeader ends a term of leadership: stop replication, let this
// term's queued writes finish, and answer everything still waiting on this
// leader.
func (r *Raft) teardownLeader() {
	ls := &r.leaderState
	close(ls.stopCh)
	for _, repl := range ls.replState {
		repl.stop(0)
	}
	for _, repl := range ls.replState {
		<-repl.done
	}
	for _, repl := range ls.stopping {
		repl.stop(0)
		<-repl.done
	}
	// When the disk refused some entries, settle forgets what it does not
	// hold.
	if _, err := r.log.settle(); err != nil && !errors.Is(err, ErrRaftShutdown) {
		r.logger.Error("failed to settle the log", "error", err)
	}
	for _, f := range ls.inflight {
		f.respond(ErrLeadershipLost)
	}
	for v := range ls.notify {
		v.answer(r, ErrLeadershipLost)
	}
	for _, f := range append(ls.pendingReads, ls.nextReads...) {
		f.respond(ErrLeadershipLost)
	}
	if ls.transfer != nil {
		// Leadership moved on, which is what the transfer asked for.
		ls.transfer.respond(nil)
	}
	if _, id := r.LeaderWithID(); id == r.localID {
		r.setLeader("", "")
	}
	*ls = leaderState{}
	r.notifyLeadership(false)
}

// leaderLoop serves as leader until the role changes.
func (r *Raft) leaderLoop() {
	ls := &r.leaderState
	leaseTimer := r.clock.after(r.config().LeaderLeaseTimeout)
	oldestLogTimer := time.After(10 * time.Second)
	for r.getState() == Leader {
		// Membership changes wait while one is uncommitted, and until an
		// entry of this term has committed.
		var configurationChangeCh chan *configurationChangeFuture
		if r.configurations.latestIndex == r.configurations.committedIndex &&
			r.getCommitIndex() >= ls.commitment.startIndex && !ls.removed {
			configurationChangeCh = r.configurationChangeCh
		}
		r.mainSaturation.sleeping()
		select {
		case rpc := <-r.rpcCh:
			r.mainSaturation.working()
			r.processRPC(rpc)
		case rpc := <-r.heartbeatCh:
			r.mainSaturation.working()
			r.processRPC(rpc)
		case term := <-ls.stepDownCh:
			r.mainSaturation.working()
			r.logger.Error("peer has newer term, stopping replication", "term", term)
			_ = r.stepDownTo(term)
		case err := <-ls.writeErrCh:
			r.mainSaturation.working()
			r.logger.Error("failed to commit logs", "error", err)
			r.setState(Follower)
		case <-ls.commitCh:
			r.mainSaturation.working()
			r.handleCommit()
		case res := <-ls.transferDoneCh:
			r.mainSaturation.working()
			if res.future == ls.transfer {
				r.logger.Warn("leadership transfer failed", "error", res.err)
				ls.transfer = nil
				res.future.respond(res.err)
			}
		case v := <-ls.verifyDoneCh:
			r.mainSaturation.working()
			r.finishVerify(v)
		case f := <-r.applyCh:
			r.mainSaturation.working()
			r.handleApplies(f)
		case f := <-r.readCh:
			r.mainSaturation.working()
			r.handleReads(f)
		case f := <-configurationChangeCh:
			r.mainSaturation.working()
			r.appendConfigurationEntry(f)
		case op := <-r.opsCh:
			r.mainSaturation.working()
			r.handleOpLeader(op)
		case <-leaseTimer:
			r.mainSaturation.working()
			leaseTimer = r.checkLeaderLease()
		case <-oldestLogTimer:
			r.mainSaturation.working()
			oldestLogTimer = time.After(10 * time.Second)
			if len(ls.inflight) > 0 {
				setGauge([]string{"raft", "leader", "oldestLogAge"},
					float32(time.Since(ls.inflight[0].log.AppendedAt).Milliseconds()))
			}
		case <-r.shutdownCh:
			r.mainSaturation.working()
			return
		}
	}
}

// handleApplies takes f and whatever else is waiting on applyCh, up to
// MaxAppendEntries, and appends them as one batch.
func (r *Raft) handleApplies(f *logFuture) {
	ls := &r.leaderState
	maxBatch := r.config().MaxAppendEntries
	batch := make([]*logFuture, 0, maxBatch)
	batch = append(batch, f)
collect:
	for len(batch) < maxBatch {
		select {
		case next := <-r.applyCh:
			batch = append(batch, next)
		default:
			break collect
		}
	}
	var refuse error
	switch {
	case ls.removed:
		refuse = ErrNotLeader
	case ls.transfer != nil:
		refuse = ErrLeadershipTransferInProgress
	}
	if refuse != nil {
		for _, f := range batch {
			f.respond(refuse)
		}
		return
	}
	r.dispatchLogs(batch)
}

// dispatchLogs appends a batch of new entries: it gives them index and term,
// hands them to the log writer and to every replicator at the same time. The
// leader counts itself towards commitment only once the write is durable.
func (r *Raft) dispatchLogs(futures []*logFuture) {
	ls := &r.leaderState
	now := time.Now()
	defer measureSince([]string{"raft", "leader", "dispatchLog"}, now)
	term := r.getCurrentTerm()
	lastIndex := r.getLastIndex()
	setGauge([]string{"raft", "leader", "dispatchNumLogs"}, float32(len(futures)))

	entries := make([]*Log, len(futures))
	for i, f := range futures {
		lastIndex++
		f.log.Index = lastIndex
		f.log.Term = term
		f.log.AppendedAt = now
		f.dispatch = now
		entries[i] = &f.log
	}
	ls.inflight = append(ls.inflight, futures...)
	commitment, errCh := ls.commitment, ls.writeErrCh
	r.log.appendAsLeader(entries, func(durable uint64) {
		commitment.match(r.localID, durable)
	}, func(err error) {
		select {
		case errCh <- err:
		default:
		}
	})
	for _, repl := range ls.replState {
		repl.trigger()
	}
}

// handleCommit advances the commit index and hands newly committed entries,
// with their futures, to the FSM runner.
func (r *Raft) handleCommit() {
	ls := &r.leaderState
	commitIndex := ls.commitment.getCommitIndex()
	if commitIndex <= r.getCommitIndex() {
		return
	}
	r.commitIndex.Store(commitIndex)
	if r.configurations.latestIndex > r.configurations.committedIndex &&
		r.configurations.latestIndex <= commitIndex {
		r.setCommittedConfiguration(r.configurations.latest, r.configurations.latestIndex)
		if !hasVote(r.configurations.committed, r.localID) {
			ls.removed = true
		}
	}

	n := 0
	for n < len(ls.inflight) && ls.inflight[n].log.Index <= commitIndex {
		n++
	}
	if n > 0 {
		// One sample per commit, for its oldest entry: the longest wait.
		measureSince([]string{"raft", "commitTime"}, ls.inflight[0].dispatch)
	}
	committed := ls.inflight[:n:n]
	ls.inflight = ls.inflight[n:]
	setGauge([]string{"raft", "commitNumLogs"}, float32(len(committed)))
	r.processLogs(commitIndex, committed)
	r.releasePendingReads()

	if ls.removed {
		r.stepDownRemoved()
	}
}

// stepDownRemoved is called once a configuration that does not count this
// leader as a voter has committed and been handed to the FSM.
func (r *Raft) stepDownRemoved() {
	if r.config().ShutdownOnRemove {
		// Let the FSM runner finish the committed entries first, so their
		// futures (the change that removed us among them) get the FSM's
		// answer rather than ErrRaftShutdown.
		drained := &fsmDrainFuture{}
		r.initFuture(&drained.deferError)
		select {
		case r.fsmMutateCh <- drained:
			_ = drained.Error()
		case <-r.shutdownCh:
		}
		r.logger.Info("removed ourself, shutting down")
		r.Shutdown()
		return
	}
	r.logger.Info("removed ourself, transitioning to follower")
	r.setState(Follower)
}

// checkLeaderLease steps down when fewer than a quorum of voters answered
// within LeaderLeaseTimeout (check-quorum), and returns when to check next.
func (r *Raft) checkLeaderLease() <-chan time.Time {
	ls := &r.leaderState
	leaseTimeout := r.config().LeaderLeaseTimeout
	contacted := 0
	var maxDiff time.Duration
	now := r.clock.now()
	for _, server := range r.configurations.latest.Servers {
		if server.Suffrage != Voter {
			continue
		}
		if server.ID == r.localID {
			contacted++
			continue
		}
		repl, ok := ls.replState[server.ID]
		if !ok {
			continue
		}
		diff := now.Sub(repl.lastContact.load())
		if diff <= leaseTimeout {
			contacted++
			maxDiff = max(maxDiff, diff)
		} else if diff <= 3*leaseTimeout {
			r.logger.Warn("failed to contact", "server-id", server.ID, "time", diff)
		} else {
			r.logger.Debug("failed to contact", "server-id", server.ID, "time", diff)
		}
		addSample([]string{"raft", "leader", "lastContact"}, float32(diff.Milliseconds()))
	}
	if contacted < r.quorumSize() {
		r.logger.Warn("failed to contact quorum of nodes, stepping down")
		r.setState(Follower)
		incrCounter([]string{"raft", "transition", "leader_lease_timeout"}, 1)
	}
	return r.clock.after(max(leaseTimeout-maxDiff, minCheckInterval))
}

// handleOpLeader serves a main-loop request as leader.
func (r *Raft) handleOpLeader(op interface{}) {
	switch op := op.(type) {
	case *configurationsFuture:
		op.configurations = r.configurations.Clone()
		op.respond(nil)
	case *bootstrapFuture:
		op.respond(ErrCantBootstrap)
	case *verifyFuture:
		r.startVerify(op)
	case *leadershipTransferFuture:
		r.startLeadershipTransfer(op)
	case *userRestoreFuture:
		r.restoreUserSnapshot(op)
	default:
		r.logger.Error("unexpected request on main loop", "type", op)
	}
}

// startVerify starts a leadership check: a heartbeat round whose answers
// from a quorum of voters confirm we still lead.
func (r *Raft) startVerify(v *verifyFuture) {
	ls := &r.leaderState
	v.quorumSize = r.quorumSize()
	v.votes = 0
	if hasVote(r.configurations.latest, r.localID) {
		v.votes = 1
	}
	if v.votes >= v.quorumSize {
		v.answer(r, nil)
		r.readRoundDone(v)
		return
	}
	v.notifyCh = ls.verifyDoneCh
	v.stopCh = ls.stopCh
	ls.notify[v] = struct{}{}
	for _, server := range r.configurations.latest.Servers {
		if server.Suffrage != Voter {
			continue
		}
		if repl, ok := ls.replState[server.ID]; ok {
			repl.addVerify(v)
		}
	}
}

// finishVerify answers a decided leadership check. A refusal means a newer
// term exists somewhere: step down.
func (r *Raft) finishVerify(v *verifyFuture) {
	ls := &r.leaderState
	if _, ok := ls.notify[v]; !ok {
		return
	}
	delete(ls.notify, v)
	for _, repl := range ls.replState {
		repl.removeVerify(v)
	}
	v.mu.Lock()
	confirmed := v.votes >= v.quorumSize
	v.mu.Unlock()
	if confirmed {
		v.answer(r, nil)
		r.readRoundDone(v)
		return
	}
	r.logger.Warn("new leader elected, stepping down")
	r.setState(Follower)
	if len(v.reads) > 0 {
		v.answer(r, ErrLeadershipLost)
		return
	}
	v.answer(r, ErrNotLeader)
}

// appendConfigurationEntry appends a membership change. The new
// configuration takes effect at once: replication to new servers starts and
// commitment counts the new voters (dissertation §4.1).
func (r *Raft) appendConfigurationEntry(f *configurationChangeFuture) {
	ls := &r.leaderState
	if ls.transfer != nil {
		f.respond(ErrLeadershipTransferInProgress)
		return
	}
	configuration, err := nextConfiguration(r.configurations.latest, r.configurations.latestIndex, f.req)
	if err != nil {
		f.respond(err)
		return
	}
	r.logger.Info("updating configuration", "command", f.req.command, "server-id", f.req.serverID,
		"server-addr", f.req.serverAddress, "servers", hclog.Fmt("%+v", configuration.Servers))
	f.log = Log{Type: LogConfiguration, Data: EncodeConfiguration(configuration)}
	r.dispatchLogs([]*logFuture{&f.logFuture})
	r.setCommittedConfiguration(r.configurations.latest, r.configurations.latestIndex)
	r.setLatestConfiguration(configuration, f.log.Index)
	ls.commitment.setConfiguration(configuration)
	r.startStopReplication()
}

// startStopReplication makes the replicators match the latest
// configuration: one per other server, started or stopped as needed.
func (r *Raft) startStopReplication() {
	ls := &r.leaderState
	lastIndex := r.getLastIndex()
	inConfig := make(map[ServerID]bool, len(r.configurations.latest.Servers))
	for _, server := range r.configurations.latest.Servers {
		if server.ID == r.localID {
			continue
		}
		inConfig[server.ID] = true
		if repl, ok := ls.replState[server.ID]; ok {
			repl.setPeer(server)
			continue
		}
		r.logger.Info("added peer, starting replication", "peer", server.ID)
		repl := newFollowerReplication(r, server, ls, lastIndex+1)
		ls.replState[server.ID] = repl
		r.goFunc(repl.run)
		r.observe(PeerObservation{Peer: server, Removed: false})
	}
	setGauge([]string{"raft", "peers"}, float32(len(inConfig)))
	for id, repl := range ls.replState {
		if inConfig[id] {
			continue
		}
		r.logger.Info("removed peer, stopping replication", "peer", id, "last-index", lastIndex)
		// The removed server still gets the entry that removes it.
		repl.stop(lastIndex)
		delete(ls.replState, id)
		ls.stopping = append(ls.stopping, repl)
		r.observe(PeerObservation{Peer: repl.getPeer(), Removed: true})
	}
}
