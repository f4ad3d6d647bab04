package raft

import "slices"

// voterSet is the voting membership of one configuration: who votes and how
// many votes make a majority. Every rule that counts votes (elections,
// commitment, leadership checks, check-quorum, the read lease, transfer
// targets) asks it rather than walking the server list itself. Nonvoter and
// Staging servers have no vote.
type voterSet struct {
	// ids lists the voters in configuration order.
	ids []ServerID
}

// votersOf returns the voters of configuration.
func votersOf(configuration Configuration) voterSet {
	v := voterSet{ids: make([]ServerID, 0, len(configuration.Servers))}
	for _, server := range configuration.Servers {
		if server.Suffrage == Voter {
			v.ids = append(v.ids, server.ID)
		}
	}
	return v
}

// isVoter reports whether id votes.
func (v voterSet) isVoter(id ServerID) bool { return slices.Contains(v.ids, id) }

// size is how many servers vote.
func (v voterSet) size() int { return len(v.ids) }

// quorum is how many votes make a majority: more than half of the voters.
// With no voters it is 1, which nobody can reach.
func (v voterSet) quorum() int { return len(v.ids)/2 + 1 }

// tally counts the answers of one round of votes (an election, a prevote
// round, a leadership check) among voters: each voter counts once, and
// answers from servers that do not vote are ignored.
type tally struct {
	voters  voterSet
	granted map[ServerID]bool
	refused map[ServerID]bool
}

// newTally starts counting a round among v.
func (v voterSet) newTally() *tally {
	return &tally{voters: v, granted: map[ServerID]bool{}, refused: map[ServerID]bool{}}
}

// grant records a yes from id and reports whether a majority has granted.
func (t *tally) grant(id ServerID) bool {
	if t.voters.isVoter(id) && !t.refused[id] {
		t.granted[id] = true
	}
	return t.won()
}

// refuse records a no from id and reports whether a majority has refused,
// so that the round can no longer be won.
func (t *tally) refuse(id ServerID) bool {
	if t.voters.isVoter(id) && !t.granted[id] {
		t.refused[id] = true
	}
	return t.lost()
}

// won reports whether a majority of the voters granted.
func (t *tally) won() bool { return len(t.granted) >= t.voters.quorum() }

// lost reports whether a majority of the voters refused.
func (t *tally) lost() bool { return len(t.refused) >= t.voters.quorum() }

// grants is how many voters granted so far.
func (t *tally) grants() int { return len(t.granted) }

// refusals is how many voters refused so far.
func (t *tally) refusals() int { return len(t.refused) }

// quorumIndex returns the highest index that a majority of matchIndexes
// have reached: sorted in descending order, the value at position n/2.
// It returns 0 for no voters.
func quorumIndex(matchIndexes []uint64) uint64 {
	if len(matchIndexes) == 0 {
		return 0
	}
	sorted := slices.Clone(matchIndexes)
	slices.Sort(sorted)
	// Ascending order: the majority of n is n/2+1 servers, the lowest of
	// which sits at position (n-1)/2 from the start.
	return sorted[(len(sorted)-1)/2]
}

// hasVote reports whether the server with this ID is a Voter in the
// configuration. Nonvoter and Staging servers have no vote.
func hasVote(configuration Configuration, id ServerID) bool {
	for _, server := range configuration.Servers {
		if server.ID == id {
			return server.Suffrage == Voter
		}
	}
	return false
}
