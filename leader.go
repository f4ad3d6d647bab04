package raft

import (
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
)

// leader is one term of leadership: what a leader keeps from its election
// until it steps down. runLeader builds it, its methods are the leader
// loop's handlers, and teardown ends it. The main loop owns it; replicators
// and the log writer reach it only through its channels and the commitment
// tracker.
type leader struct {
	r    *Raft
	term uint64
	// commitCh wakes the loop when the commit index moves.
	commitCh   chan struct{}
	commitment *commitment
	// pacer paces this term's own log writes (leader_pace.go).
	pacer *leaderPacer
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
	// transfer is the leadership transfer in progress, if any.
	transfer *leadershipTransferFuture
	// transferDoneCh receives the outcome of a failed transfer.
	transferDoneCh chan transferResult
	// reads queues ReadIndex calls for the checks that confirm them.
	reads readRounds
}

// newLeader starts a term of leadership whose first entry (the no-op) is
// at startIndex.
func newLeader(r *Raft, term, startIndex uint64) *leader {
	l := &leader{
		r:              r,
		term:           term,
		commitCh:       make(chan struct{}, 1),
		replState:      map[ServerID]*followerReplication{},
		notify:         map[*verifyFuture]struct{}{},
		verifyDoneCh:   make(chan *verifyFuture, 16),
		stepDownCh:     make(chan uint64, 1),
		writeErrCh:     make(chan error, 1),
		stopCh:         make(chan struct{}),
		transferDoneCh: make(chan transferResult),
		reads:          readRounds{startIndex: startIndex},
	}
	// §5.4.2: commitment counts replicas only from the term's first entry.
	l.commitment = newCommitment(l.commitCh, r.configurations.latest, startIndex)
	l.pacer = &leaderPacer{commitment: l.commitment, self: r.localID}
	return l
}

// runLeader leads for one term: set up replication, append the no-op that
// lets earlier entries commit, then serve until leadership ends.
func (r *Raft) runLeader() {
	term := r.getCurrentTerm()
	r.logger.Info("entering leader state", "leader", r)
	incrCounter([]string{"raft", "state", "leader"}, 1)
	r.notifyLeadership(true)

	// §5.4.2: the no-op at lastIndex+1 is the first entry of this term.
	l := newLeader(r, term, r.getLastIndex()+1)
	defer l.teardown()

	l.startStopReplication()
	noop := r.newLogFuture(Log{Type: LogNoop})
	l.dispatchLogs([]*logFuture{noop})
	l.loop()
}

func (r *Raft) newLogFuture(entry Log) *logFuture {
	f := &logFuture{log: entry}
	f.init()
	f.shutdownCh = r.shutdownCh
	return f
}

// teardown ends a term of leadership: stop replication, let this
// term's queued writes finish, and answer everything still waiting on this
// leader.
func (l *leader) teardown() {
	r := l.r
	close(l.stopCh)
	for _, repl := range l.replState {
		repl.stop(0)
	}
	for _, repl := range l.replState {
		<-repl.done
	}
	for _, repl := range l.stopping {
		repl.stop(0)
		<-repl.done
	}
	// When the disk refused some entries, settle forgets what it does not
	// hold.
	if _, err := r.log.settle(); err != nil && !errors.Is(err, ErrRaftShutdown) {
		r.logger.Error("failed to settle the log", "error", err)
	}
	for _, f := range l.inflight {
		f.respond(ErrLeadershipLost)
	}
	for v := range l.notify {
		v.answer(r, ErrLeadershipLost)
	}
	for _, f := range l.reads.drain() {
		f.respond(ErrLeadershipLost)
	}
	if l.transfer != nil {
		// Leadership moved on, which is what the transfer asked for.
		l.transfer.respond(nil)
	}
	if _, id := r.LeaderWithID(); id == r.localID {
		r.setLeader("", "")
	}
	r.notifyLeadership(false)
}

// loop serves as leader until the role changes.
func (l *leader) loop() {
	r := l.r
	leaseTimer := r.clock.after(r.config().LeaderLeaseTimeout)
	oldestLogTimer := time.After(10 * time.Second)
	for r.getState() == Leader {
		// Membership changes wait while one is uncommitted, and until an
		// entry of this term has committed.
		var configurationChangeCh chan *configurationChangeFuture
		if r.configurations.latestIndex == r.configurations.committedIndex &&
			r.getCommitIndex() >= l.commitment.startIndex {
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
		case term := <-l.stepDownCh:
			r.mainSaturation.working()
			r.logger.Error("peer has newer term, stopping replication", "term", term)
			_ = r.stepDownTo(term)
		case err := <-l.writeErrCh:
			r.mainSaturation.working()
			r.logger.Error("failed to commit logs", "error", err)
			r.setState(Follower)
		case <-l.commitCh:
			r.mainSaturation.working()
			l.handleCommit()
		case res := <-l.transferDoneCh:
			r.mainSaturation.working()
			if res.future == l.transfer {
				r.logger.Warn("leadership transfer failed", "error", res.err)
				l.transfer = nil
				res.future.respond(res.err)
			}
		case v := <-l.verifyDoneCh:
			r.mainSaturation.working()
			l.finishVerify(v)
		case f := <-r.applyCh:
			r.mainSaturation.working()
			l.handleApplies(f)
		case f := <-r.readCh:
			r.mainSaturation.working()
			l.handleReads(f)
		case f := <-configurationChangeCh:
			r.mainSaturation.working()
			l.appendConfigurationEntry(f)
		case op := <-r.opsCh:
			r.mainSaturation.working()
			op.serveLeader(l)
		case <-leaseTimer:
			r.mainSaturation.working()
			leaseTimer = l.checkLease()
		case <-oldestLogTimer:
			r.mainSaturation.working()
			oldestLogTimer = time.After(10 * time.Second)
			if len(l.inflight) > 0 {
				setGauge([]string{"raft", "leader", "oldestLogAge"},
					float32(time.Since(l.inflight[0].log.AppendedAt).Milliseconds()))
			}
		case <-r.shutdownCh:
			r.mainSaturation.working()
			return
		}
	}
}

// handleApplies takes f and whatever else is waiting on applyCh, up to
// MaxAppendEntries, and appends them as one batch.
func (l *leader) handleApplies(f *logFuture) {
	r := l.r
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
	if l.transfer != nil {
		for _, f := range batch {
			f.respond(ErrLeadershipTransferInProgress)
		}
		return
	}
	l.dispatchLogs(batch)
}

// dispatchLogs appends a batch of new entries: it gives them index and term,
// hands them to the log writer and to every replicator at the same time. The
// leader counts itself towards commitment only once the write is durable.
func (l *leader) dispatchLogs(futures []*logFuture) {
	r := l.r
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
	l.inflight = append(l.inflight, futures...)
	commitment, errCh := l.commitment, l.writeErrCh
	r.log.appendAsLeader(entries, l.pacer, func(durable uint64) {
		commitment.match(r.localID, durable)
	}, func(err error) {
		select {
		case errCh <- err:
		default:
		}
	})
	for _, repl := range l.replState {
		repl.trigger()
	}
}

// handleCommit advances the commit index and hands newly committed entries,
// with their futures, to the FSM runner.
func (l *leader) handleCommit() {
	r := l.r
	commitIndex := l.commitment.getCommitIndex()
	if commitIndex <= r.getCommitIndex() {
		return
	}
	r.commitIndex.Store(commitIndex)
	// removed: a configuration without us as voter committed.
	removed := false
	if r.configurations.latestIndex > r.configurations.committedIndex &&
		r.configurations.latestIndex <= commitIndex {
		r.setCommittedConfiguration(r.configurations.latest, r.configurations.latestIndex)
		removed = !hasVote(r.configurations.committed, r.localID)
	}

	n := 0
	for n < len(l.inflight) && l.inflight[n].log.Index <= commitIndex {
		n++
	}
	if n > 0 {
		// One sample per commit, for its oldest entry: the longest wait.
		measureSince([]string{"raft", "commitTime"}, l.inflight[0].dispatch)
	}
	committed := l.inflight[:n:n]
	l.inflight = l.inflight[n:]
	setGauge([]string{"raft", "commitNumLogs"}, float32(len(committed)))
	r.processLogs(commitIndex, committed)
	if removed {
		// Reads waiting for this first commit of the term are not served
		// by a leader that is leaving.
		for _, f := range l.reads.release(commitIndex) {
			f.respond(ErrNotLeader)
		}
		r.stepDownRemoved()
		return
	}
	l.releasePendingReads()
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

// checkLease steps down when fewer than a quorum of voters answered
// within LeaderLeaseTimeout (check-quorum), and returns when to check next.
func (l *leader) checkLease() <-chan time.Time {
	r := l.r
	leaseTimeout := r.config().LeaderLeaseTimeout
	voters := votersOf(r.configurations.latest)
	contacted := voters.newTally()
	contacted.grant(r.localID)
	var maxDiff time.Duration
	now := r.clock.now()
	for _, id := range voters.ids {
		repl, ok := l.replState[id]
		if !ok {
			continue
		}
		diff := now.Sub(repl.lastContact.load())
		if diff <= leaseTimeout {
			contacted.grant(id)
			maxDiff = max(maxDiff, diff)
		} else if diff <= 3*leaseTimeout {
			r.logger.Warn("failed to contact", "server-id", id, "time", diff)
		} else {
			r.logger.Debug("failed to contact", "server-id", id, "time", diff)
		}
		addSample([]string{"raft", "leader", "lastContact"}, float32(diff.Milliseconds()))
	}
	if !contacted.won() {
		r.logger.Warn("failed to contact quorum of nodes, stepping down")
		r.setState(Follower)
		incrCounter([]string{"raft", "transition", "leader_lease_timeout"}, 1)
	}
	return r.clock.after(max(leaseTimeout-maxDiff, minCheckInterval))
}

// startVerify starts a leadership check: a heartbeat round whose answers
// from a quorum of voters confirm we still lead.
func (l *leader) startVerify(v *verifyFuture) {
	r := l.r
	voters := votersOf(r.configurations.latest)
	v.tally = voters.newTally()
	if v.tally.grant(r.localID) {
		v.answer(r, nil)
		l.readRoundDone(v)
		return
	}
	v.notifyCh = l.verifyDoneCh
	v.stopCh = l.stopCh
	l.notify[v] = struct{}{}
	for _, id := range voters.ids {
		if repl, ok := l.replState[id]; ok {
			repl.addVerify(v)
		}
	}
}

// finishVerify answers a decided leadership check. A refusal means a newer
// term exists somewhere: step down.
func (l *leader) finishVerify(v *verifyFuture) {
	r := l.r
	if _, ok := l.notify[v]; !ok {
		return
	}
	delete(l.notify, v)
	for _, repl := range l.replState {
		repl.removeVerify(v)
	}
	v.mu.Lock()
	confirmed := v.tally.won()
	v.mu.Unlock()
	if confirmed {
		v.answer(r, nil)
		l.readRoundDone(v)
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
func (l *leader) appendConfigurationEntry(f *configurationChangeFuture) {
	r := l.r
	if l.transfer != nil {
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
	l.dispatchLogs([]*logFuture{&f.logFuture})
	r.setCommittedConfiguration(r.configurations.latest, r.configurations.latestIndex)
	r.setLatestConfiguration(configuration, f.log.Index)
	l.commitment.setConfiguration(configuration)
	l.startStopReplication()
}

// startStopReplication makes the replicators match the latest
// configuration: one per other server, started or stopped as needed.
func (l *leader) startStopReplication() {
	r := l.r
	lastIndex := r.getLastIndex()
	inConfig := make(map[ServerID]bool, len(r.configurations.latest.Servers))
	for _, server := range r.configurations.latest.Servers {
		if server.ID == r.localID {
			continue
		}
		inConfig[server.ID] = true
		if repl, ok := l.replState[server.ID]; ok {
			repl.setPeer(server)
			continue
		}
		r.logger.Info("added peer, starting replication", "peer", server.ID)
		repl := newFollowerReplication(r, server, l, lastIndex+1)
		l.replState[server.ID] = repl
		r.goFunc(repl.run)
		r.observe(PeerObservation{Peer: server, Removed: false})
	}
	setGauge([]string{"raft", "peers"}, float32(len(inConfig)))
	for id, repl := range l.replState {
		if inConfig[id] {
			continue
		}
		r.logger.Info("removed peer, stopping replication", "peer", id, "last-index", lastIndex)
		// The removed server still gets the entry that removes it.
		repl.stop(lastIndex)
		delete(l.replState, id)
		l.stopping = append(l.stopping, repl)
		r.observe(PeerObservation{Peer: repl.getPeer(), Removed: true})
	}
}
