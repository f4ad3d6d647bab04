package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func newReads(n int) []*readIndexFuture {
	reads := make([]*readIndexFuture, n)
	for i := range reads {
		reads[i] = &readIndexFuture{}
	}
	return reads
}

// §6.4: reads that come before the first commit of the leader's term wait
// for it, and are given back once the commit index reaches the term's
// first entry.
func TestReadRoundsHoldReadsUntilTheTermsFirstCommit(t *testing.T) {
	q := readRounds{startIndex: 10}
	early := newReads(2)
	require.Empty(t, q.admit(early, 9), "a read admitted before the term's first commit")
	require.Empty(t, q.release(9), "reads released before the term's first commit")
	more := newReads(1)
	require.Empty(t, q.admit(more, 9))

	require.Equal(t, append(early, more...), q.release(10), "the waiting reads, in arrival order")
	require.Empty(t, q.release(11), "reads released twice")

	late := newReads(1)
	require.Equal(t, late, q.admit(late, 10), "after the first commit reads go straight on")
	require.Empty(t, q.drain())
}

// One check is out at a time: reads that come while it is out wait, and go
// together in the next once it finishes; a check that is not the one out
// finishes nothing.
func TestReadRoundsRunOneCheckAtATimeAndBatchTheReadsThatWait(t *testing.T) {
	q := readRounds{startIndex: 1}
	first := newReads(1)
	require.True(t, q.join(first), "no check is out: the reads start one")
	round := &verifyFuture{reads: first}
	q.started(round)

	second, third := newReads(2), newReads(3)
	require.False(t, q.join(second), "a check is out: the reads wait")
	require.False(t, q.join(third))

	require.False(t, q.finished(&verifyFuture{}), "a plain VerifyLeader check is not the read round")
	require.False(t, q.join(newReads(0)), "the read round is still out")
	require.True(t, q.finished(round))
	require.False(t, q.finished(round), "a round finishes once")
	require.Equal(t, append(second, third...), q.takeNext(), "the waiting reads form the next round")
	require.Empty(t, q.takeNext())
	require.True(t, q.join(newReads(1)), "no check is out after the round finished")
}

// When leadership ends, every read still queued is handed back to be
// failed: those waiting for the first commit and those waiting for a round.
func TestReadRoundsDrainEveryQueuedRead(t *testing.T) {
	q := readRounds{startIndex: 5}
	pending := newReads(2)
	q.admit(pending, 4)
	q.started(&verifyFuture{})
	waiting := newReads(1)
	q.join(waiting)

	require.ElementsMatch(t, append(pending, waiting...), q.drain())
	require.Empty(t, q.drain(), "drained twice")
	require.Empty(t, q.release(100))
	require.Empty(t, q.takeNext())
}
