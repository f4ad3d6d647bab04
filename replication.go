package raft

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// failureWait is the base of the back-off after failed RPCs.
	failureWait = 10 * time.Millisecond
	// maxFailureScale caps the back-off at failureWait << maxFailureScale.
	maxFailureScale = 10
)

// backoff returns how long to wait after the given number of consecutive
// failures: base·2^(failures−2) for failures > 2, base otherwise, at most
// base·2^maxScale.
func backoff(base time.Duration, failures, maxScale uint64) time.Duration {
	power := min(failures, maxScale)
	if power > 2 {
		power -= 2
	} else {
		power = 0
	}
	return base << power
}

// followerReplication replicates the leader's log to one server. It runs a
// replication goroutine (entries, catch-up, snapshots) and a heartbeat
// goroutine.
type followerReplication struct {
	r *Raft
	// term is the leader's term; it never changes for this replicator.
	term uint64
	// commitment and stepDownCh belong to the leader's term.
	commitment *commitment
	stepDownCh chan<- uint64

	peerMu sync.RWMutex
	peer   Server

	// nextIndex is the next entry to send; replication goroutine only.
	nextIndex uint64
	// lastContact is when the peer last answered us, for the lease.
	lastContact atomicTime
	// ackedSend is when the newest request the peer accepted was sent: the
	// start of the lease that peer grants us (readindex.go).
	ackedSend atomicTime
	ackMu     sync.Mutex
	// failures counts consecutive failed AppendEntries.
	failures uint64
	// noPipeline is set when the transport cannot pipeline.
	noPipeline bool

	triggerCh       chan struct{}
	heartbeatPokeCh chan struct{}
	// kickCh cuts a back-off short (a leadership transfer to this peer).
	kickCh chan struct{}
	// stopCh is closed to stop; stopIndex says up to where to replicate
	// first (0: stop at once).
	stopCh    chan struct{}
	stopOnce  sync.Once
	stopIndex atomic.Uint64
	// done is closed when both goroutines have exited.
	done chan struct{}

	verifyMu sync.Mutex
	verifies map[*verifyFuture]struct{}

	// replicateRand and heartbeatRand are the random streams of the
	// replication and heartbeat goroutines (random.go).
	replicateRand, heartbeatRand *randomStream
}

func newFollowerReplication(r *Raft, peer Server, l *leader, nextIndex uint64) *followerReplication {
	s := &followerReplication{
		r:               r,
		term:            l.term,
		commitment:      l.commitment,
		stepDownCh:      l.stepDownCh,
		peer:            peer,
		nextIndex:       nextIndex,
		triggerCh:       make(chan struct{}, 1),
		heartbeatPokeCh: make(chan struct{}, 1),
		kickCh:          make(chan struct{}, 1),
		stopCh:          make(chan struct{}),
		done:            make(chan struct{}),
		verifies:        map[*verifyFuture]struct{}{},
		replicateRand:   r.rand.stream("replicate", string(peer.ID), strconv.FormatUint(l.term, 10)),
		heartbeatRand:   r.rand.stream("heartbeat", string(peer.ID), strconv.FormatUint(l.term, 10)),
	}
	// A new leader starts with a full lease towards every peer.
	s.lastContact.store(r.clock.now())
	return s
}

func (s *followerReplication) getPeer() Server {
	s.peerMu.RLock()
	defer s.peerMu.RUnlock()
	return s.peer
}

func (s *followerReplication) setPeer(peer Server) {
	s.peerMu.Lock()
	s.peer = peer
	s.peerMu.Unlock()
}

// storeAckedSend records the send time of an accepted request; the
// heartbeat and replication goroutines both call it, so it only moves
// forward.
func (s *followerReplication) storeAckedSend(sent time.Time) {
	s.ackMu.Lock()
	if sent.After(s.ackedSend.load()) {
		s.ackedSend.store(sent)
	}
	s.ackMu.Unlock()
}

// trigger asks for replication of new entries.
func (s *followerReplication) trigger() {
	select {
	case s.triggerCh <- struct{}{}:
	default:
	}
}

// kick makes a replicator waiting out a back-off try again now.
func (s *followerReplication) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// stop ends replication after sending entries up to index (0: at once).
func (s *followerReplication) stop(index uint64) {
	s.stopOnce.Do(func() {
		s.stopIndex.Store(index)
		close(s.stopCh)
	})
}

func (s *followerReplication) addVerify(v *verifyFuture) {
	s.verifyMu.Lock()
	s.verifies[v] = struct{}{}
	s.verifyMu.Unlock()
	select {
	case s.heartbeatPokeCh <- struct{}{}:
	default:
	}
}

func (s *followerReplication) removeVerify(v *verifyFuture) {
	s.verifyMu.Lock()
	delete(s.verifies, v)
	s.verifyMu.Unlock()
}

// takeVerifies returns the checks waiting for the next heartbeat.
func (s *followerReplication) takeVerifies() []*verifyFuture {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	if len(s.verifies) == 0 {
		return nil
	}
	out := make([]*verifyFuture, 0, len(s.verifies))
	for v := range s.verifies {
		out = append(out, v)
		delete(s.verifies, v)
	}
	return out
}

// putBackVerifies returns checks whose heartbeat got no answer.
func (s *followerReplication) putBackVerifies(vs []*verifyFuture) {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	for _, v := range vs {
		s.verifies[v] = struct{}{}
	}
}

// signalStepDown tells the leader loop that the peer knows a newer term.
func (s *followerReplication) signalStepDown(term uint64) {
	select {
	case s.stepDownCh <- term:
	default:
	}
}

// run is the replication goroutine.
func (s *followerReplication) run() {
	r := s.r
	heartbeatDone := make(chan struct{})
	go func() {
		defer close(heartbeatDone)
		s.heartbeat()
	}()
	defer func() {
		<-heartbeatDone
		close(s.done)
	}()

	for {
		select {
		case <-s.stopCh:
			if index := s.stopIndex.Load(); index > 0 {
				s.replicateTo(index, true)
			}
			return
		case <-r.shutdownCh:
			return
		case <-s.triggerCh:
		case <-s.replicateRand.timeout(r.config().CommitTimeout):
		}
		lastIndex := r.getLastIndex()
		newerTerm := s.replicateTo(lastIndex, false)
		if !newerTerm && s.failures == 0 && s.nextIndex > lastIndex && !s.noPipeline {
			// In step with the peer: stream to it until something fails.
			newerTerm = s.pipelineReplicate()
		}
		if newerTerm {
			// The peer has a newer term: wait to be stopped.
			select {
			case <-s.stopCh:
			case <-r.shutdownCh:
			}
			return
		}
	}
}

// pipelineReplicate streams new entries to a peer that is in step with us,
// without waiting for each answer (docs/WIRE.md §7). It returns, to go back to
// one request at a time, when an answer is a rejection or an error, when the
// entries the peer needs are no longer in the log, or when replication
// stops; true when the peer knows a newer term.
func (s *followerReplication) pipelineReplicate() (newerTerm bool) {
	r := s.r
	peer := s.getPeer()
	pipeline, err := r.trans.AppendEntriesPipeline(peer.ID, peer.Address)
	if err != nil {
		if errors.Is(err, ErrPipelineReplicationNotSupported) {
			s.noPipeline = true
		} else {
			r.logger.Error("failed to start pipeline", "peer", peer.ID, "error", err)
		}
		return false
	}
	r.logger.Info("pipelining replication", "peer", peer)

	// matched is the last index the peer acknowledged through the pipeline.
	var matched atomic.Uint64
	matched.Store(s.nextIndex - 1)
	var sawNewerTerm atomic.Bool
	stopRecv := make(chan struct{})
	recvFailed := make(chan struct{})
	recvDone := make(chan struct{})
	if h, ok := pipeline.(answerHandlingPipeline); ok {
		// The transport's receiver handles each answer itself; Close
		// below returns once it has handled its last one.
		failed := false
		h.HandleAnswers(func(future AppendFuture) {
			if !failed && !s.pipelineAnswer(future, &matched, &sawNewerTerm) {
				failed = true
				close(recvFailed)
			}
		})
		close(recvDone)
	} else {
		go func() {
			defer close(recvDone)
			s.pipelineReceive(pipeline, stopRecv, recvFailed, &matched, &sawNewerTerm)
		}()
	}
	defer func() {
		// The pipeline is closed here and only here: a transport's Close
		// need not be idempotent.
		_ = pipeline.Close()
		close(stopRecv)
		<-recvDone
		// Resume one at a time after what the peer confirmed; requests
		// whose answers were lost are simply sent again.
		s.nextIndex = matched.Load() + 1
		newerTerm = newerTerm || sawNewerTerm.Load()
		r.logger.Info("aborting pipeline replication", "peer", peer)
	}()

	// The synchronous round that brought the peer in step carried the
	// commit index of its time.
	var sentCommit uint64
	idle := false
	for {
		select {
		case <-s.stopCh:
			return false
		case <-r.shutdownCh:
			return false
		case <-recvFailed:
			return false
		case <-s.triggerCh:
		case <-s.replicateRand.timeout(r.config().CommitTimeout):
			// As in the synchronous loop, every CommitTimeout sends at
			// least one request: a peer that restarted learns the commit
			// index from it, and a peer that lost entries rejects it.
			idle = true
		}
		lastIndex := r.getLastIndex()
		// Send the new entries, or, with none, an empty request when the
		// peer has not heard the latest commit index yet.
		for s.nextIndex <= lastIndex || r.getCommitIndex() > sentCommit || idle {
			idle = false
			req := &AppendEntriesRequest{
				RPCHeader:         r.header(),
				Term:              s.term,
				Leader:            r.rpcHeader.Addr,
				LeaderCommitIndex: r.getCommitIndex(),
			}
			sentCommit = req.LeaderCommitIndex
			if err := s.setPreviousLog(req); err != nil {
				return false
			}
			if err := s.setNewLogs(req, lastIndex); err != nil {
				return false
			}
			if _, err := pipeline.AppendEntries(req, new(AppendEntriesResponse)); err != nil {
				if !errors.Is(err, ErrPipelineShutdown) {
					r.logger.Error("failed to pipeline appendEntries", "peer", peer.ID, "error", err)
				}
				return false
			}
			if n := len(req.Entries); n > 0 {
				s.nextIndex = req.Entries[n-1].Index + 1
			}
		}
	}
}

// pipelineReceive handles the pipeline's answers in order until one fails,
// then closes failed, which ends the sender, and drains the answers still
// coming (so a sender waiting for room in the window is not stuck) until
// stopRecv closes.
func (s *followerReplication) pipelineReceive(pipeline AppendPipeline, stopRecv <-chan struct{},
	failed chan<- struct{}, matched *atomic.Uint64, sawNewerTerm *atomic.Bool) {
	for {
		select {
		case <-stopRecv:
			return
		case future, ok := <-pipeline.Consumer():
			if ok && s.pipelineAnswer(future, matched, sawNewerTerm) {
				continue
			}
		}
		close(failed)
		for {
			select {
			case <-stopRecv:
				return
			case _, ok := <-pipeline.Consumer():
				if !ok {
					<-stopRecv
					return
				}
			}
		}
	}
}

// pipelineAnswer handles one pipelined answer; false when it ends the
// pipeline (an error, a rejection or a newer term).
func (s *followerReplication) pipelineAnswer(future AppendFuture, matched *atomic.Uint64, sawNewerTerm *atomic.Bool) bool {
	r := s.r
	peer := s.getPeer()
	err := future.Error()
	resp := future.Response()
	req := future.Request()
	if err == nil {
		appendStats(r, peer.ID, future.Start(), len(req.Entries))
	}
	switch {
	case err != nil:
		if !errors.Is(err, ErrPipelineShutdown) {
			r.logger.Error("pipelined appendEntries failed", "peer", peer.ID, "error", err)
		}
	case resp.Term > s.term:
		sawNewerTerm.Store(true)
		s.signalStepDown(resp.Term)
	case !resp.Success:
		s.lastContact.store(r.clock.now())
	default:
		s.lastContact.store(r.clock.now())
		s.storeAckedSend(r.clock.fromReal(future.Start()))
		last := req.PrevLogEntry
		if n := len(req.Entries); n > 0 {
			last = req.Entries[n-1].Index
		}
		matched.Store(last)
		s.commitment.match(peer.ID, last)
		return true
	}
	return false
}

// replicateTo sends entries until the peer has every entry up to
// lastIndex, or an attempt fails. It returns true when the peer knows a
// newer term. once limits it to a single attempt (final sends to removed
// servers).
func (s *followerReplication) replicateTo(lastIndex uint64, once bool) (newerTerm bool) {
	r := s.r
	for {
		if s.failures > 0 && !once {
			select {
			case <-time.After(backoff(failureWait, s.failures, maxFailureScale)):
			case <-s.kickCh:
			case <-s.stopCh:
				return false
			case <-r.shutdownCh:
				return false
			}
		}
		peer := s.getPeer()
		req := &AppendEntriesRequest{
			RPCHeader:         r.header(),
			Term:              s.term,
			Leader:            r.rpcHeader.Addr,
			LeaderCommitIndex: r.getCommitIndex(),
		}
		err := s.setPreviousLog(req)
		if err == nil {
			err = s.setNewLogs(req, lastIndex)
		}
		if errors.Is(err, ErrLogNotFound) {
			// The entries the peer needs were compacted away.
			if newer, err := s.sendLatestSnapshot(); newer || err != nil || once {
				if err != nil {
					s.failures++
				}
				return newer
			}
			continue
		}
		if err != nil {
			r.logger.Error("failed to read log for replication", "peer", peer.ID, "error", err)
			s.failures++
			return false
		}

		var resp AppendEntriesResponse
		start := time.Now()
		if err := r.trans.AppendEntries(peer.ID, peer.Address, req, &resp); err != nil {
			r.logger.Error("failed to appendEntries to", "peer", peer, "error", err)
			s.failures++
			return false
		}
		appendStats(r, peer.ID, start, len(req.Entries))
		if resp.Term > s.term {
			s.signalStepDown(resp.Term)
			return true
		}
		s.lastContact.store(r.clock.now())
		if resp.Success {
			s.storeAckedSend(r.clock.fromReal(start))
			s.failures = 0
			matched := req.PrevLogEntry
			if n := len(req.Entries); n > 0 {
				matched = req.Entries[n-1].Index
			}
			s.nextIndex = matched + 1
			s.commitment.match(peer.ID, matched)
		} else {
			// Jump back using the peer's hint, at least one step.
			s.nextIndex = max(min(s.nextIndex-1, resp.LastLog+1), 1)
			if resp.NoRetryBackoff {
				s.failures = 0
			} else {
				s.failures++
			}
			r.logger.Warn("appendEntries rejected, sending older logs", "peer", peer, "next", s.nextIndex)
		}
		if once || s.nextIndex > lastIndex {
			return false
		}
		select {
		case <-s.stopCh:
			return false
		case <-r.shutdownCh:
			return false
		default:
		}
	}
}

// setPreviousLog fills the previous entry's index and term for nextIndex.
func (s *followerReplication) setPreviousLog(req *AppendEntriesRequest) error {
	prevIndex := s.nextIndex - 1
	if prevIndex == 0 {
		return nil
	}
	snapshotIndex, snapshotTerm := s.r.getLastSnapshot()
	if prevIndex == snapshotIndex {
		req.PrevLogEntry, req.PrevLogTerm = snapshotIndex, snapshotTerm
		return nil
	}
	entry, err := s.r.getEntry(prevIndex)
	if err != nil {
		return err
	}
	req.PrevLogEntry, req.PrevLogTerm = entry.Index, entry.Term
	return nil
}

// setNewLogs fills up to MaxAppendEntries entries from nextIndex on.
func (s *followerReplication) setNewLogs(req *AppendEntriesRequest, lastIndex uint64) error {
	if s.nextIndex > lastIndex {
		return nil
	}
	maxIndex := min(s.nextIndex+uint64(s.r.config().MaxAppendEntries)-1, lastIndex)
	req.Entries = make([]*Log, 0, maxIndex-s.nextIndex+1)
	for index := s.nextIndex; index <= maxIndex; index++ {
		entry, err := s.r.getEntry(index)
		if err != nil {
			return err
		}
		req.Entries = append(req.Entries, entry)
	}
	return nil
}

func appendStats(r *Raft, peer ServerID, start time.Time, logs int) {
	label := metricLabel{Name: "peer_id", Value: string(peer)}
	measureSince([]string{"raft", "replication", "appendEntries", "rpc"}, start, label)
	incrCounter([]string{"raft", "replication", "appendEntries", "logs"}, float32(logs), label)
	if !r.config().NoLegacyTelemetry {
		measureSince([]string{"raft", "replication", "appendEntries", "rpc", string(peer)}, start)
		incrCounter([]string{"raft", "replication", "appendEntries", "logs", string(peer)}, float32(logs))
	}
}

// heartbeat sends heartbeats to the peer every [HT/10, HT/5), and at once
// when a leadership check asks. Each answer is a vote in the checks that
// were waiting when the heartbeat was sent.
func (s *followerReplication) heartbeat() {
	r := s.r
	var failures uint64
	req := &AppendEntriesRequest{
		RPCHeader: r.header(),
		Term:      s.term,
		Leader:    r.rpcHeader.Addr,
	}
	for {
		select {
		case <-s.heartbeatPokeCh:
		case <-s.heartbeatRand.timeout(r.config().HeartbeatTimeout / 10):
		case <-s.stopCh:
			return
		case <-r.shutdownCh:
			return
		}
		peer := s.getPeer()
		verifies := s.takeVerifies()
		var resp AppendEntriesResponse
		start := time.Now()
		if err := r.trans.AppendEntries(peer.ID, peer.Address, req, &resp); err != nil {
			s.putBackVerifies(verifies)
			wait := min(backoff(failureWait, failures, maxFailureScale), r.config().HeartbeatTimeout/2)
			r.logger.Error("failed to heartbeat to", "peer", peer.Address, "backoff time", wait, "error", err)
			r.observe(FailedHeartbeatObservation{PeerID: peer.ID, LastContact: s.lastContact.load()})
			failures++
			select {
			case <-time.After(wait):
			case <-s.stopCh:
				return
			case <-r.shutdownCh:
				return
			}
			continue
		}
		if failures > 0 {
			r.observe(ResumedHeartbeatObservation{PeerID: peer.ID})
		}
		failures = 0
		label := metricLabel{Name: "peer_id", Value: string(peer.ID)}
		measureSince([]string{"raft", "replication", "heartbeat"}, start, label)
		if !r.config().NoLegacyTelemetry {
			measureSince([]string{"raft", "replication", "heartbeat", string(peer.ID)}, start)
		}
		if resp.Term > s.term {
			s.signalStepDown(resp.Term)
		} else {
			s.lastContact.store(r.clock.now())
		}
		if resp.Success && resp.Term == s.term {
			s.storeAckedSend(r.clock.fromReal(start))
		}
		for _, v := range verifies {
			v.vote(peer.ID, resp.Success && resp.Term == s.term)
		}
	}
}
