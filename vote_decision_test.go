package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Section numbers are those of Ongaro's dissertation (2014).

// decisionState is the receiver of the cases below: node0 in term 5 with a
// log ending at index 10 of term 5, in the configuration {node0, node1,
// node2 voters; node3 nonvoter}.
func decisionState() voterState {
	return voterState{
		currentTerm:  5,
		lastLogIndex: 10,
		lastLogTerm:  5,
		configuration: Configuration{Servers: []Server{
			{Suffrage: Voter, ID: "node0", Address: "addr0"},
			{Suffrage: Voter, ID: "node1", Address: "addr1"},
			{Suffrage: Voter, ID: "node2", Address: "addr2"},
			{Suffrage: Nonvoter, ID: "node3", Address: "addr3"},
		}},
	}
}

// decisionBallot is the candidate of the cases below: node1 at addr1,
// campaigning in term 6 with the receiver's log.
func decisionBallot() ballot {
	return ballot{term: 6, candidateID: "node1", candidateAddr: "addr1", candidate: []byte("addr1"), lastLogIndex: 10, lastLogTerm: 5}
}

// outcome is what one kind of request should get.
type outcome struct {
	grant  bool
	reason voteReason
}

var granted = outcome{true, voteGranted}

func refused(reason voteReason) outcome { return outcome{false, reason} }

// Every case is decided twice, as a RequestVote and as a RequestPreVote:
// the rules are the same but for the vote record, which only a real vote
// consults, and the term, which only a real vote adopts.
// voteDecisionCase is one row of the vote rule table: changes to the
// standard ballot and voter state, and the outcome for each kind.
type voteDecisionCase struct {
	name          string
	ballot        func(*ballot)
	state         func(*voterState)
	vote, prevote outcome
}

// voteDecisionCases is the vote rule table, each row for both kinds.
func voteDecisionCases() []voteDecisionCase {
	return append(membershipLeaderAndTermCases(), voteRecordAndLogCases()...)
}

// membershipLeaderAndTermCases are the rows about who may ask (§4.2), a
// live leader or the quiet period (§4.2.3, §6.4.1) and the term (§3.3).
func membershipLeaderAndTermCases() []voteDecisionCase {
	return []voteDecisionCase{
		{
			name: "up-to-date voter with a newer term",
			vote: granted, prevote: granted,
		},
		{
			name:   "same term, no vote given yet",
			ballot: func(b *ballot) { b.term = 5 },
			vote:   granted, prevote: granted,
		},
		{
			name:   "older term (§3.3)",
			ballot: func(b *ballot) { b.term = 4 },
			vote:   refused(refusedStaleTerm), prevote: refused(refusedStaleTerm),
		},
		{
			name:   "stranger to our configuration",
			ballot: func(b *ballot) { b.candidateID, b.candidateAddr, b.candidate = "node9", "addr9", []byte("addr9") },
			vote:   refused(refusedStranger), prevote: refused(refusedStranger),
		},
		{
			name:   "stranger with an older term is refused as a stranger",
			ballot: func(b *ballot) { b.term, b.candidateID = 4, "node9" },
			vote:   refused(refusedStranger), prevote: refused(refusedStranger),
		},
		{
			name:   "nonvoter",
			ballot: func(b *ballot) { b.candidateID, b.candidateAddr, b.candidate = "node3", "addr3", []byte("addr3") },
			vote:   refused(refusedNonvoter), prevote: refused(refusedNonvoter),
		},
		{
			name:   "candidate without an ID: membership cannot be checked",
			ballot: func(b *ballot) { b.candidateID = "" },
			vote:   granted, prevote: granted,
		},
		{
			name:   "server without a configuration votes for a stranger",
			ballot: func(b *ballot) { b.candidateID = "node9" },
			state:  func(s *voterState) { s.configuration = Configuration{} },
			vote:   granted, prevote: granted,
		},
		{
			name:  "live leader known (§4.2.3)",
			state: func(s *voterState) { s.leaderAddr, s.leaderID = "addr2", "node2" },
			vote:  refused(refusedLiveLeader), prevote: refused(refusedLiveLeader),
		},
		{
			name:   "live leader asked for this election: a prevote cannot say so",
			ballot: func(b *ballot) { b.leadershipTransfer = true },
			state:  func(s *voterState) { s.leaderAddr, s.leaderID = "addr2", "node2" },
			vote:   granted, prevote: refused(refusedLiveLeader),
		},
		{
			name:  "the live leader is the candidate",
			state: func(s *voterState) { s.leaderAddr, s.leaderID = "addr1", "node1" },
			vote:  granted, prevote: granted,
		},
		{
			name:   "the live leader is the candidate, told by address without IDs",
			ballot: func(b *ballot) { b.candidateID = "" },
			state:  func(s *voterState) { s.leaderAddr = "addr1" },
			vote:   granted, prevote: granted,
		},
		{
			name:   "another live leader, told by address without IDs",
			ballot: func(b *ballot) { b.candidateID = "" },
			state:  func(s *voterState) { s.leaderAddr = "addr2" },
			vote:   refused(refusedLiveLeader), prevote: refused(refusedLiveLeader),
		},
		{
			name:  "lease quiet period after start",
			state: func(s *voterState) { s.quietPeriod = true },
			vote:  refused(refusedQuietPeriod), prevote: refused(refusedQuietPeriod),
		},
		{
			name:   "lease quiet period, election asked for by the leader",
			ballot: func(b *ballot) { b.leadershipTransfer = true },
			state:  func(s *voterState) { s.quietPeriod = true },
			vote:   granted, prevote: refused(refusedQuietPeriod),
		},
	}
}

// voteRecordAndLogCases are the rows about the vote record (§3.4) and the
// candidate's log (§3.6.1).
func voteRecordAndLogCases() []voteDecisionCase {
	return []voteDecisionCase{
		{
			name:   "voted for another candidate in this term (§3.4)",
			ballot: func(b *ballot) { b.term = 5 },
			state:  func(s *voterState) { s.votedTerm, s.votedFor = 5, []byte("addr2") },
			vote:   refused(refusedVotedForAnother), prevote: granted,
		},
		{
			name:   "voted for this candidate in this term",
			ballot: func(b *ballot) { b.term = 5 },
			state:  func(s *voterState) { s.votedTerm, s.votedFor = 5, []byte("addr1") },
			vote:   granted, prevote: granted,
		},
		{
			name:  "voted for another candidate in an older term",
			state: func(s *voterState) { s.votedTerm, s.votedFor = 5, []byte("addr2") },
			vote:  granted, prevote: granted,
		},
		{
			name:   "half-written vote record naming the candidate does not skip the log check",
			ballot: func(b *ballot) { b.lastLogIndex = 9 },
			state:  func(s *voterState) { s.votedTerm, s.votedFor = 6, []byte("addr1") },
			vote:   refused(refusedStaleLog), prevote: refused(refusedStaleLog),
		},
		{
			name:  "vote record unreadable",
			state: func(s *voterState) { s.voteRecordUnreadable = true },
			vote:  refused(refusedVoteRecordUnreadable), prevote: granted,
		},
		{
			name:   "candidate's last term is older, its log longer (§3.6.1)",
			ballot: func(b *ballot) { b.lastLogIndex, b.lastLogTerm = 20, 4 },
			vote:   refused(refusedStaleLog), prevote: refused(refusedStaleLog),
		},
		{
			name:   "same last term, candidate's log shorter",
			ballot: func(b *ballot) { b.lastLogIndex = 9 },
			vote:   refused(refusedStaleLog), prevote: refused(refusedStaleLog),
		},
		{
			name:   "same last term, candidate's log longer",
			ballot: func(b *ballot) { b.lastLogIndex = 11 },
			vote:   granted, prevote: granted,
		},
		{
			name:   "candidate's last term is newer, its log shorter",
			ballot: func(b *ballot) { b.lastLogIndex, b.lastLogTerm = 3, 6 },
			vote:   granted, prevote: granted,
		},
		{
			name:   "nonvoter with a stale log is refused as a nonvoter",
			ballot: func(b *ballot) { b.candidateID, b.lastLogIndex = "node3", 1 },
			vote:   refused(refusedNonvoter), prevote: refused(refusedNonvoter),
		},
	}
}

func TestVoteDecisionAppliesTheSameRulesToVotesAndPreVotes(t *testing.T) {
	for _, tc := range voteDecisionCases() {
		for _, prevote := range []bool{false, true} {
			kind, want := "vote", tc.vote
			if prevote {
				kind, want = "prevote", tc.prevote
			}
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				b, s := decisionBallot(), decisionState()
				if tc.ballot != nil {
					tc.ballot(&b)
				}
				if tc.state != nil {
					tc.state(&s)
				}
				b.prevote = prevote
				if prevote {
					// RequestPreVote has no field for it: a candidate sent by
					// the leader skips prevote.
					b.leadershipTransfer = false
				}
				v := voteDecision(b, s)
				require.Equal(t, want, outcome{v.grant, v.reason}, "%s: want %v, got %v", kind, want.reason, v.reason)
				require.Equal(t, max(s.currentTerm, b.term), v.term, "the response carries the newer of the two terms")
				// §3.3: a real vote that gets past the membership, leader and
				// term checks adopts a newer term, granted or not; a
				// prevote never does (§9.6).
				passedTermCheck := v.reason != refusedStranger && v.reason != refusedLiveLeader &&
					v.reason != refusedQuietPeriod && v.reason != refusedStaleTerm
				require.Equal(t, !prevote && passedTermCheck && b.term > s.currentTerm, v.adoptTerm, "adopt term")
			})
		}
	}
}

func TestVoteReasonsAllHaveAText(t *testing.T) {
	seen := map[string]voteReason{}
	for reason := voteGranted; reason <= refusedVoteNotDurable; reason++ {
		text := reason.String()
		require.NotEqual(t, "unknown", text, "reason %d", reason)
		_, dup := seen[text]
		require.False(t, dup, "reason %d repeats the text %q", reason, text)
		seen[text] = reason
	}
	require.Equal(t, "unknown", (refusedVoteNotDurable + 1).String())
}
