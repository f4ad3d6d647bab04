package raft

import (
	"time"
)

// voteResult is one peer's answer in an election or prevote round.
type voteResult struct {
	voterID ServerID
	term    uint64
	granted bool
}

// runCandidate campaigns: a prevote round first (unless prevote is off or
// the leader asked us to take over), then a real election.
func (r *Raft) runCandidate() {
	transfer := r.candidateFromLeadershipTransfer.Load()
	if r.preVote && !transfer {
		if !r.runPreVote() {
			return
		}
	}
	r.runElection(transfer)
}

// runElection runs one election (§5.2): bump the term, vote for ourselves,
// ask the other voters. It returns when the role changed or the election
// timed out (the role is still Candidate then and the main loop retries).
func (r *Raft) runElection(transfer bool) {
	r.candidateFromLeadershipTransfer.Store(false)
	term := r.getCurrentTerm() + 1
	r.logger.Info("entering candidate state", "node", r, "term", term)
	incrCounter([]string{"raft", "state", "candidate"}, 1)

	// Term and vote are durable before any RPC of the new term is sent.
	if err := r.setCurrentTerm(term); err != nil {
		r.setState(Follower)
		return
	}
	self := r.rpcHeader.Addr
	if err := r.persistVote(term, self); err != nil {
		r.logger.Error("failed to persist own vote", "term", term, "error", err)
		r.setState(Follower)
		return
	}

	start := time.Now()
	lastIndex, lastTerm := r.getLastEntry()
	req := &RequestVoteRequest{
		RPCHeader:          r.header(),
		Term:               term,
		Candidate:          self,
		LastLogIndex:       lastIndex,
		LastLogTerm:        lastTerm,
		LeadershipTransfer: transfer,
	}
	votes := r.askVoters(func(server Server) voteResult {
		var resp RequestVoteResponse
		if err := r.trans.RequestVote(server.ID, server.Address, req, &resp); err != nil {
			r.logger.Error("failed to make requestVote RPC", "target", server, "error", err, "term", term)
			return voteResult{voterID: server.ID, term: term}
		}
		return voteResult{voterID: server.ID, term: resp.Term, granted: resp.Granted}
	})
	measureSince([]string{"raft", "candidate", "electSelf"}, start)

	if r.awaitVotes("election", term, votes) {
		r.becomeLeader(term)
	}
}

// awaitVotes counts the answers of one round, prevote or real, in term,
// while serving the main loop's other inputs. It returns true once a
// quorum of the latest configuration grants, and false when the role
// changed (a newer term, a leader's RPC, shutdown) or the election timer
// fired with the role still Candidate, for the caller to start anew.
func (r *Raft) awaitVotes(round string, term uint64, votes <-chan voteResult) bool {
	count := votersOf(r.configurations.latest).newTally()
	if count.grant(r.localID) {
		return true
	}
	electionTimer := r.randomTimeout(r.config().ElectionTimeout)
	for r.getState() == Candidate {
		event, vote := r.serveNonLeader(electionTimer, nil, votes)
		switch event {
		case voteArrived:
			if vote.term > term {
				r.logger.Debug("newer term discovered, fallback to follower", "round", round, "term", vote.term)
				_ = r.stepDownTo(vote.term)
				return false
			}
			if vote.granted {
				won := count.grant(vote.voterID)
				r.logger.Debug("vote granted", "round", round, "from", vote.voterID, "term", term, "tally", count.grants())
				if won {
					r.logger.Info("round won", "round", round, "term", term, "tally", count.grants())
					return true
				}
			} else if !count.lost() && count.refuse(vote.voterID) {
				r.logger.Info("round lost, waiting for election timeout", "round", round, "term", term, "refused", count.refusals())
			}
		case timerFired:
			r.logger.Warn("election timeout reached, restarting", "round", round, "term", term)
			return false
		case shuttingDown:
			return false
		}
	}
	return false
}

func (r *Raft) becomeLeader(term uint64) {
	if !r.setState(Leader) {
		// Shut down while the votes came in.
		return
	}
	r.logger.Info("election won", "term", term)
	r.setLeader(r.localAddr, r.localID)
}

// askVoters sends ask to every other voter of the latest configuration on
// its own goroutine and returns the channel their answers arrive on. The
// channel has room for every answer, so no goroutine outlives a round that
// stops listening.
func (r *Raft) askVoters(ask func(Server) voteResult) <-chan voteResult {
	servers := r.configurations.latest.Servers
	voters := votersOf(r.configurations.latest)
	results := make(chan voteResult, len(servers))
	for _, server := range servers {
		if !voters.isVoter(server.ID) || server.ID == r.localID {
			continue
		}
		// Tracked so that Shutdown waits for RPCs still in flight.
		r.goFunc(func() {
			results <- ask(server)
		})
	}
	return results
}

// requestVote handles a RequestVote request: voteDecision decides, and
// this handler makes its writes, in the order safety needs them: a newer
// term is durable before anything else, and a granted vote is durable
// before the answer.
func (r *Raft) requestVote(rpc RPC, req *RequestVoteRequest) {
	defer measureSince([]string{"raft", "rpc", "requestVote"}, time.Now())
	r.observe(*req)
	candidate := req.Addr
	if len(candidate) == 0 {
		candidate = req.Candidate
	}
	b := ballot{
		term:               req.Term,
		candidateID:        ServerID(req.ID),
		candidateAddr:      r.trans.DecodePeer(candidate),
		candidate:          candidate,
		lastLogIndex:       req.LastLogIndex,
		lastLogTerm:        req.LastLogTerm,
		leadershipTransfer: req.LeadershipTransfer,
	}
	s := r.readVoterState(false)
	v := voteDecision(b, s)
	if v.adoptTerm {
		r.logger.Debug("vote request with a newer term, stepping down", "term", req.Term)
		if err := r.stepDownTo(req.Term); err != nil {
			v.grant, v.reason = false, refusedTermNotDurable
		}
	}
	if v.grant {
		if err := r.persistVote(req.Term, candidate); err != nil {
			r.logger.Error("failed to persist vote", "error", err)
			v.grant, v.reason = false, refusedVoteNotDurable
		}
	}
	r.logBallot(b, s, v)
	if v.grant {
		r.lastContact.store(r.clock.now())
	}
	rpc.Respond(&RequestVoteResponse{RPCHeader: r.header(), Term: v.term, Granted: v.grant}, nil)
}

// readVoterState reads the state voteDecision needs. Only a real vote
// reads the vote record.
func (r *Raft) readVoterState(prevote bool) voterState {
	s := voterState{
		currentTerm:   r.getCurrentTerm(),
		quietPeriod:   r.inLeaseQuietPeriod(),
		configuration: r.configurations.latest,
	}
	s.leaderAddr, s.leaderID = r.LeaderWithID()
	s.lastLogIndex, s.lastLogTerm = r.getLastEntry()
	if prevote {
		return s
	}
	var err error
	if s.votedTerm, err = getUint64(r.stable, keyLastVoteTerm); err != nil {
		r.logger.Error("failed to get last vote term", "error", err)
		s.voteRecordUnreadable = true
	} else if s.votedFor, err = getBytes(r.stable, keyLastVoteCand); err != nil {
		r.logger.Error("failed to get last vote candidate", "error", err)
		s.voteRecordUnreadable = true
	}
	return s
}

// logBallot logs a refused vote or prevote with its reason.
func (r *Raft) logBallot(b ballot, s voterState, v voteVerdict) {
	if v.grant {
		return
	}
	kind := "vote"
	if b.prevote {
		kind = "pre-vote"
	}
	r.logger.Warn("rejecting "+kind+" request", "reason", v.reason.String(),
		"from", b.candidateAddr, "candidate-id", b.candidateID, "term", b.term, "our-term", s.currentTerm,
		"leader", s.leaderAddr, "leader-id", s.leaderID,
		"last-index", s.lastLogIndex, "last-term", s.lastLogTerm)
}
