package raft

import "bytes"

// ballot is a RequestVote or RequestPreVote request as voteDecision sees it.
type ballot struct {
	// prevote is true for a RequestPreVote: the receiver only says whether
	// it would vote, and changes nothing (§9.6).
	prevote bool
	// term is the term the candidate campaigns in (for a prevote, the term
	// it would campaign in).
	term uint64
	// candidateID is empty from peers too old to send one; the rules about
	// membership cannot be applied to them.
	candidateID ServerID
	// candidateAddr is where the candidate is reached; it names the
	// candidate when its ID is unknown.
	candidateAddr ServerAddress
	// candidate is the candidate as our vote record stores it (its encoded
	// address).
	candidate []byte
	// lastLogIndex and lastLogTerm describe the candidate's log.
	lastLogIndex, lastLogTerm uint64
	// leadershipTransfer is set when the leader asked for this election
	// (TimeoutNow); a prevote never carries it.
	leadershipTransfer bool
}

// voterState is the receiver's state a ballot is decided on, read on the
// main loop just before.
type voterState struct {
	currentTerm uint64
	// votedTerm and votedFor are the durable vote record (LastVoteTerm and
	// LastVoteCand); only a real vote reads them.
	votedTerm uint64
	votedFor  []byte
	// voteRecordUnreadable is set when the vote record could not be read:
	// the receiver cannot know whether it already voted.
	voteRecordUnreadable bool
	// lastLogIndex and lastLogTerm describe the receiver's log.
	lastLogIndex, lastLogTerm uint64
	// leaderAddr and leaderID name the leader the receiver heard from
	// within a heartbeat timeout; empty when it knows none.
	leaderAddr ServerAddress
	leaderID   ServerID
	// quietPeriod is set during the lease quiet period after a start
	// (inLeaseQuietPeriod).
	quietPeriod bool
	// configuration is the receiver's latest configuration; empty on a
	// server not yet bootstrapped.
	configuration Configuration
}

// voteReason says why a ballot was granted or refused, for logs and tests.
type voteReason uint8

const (
	voteGranted voteReason = iota
	refusedStranger
	refusedLiveLeader
	refusedQuietPeriod
	refusedStaleTerm
	refusedTermNotDurable
	refusedNonvoter
	refusedVoteRecordUnreadable
	refusedVotedForAnother
	refusedStaleLog
	refusedVoteNotDurable
)

// String returns the reason as a log message would say it.
func (v voteReason) String() string {
	switch v {
	case voteGranted:
		return "granted"
	case refusedStranger:
		return "candidate is not in our configuration"
	case refusedLiveLeader:
		return "we have a live leader"
	case refusedQuietPeriod:
		return "lease quiet period after start"
	case refusedStaleTerm:
		return "candidate's term is older than ours"
	case refusedTermNotDurable:
		return "could not persist the candidate's term"
	case refusedNonvoter:
		return "candidate is not a voter"
	case refusedVoteRecordUnreadable:
		return "could not read our vote record"
	case refusedVotedForAnother:
		return "we voted for another candidate in this term"
	case refusedStaleLog:
		return "our last index or term is greater"
	case refusedVoteNotDurable:
		return "could not persist the vote"
	}
	return "unknown"
}

// voteVerdict is what voteDecision decides.
type voteVerdict struct {
	grant bool
	// adoptTerm: the receiver must step down to the ballot's term, durably,
	// before it answers (and before it persists a granted vote). Never set
	// for a prevote.
	adoptTerm bool
	// term is the response's term.
	term uint64
	// reason says why.
	reason voteReason
}

// voteDecision applies the election rules to a vote or a prevote, the same
// rules for both, in this order (sections of Ongaro's dissertation, 2014):
//
//  1. A candidate outside our configuration gets nothing, and its term is
//     not adopted: a removed server must not disrupt the cluster (the
//     problem of §4.2.3).
//  2. A server that heard from a live leader keeps it (§4.2.3), unless that
//     leader asked for the election (§3.10, leadership transfer); so does a
//     server in its lease quiet period after a start (§6.4.1: it may have
//     extended a leader's lease before it restarted).
//  3. A candidate with an older term gets nothing (§3.3).
//  4. A real vote with a newer term makes us adopt it (§3.3), whatever the
//     outcome; a prevote changes nothing (§9.6).
//  5. A nonvoter cannot be elected (§4.2.1).
//  6. A real vote goes to one candidate per term (§3.4). A prevote does not
//     consult the vote record: it asks about a term we may not be in yet.
//  7. The candidate's log must be at least as up to date as ours (§3.6.1).
//
// Rules 1 and 5 need the candidate's ID and a configuration: a server not
// yet bootstrapped votes, so that a bootstrapped peer can get elected. The
// response term is the newer of ours and the ballot's: a candidate can
// learn from it only that its own term is stale (§3.3), and a refused one
// is never told a term older than the one it asked about.
func voteDecision(b ballot, s voterState) voteVerdict {
	v := voteVerdict{term: max(s.currentTerm, b.term)}
	knowsMembership := b.candidateID != "" && len(s.configuration.Servers) > 0
	switch {
	case knowsMembership && !inConfiguration(s.configuration, b.candidateID):
		v.reason = refusedStranger
	case s.leaderAddr != "" && !b.leadershipTransfer &&
		!sameServer(s.leaderAddr, s.leaderID, b.candidateAddr, b.candidateID):
		v.reason = refusedLiveLeader
	case s.quietPeriod && !b.leadershipTransfer:
		v.reason = refusedQuietPeriod
	case b.term < s.currentTerm:
		v.reason = refusedStaleTerm
	default:
		v.adoptTerm = !b.prevote && b.term > s.currentTerm
		v.reason = voteOnCandidate(b, s, knowsMembership)
		v.grant = v.reason == voteGranted
	}
	return v
}

// voteOnCandidate applies the rules that come once the term is settled:
// the candidate's suffrage, our vote in its term (real votes only), and
// its log.
func voteOnCandidate(b ballot, s voterState, knowsMembership bool) voteReason {
	if knowsMembership && !hasVote(s.configuration, b.candidateID) {
		return refusedNonvoter
	}
	if !b.prevote {
		if s.voteRecordUnreadable {
			return refusedVoteRecordUnreadable
		}
		// A repeat request from the candidate on record is not granted
		// blindly: the record may be half a vote (a newer LastVoteTerm
		// beside the candidate of an older term, when the second write
		// failed), so the log check still applies.
		if s.votedTerm == b.term && s.votedFor != nil && !bytes.Equal(s.votedFor, b.candidate) {
			return refusedVotedForAnother
		}
	}
	if !logUpToDate(b.lastLogIndex, b.lastLogTerm, s.lastLogIndex, s.lastLogTerm) {
		return refusedStaleLog
	}
	return voteGranted
}

// logUpToDate reports whether a log ending at (index, term) is at least as
// up to date as one ending at (ourIndex, ourTerm) (§3.6.1): a later last
// term wins, and with equal last terms the longer log.
func logUpToDate(index, term, ourIndex, ourTerm uint64) bool {
	return term > ourTerm || (term == ourTerm && index >= ourIndex)
}

// sameServer reports whether a known server (by address and ID) is the
// given one, by ID when both IDs are known.
func sameServer(addr ServerAddress, id ServerID, otherAddr ServerAddress, otherID ServerID) bool {
	if id != "" && otherID != "" {
		return id == otherID
	}
	return addr == otherAddr
}
