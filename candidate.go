package raft

import (
	"bytes"
	"time"
)

// voteResult is one peer's answer in an election or prevote round.
type voteResult struct {
	voterID ServerID
	term    uint64
	granted bool
}

// quorumSize is how many votes win in the latest configuration.
func (r *Raft) quorumSize() int {
	voters := 0
	for _, server := range r.configurations.latest.Servers {
		if server.Suffrage == Voter {
			voters++
		}
	}
	return voters/2 + 1
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
	needed := r.quorumSize()
	granted, refused := 0, 0
	if hasVote(r.configurations.latest, r.localID) {
		granted++
	}
	if granted >= needed {
		return true
	}
	electionTimer := r.randomTimeout(r.config().ElectionTimeout)
	for r.getState() == Candidate {
		r.mainSaturation.sleeping()
		select {
		case rpc := <-r.rpcCh:
			r.mainSaturation.working()
			r.processRPC(rpc)
		case rpc := <-r.heartbeatCh:
			r.mainSaturation.working()
			r.processRPC(rpc)
		case vote := <-votes:
			r.mainSaturation.working()
			if vote.term > term {
				r.logger.Debug("newer term discovered, fallback to follower", "round", round, "term", vote.term)
				_ = r.stepDownTo(vote.term)
				return false
			}
			if vote.granted {
				granted++
				r.logger.Debug("vote granted", "round", round, "from", vote.voterID, "term", term, "tally", granted)
				if granted >= needed {
					r.logger.Info("round won", "round", round, "term", term, "tally", granted)
					return true
				}
			} else if refused++; refused == needed {
				r.logger.Info("round lost, waiting for election timeout", "round", round, "term", term, "refused", refused)
			}
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
			r.handleOpNotLeader(op)
		case <-electionTimer:
			r.mainSaturation.working()
			r.logger.Warn("election timeout reached, restarting", "round", round, "term", term)
			return false
		case <-r.shutdownCh:
			r.mainSaturation.working()
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
	results := make(chan voteResult, len(servers))
	for _, server := range servers {
		if server.Suffrage != Voter || server.ID == r.localID {
			continue
		}
		// Tracked so that Shutdown waits for RPCs still in flight.
		r.goFunc(func() {
			results <- ask(server)
		})
	}
	return results
}

// requestVote handles a RequestVote request, applying the rules of API.md
// §4 in their order.
func (r *Raft) requestVote(rpc RPC, req *RequestVoteRequest) {
	defer measureSince([]string{"raft", "rpc", "requestVote"}, time.Now())
	r.observe(*req)
	resp := &RequestVoteResponse{RPCHeader: r.header(), Term: r.getCurrentTerm()}
	var rpcErr error
	defer func() { rpc.Respond(resp, rpcErr) }()

	candidate := req.Addr
	if len(candidate) == 0 {
		candidate = req.Candidate
	}
	candidateAddr := r.trans.DecodePeer(candidate)
	candidateID := ServerID(req.ID)
	latest := r.configurations.latest

	// 1. Strangers to our configuration get no vote.
	if len(req.ID) > 0 && len(latest.Servers) > 0 && !inConfiguration(latest, candidateID) {
		r.logger.Warn("rejecting vote request since node is not in configuration", "from", candidateAddr)
		return
	}
	// 2. A node that knows a live leader keeps it, unless the leader itself
	// asked for this election.
	if leaderAddr, leaderID := r.LeaderWithID(); leaderAddr != "" && !req.LeadershipTransfer &&
		!sameServer(leaderAddr, leaderID, candidateAddr, candidateID) {
		r.logger.Warn("rejecting vote request since we have a leader", "from", candidateAddr, "leader", leaderAddr, "leader-id", leaderID)
		return
	}
	if !req.LeadershipTransfer && r.inLeaseQuietPeriod() {
		r.logger.Warn("rejecting vote request during the lease quiet period after start", "from", candidateAddr)
		return
	}
	// 3. Stale terms lose.
	if req.Term < r.getCurrentTerm() {
		return
	}
	// 4. A newer term makes us a follower in it.
	if req.Term > r.getCurrentTerm() {
		r.logger.Debug("lost leadership because received a requestVote with a newer term")
		if err := r.stepDownTo(req.Term); err != nil {
			return
		}
		resp.Term = req.Term
	}
	// 5. Nonvoters do not get elected. A server with no configuration yet
	// (not bootstrapped, waiting to be) cannot tell, and votes.
	if len(req.ID) > 0 && len(latest.Servers) > 0 && !hasVote(latest, candidateID) {
		r.logger.Warn("rejecting vote request since node is not a voter", "from", candidateAddr)
		return
	}
	// 6. One vote per term.
	lastVoteTerm, err := getUint64(r.stable, keyLastVoteTerm)
	if err != nil {
		r.logger.Error("failed to get last vote term", "error", err)
		return
	}
	lastVoteCand, err := getBytes(r.stable, keyLastVoteCand)
	if err != nil {
		r.logger.Error("failed to get last vote candidate", "error", err)
		return
	}
	if lastVoteTerm == req.Term && lastVoteCand != nil && !bytes.Equal(lastVoteCand, candidate) {
		r.logger.Warn("rejecting vote request since we voted for another candidate in this term", "term", req.Term)
		return
	}
	// A repeat request from the candidate on record is not granted blindly:
	// the record may be half a vote (a newer LastVoteTerm written beside the
	// candidate of an older term, when the second write failed), so the log
	// check below still applies.
	// 7. §5.4.1: the candidate's log must be at least as up to date.
	lastIndex, lastTerm := r.getLastEntry()
	if lastTerm > req.LastLogTerm || (lastTerm == req.LastLogTerm && lastIndex > req.LastLogIndex) {
		r.logger.Warn("rejecting vote request since our last index or term is greater",
			"candidate", candidateAddr, "last-index", lastIndex, "last-term", lastTerm)
		return
	}
	// 8. The vote is durable before it is granted.
	if err := r.persistVote(req.Term, candidate); err != nil {
		r.logger.Error("failed to persist vote", "error", err)
		return
	}
	resp.Granted = true
	r.lastContact.store(r.clock.now())
}

// sameServer reports whether a known server (by address and ID) is the
// given one, by ID when both IDs are known.
func sameServer(addr ServerAddress, id ServerID, otherAddr ServerAddress, otherID ServerID) bool {
	if id != "" && otherID != "" {
		return id == otherID
	}
	return addr == otherAddr
}
