//go:build go1.25

package raft

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// pacedLog is a log writer fed by a leader of three voters, L, F1 and F2,
// whose commitment the test moves by hand.
type pacedLog struct {
	log        *raftLog
	store      *batchStore
	commitment *commitment
	pacer      *leaderPacer
}

// newPacedLog starts a writer on an empty store; it stops when the test's
// bubble function returns.
func newPacedLog(t *testing.T) *pacedLog {
	shutdownCh := make(chan struct{})
	t.Cleanup(func() { close(shutdownCh) })
	store := &batchStore{raftStore: NewInmemStore()}
	l := newRaftLog(store, hclog.NewNullLogger(), shutdownCh, func() uint64 { return 0 }, func() uint64 { return 10 }, true)
	go l.writeLoop()
	voters := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "L"}, {Suffrage: Voter, ID: "F1"}, {Suffrage: Voter, ID: "F2"},
	}}
	c := newCommitment(make(chan struct{}, 1), voters, 1)
	return &pacedLog{log: l, store: store, commitment: c, pacer: &leaderPacer{commitment: c, self: "L"}}
}

// append dispatches entry index as the leader does (dispatchLogs).
func (p *pacedLog) append(index uint64) {
	p.log.appendAsLeader([]*Log{{Index: index, Term: 1, Type: LogCommand}}, p.pacer, func(durable uint64) {
		p.commitment.match("L", durable)
	}, func(error) {})
}

// holdingSecondWrite returns a paced log that has written entry 1, which
// no follower holds yet, and holds entry 2 back.
func holdingSecondWrite(t *testing.T) *pacedLog {
	p := newPacedLog(t)
	p.append(1)
	synctest.Wait()
	p.append(2)
	synctest.Wait()
	require.Equal(t, [][]uint64{{1}}, p.store.written(), "entry 1 is not committed: 2 waits")
	return p
}

func TestPacedLeaderGathersItsWritesUntilThePreviousOneCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacedLog(t)
		p.append(1)
		synctest.Wait()
		require.Equal(t, [][]uint64{{1}}, p.store.written(), "nothing uncommitted before it: the first write starts at once")

		p.append(2)
		p.append(3)
		synctest.Wait()
		require.Equal(t, [][]uint64{{1}}, p.store.written(), "entry 1 is not committed: 2 and 3 wait")

		p.commitment.match("F1", 1)
		synctest.Wait()
		require.Equal(t, [][]uint64{{1}, {2, 3}}, p.store.written(), "once 1 commits, 2 and 3 go in one write")
	})
}

func TestLeaderWhoseOwnWriteCommitsIsNotHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A follower already holds everything: the leader's copy is the
		// vote each commit waits for, so every write commits its batch
		// and the next one never waits.
		p := newPacedLog(t)
		p.commitment.match("F1", 10)
		for i := uint64(1); i <= 3; i++ {
			p.append(i)
			synctest.Wait()
		}
		require.Equal(t, [][]uint64{{1}, {2}, {3}}, p.store.written())
		require.Equal(t, uint64(3), p.commitment.getCommitIndex())
	})
}

func TestPacedLeaderWritesAfterPaceLimitWithoutACommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := holdingSecondWrite(t)
		time.Sleep(paceLimit - time.Millisecond)
		synctest.Wait()
		require.Equal(t, [][]uint64{{1}}, p.store.written(), "held until paceLimit")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Equal(t, [][]uint64{{1}, {2}}, p.store.written(), "written once paceLimit passed, with no follower")
	})
}

func TestPacedLeaderWriteGoesFirstWhenAnotherCommandArrives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := holdingSecondWrite(t)
		var seen [][]uint64
		res := p.log.await(&logCommand{kind: cmdExec, done: make(chan logResult, 1), exec: func(LogStore) error {
			seen = p.store.written()
			return nil
		}})
		require.NoError(t, res.err)
		require.Equal(t, [][]uint64{{1}, {2}}, seen,
			"a command queued behind a held leader write ends the wait and runs after it, in order")
	})
}

// TestPacedLeaderWritesAboutAsOftenAsItsFollowers runs a three-node cluster
// whose leader's disk writes in half a millisecond and whose followers'
// disks take three, under a steady stream of applies that do not wait for
// each other. Each follower writes what arrived during its previous write;
// a leader that wrote every batch of applies as it arrived would write
// about six times as often (over a hundred writes against their 28 here),
// and commit nothing sooner, since every commit waits for a follower.
// Paced, it writes about as often as they do, and with one follower cut
// off, when every commit needs its own copy, it still keeps up.
func TestPacedLeaderWritesAboutAsOftenAsItsFollowers(t *testing.T) {
	for _, cutOff := range []bool{false, true} {
		t.Run(fmt.Sprintf("cutOff=%v", cutOff), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { pacedLeaderUnderSteadyApplies(t, cutOff) })
		})
	}
}

func pacedLeaderUnderSteadyApplies(t *testing.T, cutOff bool) {
	const clients, perClient = 8, 80
	c, stores := newBatchStoreCluster(t, 3)
	defer c.close()
	leader := c.leader()
	connected := c.live()
	if cutOff {
		c.isolate(c.others(leader)[0])
		connected = []*testNode{leader, c.others(leader)[1]}
	}
	before := map[ServerID]int{}
	for id, s := range stores {
		before[id] = len(s.written())
		s.setDelay(3 * time.Millisecond)
	}
	stores[leader.id].setDelay(500 * time.Microsecond)

	futures := make([][]ApplyFuture, clients)
	var wg sync.WaitGroup
	for g := range clients {
		wg.Go(func() {
			for i := range perClient {
				futures[g] = append(futures[g], leader.raft.Apply([]byte(fmt.Sprintf("c%d-%d", g, i)), 5*time.Second))
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	for g, fs := range futures {
		for i, f := range fs {
			require.NoError(t, f.Error(), "apply c%d-%d", g, i)
		}
	}
	c.waitApplied(clients*perClient, connected...)
	c.requireSameFSMs(connected...)

	writes := map[ServerID]int{}
	most := 0
	for _, node := range connected {
		writes[node.id] = len(stores[node.id].written()) - before[node.id]
		if node != leader {
			most = max(most, writes[node.id])
		}
	}
	t.Logf("StoreLogs calls per connected node for %d entries: %v (leader %s)", clients*perClient, writes, leader.id)
	require.LessOrEqual(t, writes[leader.id], most+most/2,
		"the leader wrote far more often than its followers: it did not pace its writes")
	if cutOff {
		c.fullyConnect()
		c.waitApplied(clients * perClient)
		c.requireSameFSMs()
	}
}
