package raft

import (
	"strings"
	"time"
)

// runPreVote asks the voters whether they would vote for us in the next
// term, without changing our term or vote. It returns true once a quorum
// says yes, and false when the role changed. After a refused round it waits
// an election timeout and asks again.
func (r *Raft) runPreVote() bool {
	for r.getState() == Candidate {
		term := r.getCurrentTerm() + 1
		r.logger.Info("entering prevote state", "node", r, "term", term)
		start := time.Now()
		lastIndex, lastTerm := r.getLastEntry()
		req := &RequestPreVoteRequest{
			RPCHeader:    r.header(),
			Term:         term,
			LastLogIndex: lastIndex,
			LastLogTerm:  lastTerm,
		}
		transport := r.trans.(WithPreVote)
		votes := r.askVoters(func(server Server) voteResult {
			var resp RequestPreVoteResponse
			if err := transport.RequestPreVote(server.ID, server.Address, req, &resp); err != nil {
				// A peer that does not know prevote answers so; it
				// will judge the real vote on its own rules.
				if strings.Contains(err.Error(), errUnexpectedCommand.Error()) {
					return voteResult{voterID: server.ID, term: term, granted: true}
				}
				r.logger.Error("failed to make requestPreVote RPC", "target", server, "error", err, "term", term)
				return voteResult{voterID: server.ID, term: term}
			}
			return voteResult{voterID: server.ID, term: resp.Term, granted: resp.Granted}
		})
		measureSince([]string{"raft", "candidate", "preElectSelf"}, start)

		if r.awaitVotes("pre-vote", term, votes) {
			return true
		}
	}
	return false
}

// requestPreVote answers a RequestPreVote request by the rules of a real
// vote (voteDecision). It never changes our state nor writes anything.
func (r *Raft) requestPreVote(rpc RPC, req *RequestPreVoteRequest) {
	defer measureSince([]string{"raft", "rpc", "requestPreVote"}, time.Now())
	r.observe(*req)
	b := ballot{
		prevote:       true,
		term:          req.Term,
		candidateID:   ServerID(req.ID),
		candidateAddr: r.trans.DecodePeer(req.Addr),
		candidate:     req.Addr,
		lastLogIndex:  req.LastLogIndex,
		lastLogTerm:   req.LastLogTerm,
	}
	s := r.readVoterState(true)
	v := voteDecision(b, s)
	r.logBallot(b, s, v)
	rpc.Respond(&RequestPreVoteResponse{RPCHeader: r.header(), Term: v.term, Granted: v.grant}, nil)
}
