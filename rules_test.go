//go:build go1.25

package raft

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Tests of the RPC receiver rules, one per rule, on a node that loaded its
// stores but runs no goroutine: each test hands crafted requests to
// processRPC and checks the answer and the stores. No timing is involved.

// receiver is a node of the configuration {node0 (itself), node1, node2;
// node3 a nonvoter} whose stores may be made to fail.
type receiver struct {
	t     *testing.T
	r     *Raft
	store *faultStore
	trans *InmemTransport
}

// newReceiver bootstraps node0 and appends entries of the given terms
// after the bootstrap entry (index 1, term 1), then loads the node.
func newReceiver(t *testing.T, terms ...uint64) *receiver {
	t.Helper()
	return newReceiverOn(t, nil, terms...)
}

// newReceiverOn is newReceiver on a store that wrap, if not nil, builds
// around the faultStore.
func newReceiverOn(t *testing.T, wrap func(*faultStore) raftStore, terms ...uint64) *receiver {
	t.Helper()
	store := newFaultStore(NewInmemStore())
	var runStore raftStore = store
	if wrap != nil {
		runStore = wrap(store)
	}
	snaps := NewInmemSnapshotStore()
	_, trans := NewInmemTransport("addr0")
	conf := testConfig("node0")
	conf.skipStartup = true
	configuration := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "node0", Address: "addr0"},
		{Suffrage: Voter, ID: "node1", Address: "addr1"},
		{Suffrage: Voter, ID: "node2", Address: "addr2"},
		{Suffrage: Nonvoter, ID: "node3", Address: "addr3"},
	}}
	require.NoError(t, BootstrapCluster(conf, store, store, snaps, trans, configuration))
	for i, term := range terms {
		require.NoError(t, store.StoreLog(&Log{Index: uint64(i) + 2, Term: term, Type: LogCommand, Data: []byte{byte(i)}}))
	}
	if n := len(terms); n > 0 {
		require.NoError(t, store.SetUint64(keyCurrentTerm, terms[n-1]))
	}
	r, err := NewRaft(conf, &testFSM{}, runStore, runStore, snaps, trans)
	require.NoError(t, err)
	// No goroutine runs but the log's writer, which every write goes
	// through.
	r.goFunc(r.log.writeLoop)
	t.Cleanup(func() {
		r.Shutdown()
		r.goroutines.Wait()
	})
	return &receiver{t: t, r: r, store: store, trans: trans}
}

// call hands cmd to the node and returns its answer.
func (rc *receiver) call(cmd interface{}) RPCResponse {
	rc.t.Helper()
	respCh := make(chan RPCResponse, 1)
	rc.r.processRPC(RPC{Command: cmd, RespChan: respCh})
	select {
	case resp := <-respCh:
		return resp
	default:
		rc.t.Fatalf("no answer to %T", cmd)
		return RPCResponse{}
	}
}

func header(id string) RPCHeader {
	return RPCHeader{ProtocolVersion: ProtocolVersionMax, ID: []byte(id), Addr: []byte("addr" + id[len(id)-1:])}
}

func (rc *receiver) vote(req *RequestVoteRequest) *RequestVoteResponse {
	rc.t.Helper()
	resp := rc.call(req)
	require.NoError(rc.t, resp.Error)
	return resp.Response.(*RequestVoteResponse)
}

func (rc *receiver) append(req *AppendEntriesRequest) *AppendEntriesResponse {
	rc.t.Helper()
	resp := rc.call(req)
	require.NoError(rc.t, resp.Error)
	return resp.Response.(*AppendEntriesResponse)
}

// logTerms returns the term of every entry in the store, from index 1.
func (rc *receiver) logTerms() []uint64 {
	rc.t.Helper()
	last, err := rc.store.LastIndex()
	require.NoError(rc.t, err)
	terms := make([]uint64, 0, last)
	for i := uint64(1); i <= last; i++ {
		var l Log
		require.NoError(rc.t, rc.store.GetLog(i, &l))
		terms = append(terms, l.Term)
	}
	return terms
}

func voteFrom(id string, term, lastIndex, lastTerm uint64) *RequestVoteRequest {
	h := header(id)
	return &RequestVoteRequest{RPCHeader: h, Term: term, Candidate: h.Addr, LastLogIndex: lastIndex, LastLogTerm: lastTerm}
}

func TestVoteIsNotGrantedUnlessTermAndVoteAreDurable(t *testing.T) {
	for _, method := range []string{"SetUint64", "Set"} {
		t.Run(method, func(t *testing.T) {
			rc := newReceiver(t, 1)
			require.True(t, rc.vote(voteFrom("node2", 2, 2, 1)).Granted, "node2's vote in term 2")

			rc.store.failOn(method, errors.New("disk full"))
			resp := rc.vote(voteFrom("node1", 3, 2, 1))
			require.False(t, resp.Granted, "a vote was granted although the stable store refused to write %s", method)
			rc.store.failOn(method, nil)

			// Whatever half of the vote reached the disk, node2 (voted for in
			// term 2) must not get a term-3 vote without the log check.
			require.False(t, rc.vote(voteFrom("node2", 3, 1, 1)).Granted,
				"a stale-log candidate got a vote from a half-written vote record")
			// With nothing written (SetUint64 failed) node1 may still get the
			// term-3 vote. A half record (Set failed) binds term 3 to node2,
			// so node1 is refused: safe, and it costs one term at most.
			require.Equal(t, method == "SetUint64", rc.vote(voteFrom("node1", 3, 2, 1)).Granted,
				"vote for node1 in term 3 after the failed %s", method)
			require.True(t, rc.vote(voteFrom("node1", 4, 2, 1)).Granted, "the next term is free")
		})
	}
}

func TestVoterGrantsOneVotePerTerm(t *testing.T) {
	rc := newReceiver(t, 1)
	require.True(t, rc.vote(voteFrom("node1", 2, 2, 1)).Granted, "first candidate of term 2")
	require.True(t, rc.vote(voteFrom("node1", 2, 2, 1)).Granted, "the same candidate asking again")
	require.False(t, rc.vote(voteFrom("node2", 2, 5, 1)).Granted, "a second candidate in term 2")
	require.True(t, rc.vote(voteFrom("node2", 3, 2, 1)).Granted, "a new term frees the vote")
}

func TestVoterRefusesCandidateWithStaleLog(t *testing.T) {
	// Our log: index 1 term 1, index 2 term 1, index 3 term 2.
	cases := []struct {
		name              string
		lastIndex, lastTr uint64
		granted           bool
	}{
		{"older last term", 10, 1, false},
		{"same term, shorter", 2, 2, false},
		{"same term, same length", 3, 2, true},
		{"same term, longer", 4, 2, true},
		{"newer last term, shorter", 1, 3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, 1, 2)
			resp := rc.vote(voteFrom("node1", 5, tc.lastIndex, tc.lastTr))
			require.Equal(t, tc.granted, resp.Granted, "§5.4.1 up-to-date check")
			require.Equal(t, uint64(5), rc.r.CurrentTerm(), "a newer term is adopted even when the vote is refused")
		})
	}
}

func TestVoterWithLiveLeaderRefusesVotesUnlessLeaderAskedForTransfer(t *testing.T) {
	rc := newReceiver(t, 1)
	// node2 leads term 1.
	require.True(t, rc.append(&AppendEntriesRequest{RPCHeader: header("node2"), Term: 1}).Success)
	require.False(t, rc.vote(voteFrom("node1", 2, 2, 1)).Granted, "a node that knows a live leader keeps it")
	require.Equal(t, uint64(1), rc.r.CurrentTerm(), "the refused candidate's term is not adopted")

	transfer := voteFrom("node1", 2, 2, 1)
	transfer.LeadershipTransfer = true
	require.True(t, rc.vote(transfer).Granted, "an election asked for by the leader is allowed")
}

func TestVoterRefusesStrangersAndNonvoters(t *testing.T) {
	rc := newReceiver(t, 1)
	require.False(t, rc.vote(voteFrom("node9", 2, 2, 1)).Granted, "a server outside the configuration")
	require.Equal(t, uint64(1), rc.r.CurrentTerm(), "a stranger's term is not adopted")
	require.False(t, rc.vote(voteFrom("node3", 2, 2, 1)).Granted, "a nonvoter")
	require.Equal(t, uint64(2), rc.r.CurrentTerm(), "a nonvoter's newer term is adopted before it is refused")
	require.True(t, rc.vote(voteFrom("node1", 2, 2, 1)).Granted, "the vote of term 2 is still free")
}

// preVote hands a RequestPreVote to the node and returns the answer.
func (rc *receiver) preVote(id string, term, lastIndex, lastTerm uint64) *RequestPreVoteResponse {
	rc.t.Helper()
	resp := rc.call(&RequestPreVoteRequest{RPCHeader: header(id), Term: term, LastLogIndex: lastIndex, LastLogTerm: lastTerm})
	require.NoError(rc.t, resp.Error)
	return resp.Response.(*RequestPreVoteResponse)
}

// requireUnchanged checks that the node is still a follower of term with
// no vote recorded beyond votedTerm.
func (rc *receiver) requireUnchanged(term, votedTerm uint64) {
	rc.t.Helper()
	require.Equal(rc.t, term, rc.r.CurrentTerm(), "current term")
	stored, err := getUint64(rc.store, keyCurrentTerm)
	require.NoError(rc.t, err)
	require.Equal(rc.t, term, stored, "durable term")
	lastVoteTerm, err := getUint64(rc.store, keyLastVoteTerm)
	require.NoError(rc.t, err)
	require.Equal(rc.t, votedTerm, lastVoteTerm, "vote record")
	require.Equal(rc.t, Follower, rc.r.State())
}

func TestPreVoteRequestChangesNothing(t *testing.T) {
	rc := newReceiver(t, 1)
	require.True(t, rc.preVote("node1", 7, 2, 1).Granted)
	rc.requireUnchanged(1, 0)
}

// §9.6: a prevote is granted only where the real vote would be, but for
// the vote already given in the term, which a prevote does not consult.
// Each case asks a prevote, then (on a fresh node) the real vote, with the
// same request; a refused prevote changes nothing either.
func TestPreVoteIsRefusedWhereTheVoteWouldBe(t *testing.T) {
	cases := []struct {
		name string
		// log holds the terms of the node's entries after the bootstrap
		// entry; the node's term is the last of them.
		log []uint64
		// setup prepares the node before the request.
		setup func(rc *receiver)
		// votedTerm is the vote record after setup.
		votedTerm uint64
		// from names the candidate; noID sends its address only, as a peer
		// too old to send IDs does.
		from                      string
		noID                      bool
		term, lastIndex, lastTerm uint64
		vote, prevote             bool
		termAfterVote             uint64
		termInResponse            uint64
	}{
		{name: "granted", log: []uint64{1}, from: "node1", term: 2, lastIndex: 2, lastTerm: 1,
			vote: true, prevote: true, termAfterVote: 2, termInResponse: 2},
		{name: "stranger", log: []uint64{1}, from: "node9", term: 2, lastIndex: 2, lastTerm: 1,
			termAfterVote: 1, termInResponse: 2},
		{name: "nonvoter", log: []uint64{1}, from: "node3", term: 2, lastIndex: 2, lastTerm: 1,
			termAfterVote: 2, termInResponse: 2},
		{name: "candidate without an ID: membership unknown", log: []uint64{1}, from: "node9", noID: true, term: 2, lastIndex: 2, lastTerm: 1,
			vote: true, prevote: true, termAfterVote: 2, termInResponse: 2},
		{name: "live leader", log: []uint64{1}, from: "node1", term: 2, lastIndex: 2, lastTerm: 1,
			setup: func(rc *receiver) {
				require.True(rc.t, rc.append(&AppendEntriesRequest{RPCHeader: header("node2"), Term: 1}).Success)
			},
			termAfterVote: 1, termInResponse: 2},
		{name: "stale term", log: []uint64{1, 3}, from: "node1", term: 2, lastIndex: 9, lastTerm: 9,
			termAfterVote: 3, termInResponse: 3},
		{name: "stale log, older last term", log: []uint64{1, 2}, from: "node1", term: 3, lastIndex: 5, lastTerm: 1,
			termAfterVote: 3, termInResponse: 3},
		{name: "stale log, shorter", log: []uint64{1}, from: "node1", term: 2, lastIndex: 1, lastTerm: 1,
			termAfterVote: 2, termInResponse: 2},
		{name: "voted for another in the term", log: []uint64{1}, from: "node1", term: 2, lastIndex: 2, lastTerm: 1,
			setup: func(rc *receiver) {
				require.True(rc.t, rc.vote(voteFrom("node2", 2, 2, 1)).Granted)
			},
			votedTerm: 2, prevote: true, termAfterVote: 2, termInResponse: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.log...)
			if tc.setup != nil {
				tc.setup(rc)
			}
			term := rc.r.CurrentTerm()
			preReq := &RequestPreVoteRequest{RPCHeader: header(tc.from), Term: tc.term, LastLogIndex: tc.lastIndex, LastLogTerm: tc.lastTerm}
			voteReq := voteFrom(tc.from, tc.term, tc.lastIndex, tc.lastTerm)
			if tc.noID {
				preReq.ID, voteReq.ID = nil, nil
			}
			resp := rc.call(preReq)
			require.NoError(t, resp.Error)
			pre := resp.Response.(*RequestPreVoteResponse)
			require.Equal(t, tc.prevote, pre.Granted, "prevote")
			require.Equal(t, tc.termInResponse, pre.Term, "prevote response term")
			rc.requireUnchanged(term, tc.votedTerm)

			rc = newReceiver(t, tc.log...)
			if tc.setup != nil {
				tc.setup(rc)
			}
			vote := rc.vote(voteReq)
			require.Equal(t, tc.vote, vote.Granted, "vote")
			require.Equal(t, tc.termInResponse, vote.Term, "vote response term")
			require.Equal(t, tc.termAfterVote, rc.r.CurrentTerm(), "term after the vote")
		})
	}
}

func TestFollowerDoesNotAcknowledgeEntriesItFailedToStore(t *testing.T) {
	rc := newReceiver(t, 1)
	rc.store.failOn("StoreLogs", errors.New("disk full"))
	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 1, PrevLogEntry: 2, PrevLogTerm: 1,
		Entries: []*Log{{Index: 3, Term: 1}, {Index: 4, Term: 1}}, LeaderCommitIndex: 4,
	})
	require.False(t, resp.Success, "entries that are not durable must not be acknowledged")
	require.Equal(t, uint64(2), resp.LastLog)
	require.Equal(t, uint64(0), rc.r.CommitIndex(), "nothing the node does not hold may commit")
}

func TestFollowerTruncatesConflictingSuffix(t *testing.T) {
	// Our log: 1:t1 2:t1 3:t2 4:t2; the leader of term 3 holds 1:t1 2:t1 3:t3.
	rc := newReceiver(t, 1, 2, 2)
	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 3, PrevLogEntry: 2, PrevLogTerm: 1,
		Entries: []*Log{{Index: 3, Term: 3}},
	})
	require.True(t, resp.Success)
	require.Equal(t, []uint64{1, 1, 3}, rc.logTerms(), "§5.3: the conflicting entry and all after it go")
	index, term := rc.r.getLastLog()
	require.Equal(t, [2]uint64{3, 3}, [2]uint64{index, term})
}

func TestFollowerRejectsEntriesWhosePredecessorDoesNotMatch(t *testing.T) {
	rc := newReceiver(t, 1, 2)
	for _, tc := range []struct{ prevIndex, prevTerm uint64 }{{3, 1}, {5, 2}} {
		resp := rc.append(&AppendEntriesRequest{
			RPCHeader: header("node1"), Term: 2, PrevLogEntry: tc.prevIndex, PrevLogTerm: tc.prevTerm,
			Entries: []*Log{{Index: tc.prevIndex + 1, Term: 2}},
		})
		require.False(t, resp.Success, "prev %d/%d", tc.prevIndex, tc.prevTerm)
		require.True(t, resp.NoRetryBackoff, "a mismatch is retried at once")
		require.Equal(t, uint64(3), resp.LastLog)
	}
	require.Equal(t, []uint64{1, 1, 2}, rc.logTerms(), "a rejected request changes nothing")
}

func TestFollowerCommitsOnlyEntriesTheRequestProved(t *testing.T) {
	// Our log ends with a stale suffix from term 2 (indexes 3..5). The
	// leader of term 3 shares only up to index 2 and says it has committed
	// up to 5 in its own log: those are different entries, so we may
	// commit only up to 2.
	rc := newReceiver(t, 1, 2, 2, 2)
	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 3, PrevLogEntry: 2, PrevLogTerm: 1, LeaderCommitIndex: 5,
	})
	require.True(t, resp.Success)
	require.Equal(t, uint64(2), rc.r.CommitIndex(), "the commit index may cover only entries the request proved equal to the leader's")
}

func TestRPCWithUnsupportedProtocolVersionIsRefused(t *testing.T) {
	for _, version := range []ProtocolVersion{0, 1, 4} {
		rc := newReceiver(t, 1)
		req := voteFrom("node1", 2, 2, 1)
		req.ProtocolVersion = version
		resp := rc.call(req)
		require.ErrorIs(t, resp.Error, ErrUnsupportedProtocol, "version %d", version)
		require.Equal(t, uint64(1), rc.r.CurrentTerm())
	}
	rc := newReceiver(t, 1)
	req := voteFrom("node1", 2, 2, 1)
	req.ProtocolVersion = 2
	require.NoError(t, rc.call(req).Error, "version 2 headers are accepted")
}

func TestServerWithoutConfigurationGrantsPreVotesAndVotes(t *testing.T) {
	// A server that was never bootstrapped waits for a bootstrapped peer
	// to elect itself with its vote (BootstrapCluster on one node only).
	store := NewInmemStore()
	_, trans := NewInmemTransport("addr1")
	conf := testConfig("node1")
	conf.skipStartup = true
	r, err := NewRaft(conf, &testFSM{}, store, store, NewInmemSnapshotStore(), trans)
	require.NoError(t, err)
	r.startedAt = r.startedAt.Add(-time.Hour) // past the lease quiet period

	h := header("node0")
	pre := &RequestPreVoteRequest{RPCHeader: h, Term: 2, LastLogIndex: 1, LastLogTerm: 1}
	respCh := make(chan RPCResponse, 1)
	r.processRPC(RPC{Command: pre, RespChan: respCh})
	require.True(t, (<-respCh).Response.(*RequestPreVoteResponse).Granted, "prevote from the bootstrapped node")
	require.True(t, (&receiver{t: t, r: r}).vote(voteFrom("node0", 2, 1, 1)).Granted, "vote from the bootstrapped node")
}

func TestFollowerRefusesAppendEntriesOfAnOlderTerm(t *testing.T) {
	// Our log: 1:t1 2:t1 3:t3, term 3. A deposed leader of term 2 sends an
	// entry that would replace ours at index 3.
	rc := newReceiver(t, 1, 3)
	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 2, PrevLogEntry: 2, PrevLogTerm: 1,
		Entries: []*Log{{Index: 3, Term: 2}}, LeaderCommitIndex: 3,
	})
	require.False(t, resp.Success, "§5.1: a request of an older term is refused")
	require.Equal(t, uint64(3), resp.Term, "the answer carries our newer term")
	require.Equal(t, []uint64{1, 1, 3}, rc.logTerms(), "a refused request changes nothing")
	require.Equal(t, uint64(0), rc.r.CommitIndex())
	_, leaderID := rc.r.LeaderWithID()
	require.Equal(t, ServerID(""), leaderID, "the stale sender is not taken for our leader")
}

func TestCandidateReceivingAppendEntriesOfItsTermBecomesFollower(t *testing.T) {
	rc := newReceiver(t, 1, 2)
	require.True(t, rc.r.setState(Candidate))
	resp := rc.append(&AppendEntriesRequest{RPCHeader: header("node1"), Term: 2, PrevLogEntry: 3, PrevLogTerm: 2})
	require.True(t, resp.Success)
	require.Equal(t, Follower, rc.r.State(), "§5.2: a leader of our term won; the candidate follows it")
	require.Equal(t, uint64(2), rc.r.CurrentTerm())
	_, leaderID := rc.r.LeaderWithID()
	require.Equal(t, ServerID("node1"), leaderID)
}

// peer answers the node's RPCs to id (one of node1, node2) with answer,
// on its own goroutine, until the test ends.
func (rc *receiver) peer(id string, answer func(cmd interface{}) interface{}) {
	rc.t.Helper()
	addr, trans := NewInmemTransport(ServerAddress("addr" + id[len(id)-1:]))
	rc.trans.Connect(addr, trans)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case rpc := <-trans.Consumer():
				rpc.Respond(answer(rpc.Command), nil)
			case <-done:
				return
			}
		}
	}()
	rc.t.Cleanup(func() {
		close(done)
		<-stopped
		_ = trans.Close()
	})
}

func TestCandidateSeeingANewerTermInAVoteAnswerBecomesFollower(t *testing.T) {
	// In virtual time, so that the election timer cannot fire before
	// the answers arrive however slow the machine.
	synctest.Test(t, func(t *testing.T) {
		rc := newReceiver(t, 1)
		for _, id := range []string{"node1", "node2"} {
			rc.peer(id, func(cmd interface{}) interface{} {
				return &RequestVoteResponse{RPCHeader: header(id), Term: 7, Granted: false}
			})
		}
		require.True(t, rc.r.setState(Candidate))
		rc.r.runElection(false)
		require.Equal(t, Follower, rc.r.State(), "§5.1: a newer term in a vote answer ends the candidacy")
		require.Equal(t, uint64(7), rc.r.CurrentTerm(), "the newer term is adopted")
		stored, err := getUint64(rc.store, keyCurrentTerm)
		require.NoError(t, err)
		require.Equal(t, uint64(7), stored, "and made durable")
	})
}

func TestCandidatesOwnVoteIsDurableBeforeItAsksForVotes(t *testing.T) {
	// In virtual time, so that the election timer cannot fire before
	// the answers arrive however slow the machine.
	synctest.Test(t, func(t *testing.T) {
		rc := newReceiver(t, 1)
		type record struct {
			term, voteTerm uint64
			voteCand       string
		}
		seen := make(chan record, 2)
		for _, id := range []string{"node1", "node2"} {
			rc.peer(id, func(cmd interface{}) interface{} {
				req := cmd.(*RequestVoteRequest)
				var rec record
				rec.term, _ = getUint64(rc.store, keyCurrentTerm)
				rec.voteTerm, _ = getUint64(rc.store, keyLastVoteTerm)
				cand, _ := rc.store.Get(keyLastVoteCand)
				rec.voteCand = string(cand)
				seen <- rec
				return &RequestVoteResponse{RPCHeader: header(id), Term: req.Term, Granted: true}
			})
		}
		require.True(t, rc.r.setState(Candidate))
		rc.r.runElection(false)
		require.Equal(t, Leader, rc.r.State(), "both peers granted")
		// A winner needs one grant only; the other request may be in flight.
		rec := <-seen
		require.Equal(t, record{term: 2, voteTerm: 2, voteCand: "addr0"}, rec,
			"when a RequestVote of term 2 leaves, term 2 and the vote for ourselves are on the stable store")
	})
}

func TestTimeoutNowIsObeyedOnlyFromTheCurrentLeader(t *testing.T) {
	timeoutNow := func(id string) *TimeoutNowRequest { return &TimeoutNowRequest{RPCHeader: header(id)} }

	rc := newReceiver(t, 1)
	require.Error(t, rc.call(timeoutNow("node1")).Error, "no leader known: refused")
	require.Equal(t, Follower, rc.r.State())

	require.True(t, rc.append(&AppendEntriesRequest{RPCHeader: header("node2"), Term: 1}).Success)
	require.Error(t, rc.call(timeoutNow("node1")).Error, "node2 leads; node1 may not start an election here")
	require.Equal(t, Follower, rc.r.State(), "a refused TimeoutNow starts no election")
	_, leaderID := rc.r.LeaderWithID()
	require.Equal(t, ServerID("node2"), leaderID, "the leader is kept")

	resp := rc.call(timeoutNow("node2"))
	require.NoError(t, resp.Error, "our leader's TimeoutNow")
	require.Equal(t, Candidate, rc.r.State(), "starts an election at once")
}

func TestFollowerFallsBackToTheCommittedConfigurationWhenTheLatestIsTruncated(t *testing.T) {
	rc := newReceiver(t, 1)
	latest0 := rc.r.getLatestConfiguration()
	committed := latest0.configuration.Clone()
	shrunk := committed.Clone()
	shrunk.Servers = shrunk.Servers[:3] // node3, the nonvoter, removed
	resp := rc.append(&AppendEntriesRequest{
		RPCHeader: header("node1"), Term: 2, PrevLogEntry: 2, PrevLogTerm: 1,
		Entries: []*Log{{Index: 3, Term: 2, Type: LogConfiguration, Data: EncodeConfiguration(shrunk)}},
	})
	require.True(t, resp.Success)
	require.Equal(t, shrunk, rc.r.getLatestConfiguration().configuration, "§4.1: an appended configuration takes effect at once")

	// The leader of term 3 never had it: index 3 goes, and with it the
	// configuration it made.
	resp = rc.append(&AppendEntriesRequest{
		RPCHeader: header("node2"), Term: 3, PrevLogEntry: 2, PrevLogTerm: 1,
		Entries: []*Log{{Index: 3, Term: 3, Type: LogCommand}},
	})
	require.True(t, resp.Success)
	require.Equal(t, []uint64{1, 1, 3}, rc.logTerms())
	latest := rc.r.getLatestConfiguration()
	require.Equal(t, committed, latest.configuration, "the truncated configuration no longer applies")
	require.Less(t, latest.index, uint64(3))
}
