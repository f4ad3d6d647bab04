package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// awaitMatch wakes a waiter exactly when its server's match index reaches
// the index it waits for: not for other servers, not below the index, and
// at once when the server is there already. A waiter that stops waiting is
// forgotten.
func TestCommitmentAwaitMatchWakesWhenTheServerReachesTheIndex(t *testing.T) {
	c := newCommitment(make(chan struct{}, 1), suffrageConfiguration(t, "a:v", "b:v", "c:v", "n:n"), 1)
	c.match("b", 3)

	already, stop := c.awaitMatch("b", 3)
	require.True(t, isClosed(already), "b already holds 3")
	stop()

	reached, _ := c.awaitMatch("b", 7)
	other, _ := c.awaitMatch("c", 7)
	c.match("a", 9)
	require.False(t, isClosed(reached), "another server's progress woke the waiter")
	c.match("b", 6)
	require.False(t, isClosed(reached), "woken below the index")
	c.match("b", 8)
	require.True(t, isClosed(reached), "not woken when b passed 7")
	require.False(t, isClosed(other))

	stopped, stopWaiting := c.awaitMatch("c", 10)
	stopWaiting()
	c.match("c", 10)
	require.True(t, isClosed(other), "c reached 7")
	require.False(t, isClosed(stopped), "a waiter that stopped waiting was woken")
	require.Empty(t, c.waiters, "waiters left behind")

	nonvoter, _ := c.awaitMatch("n", 1)
	c.match("n", 5)
	require.False(t, isClosed(nonvoter), "commitment tracks voters only")
}

// ownWritesCommitted (the leader's write pacing) says whether a server's
// durable entries are all committed, and otherwise hands out a channel
// that closes when the commit index next moves. A nonvoter (a leader
// removing itself) holds nothing here and never waits.
func TestCommitmentOwnWritesCommittedWaitsForTheNextCommit(t *testing.T) {
	c := newCommitment(make(chan struct{}, 1), suffrageConfiguration(t, "a:v", "b:v", "c:v", "n:n"), 1)
	done, _ := c.ownWritesCommitted("a")
	require.True(t, done, "nothing written yet")

	c.match("a", 4)
	done, moved := c.ownWritesCommitted("a")
	require.False(t, done, "a's entries up to 4 are on a alone")
	c.match("b", 2)
	require.True(t, isClosed(moved), "the commit index moved to 2")
	done, moved = c.ownWritesCommitted("a")
	require.False(t, done, "3 and 4 are not committed yet")
	require.False(t, isClosed(moved), "a channel from before 2 committed")
	c.match("c", 4)
	require.True(t, isClosed(moved))
	done, _ = c.ownWritesCommitted("a")
	require.True(t, done, "4 is committed")

	c.match("n", 9)
	done, _ = c.ownWritesCommitted("n")
	require.True(t, done, "a nonvoter is never held")
}
