//go:build go1.25

package raft

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// appendFrom is an AppendEntries of node1 in term whose entries have the
// given terms, from index prev+1.
func appendFrom(term, prev, prevTerm uint64, terms ...uint64) *AppendEntriesRequest {
	req := &AppendEntriesRequest{RPCHeader: header("node1"), Term: term, PrevLogEntry: prev, PrevLogTerm: prevTerm}
	for i, t := range terms {
		req.Entries = append(req.Entries, &Log{Index: prev + 1 + uint64(i), Term: t, Type: LogCommand})
	}
	return req
}

// groupCall puts every request but the first on the node's RPC channel,
// as a pipelined stream leaves them, then hands the first to the node, and
// returns every answer in order.
func (rc *receiver) groupCall(reqs ...*AppendEntriesRequest) []*AppendEntriesResponse {
	rc.t.Helper()
	consumer := rc.r.trans.(*InmemTransport).consumerCh
	respChs := make([]chan RPCResponse, len(reqs))
	for i, req := range reqs {
		respChs[i] = make(chan RPCResponse, 1)
		if i > 0 {
			consumer <- RPC{Command: req, RespChan: respChs[i]}
		}
	}
	rc.r.processRPC(RPC{Command: reqs[0], RespChan: respChs[0]})
	out := make([]*AppendEntriesResponse, len(reqs))
	for i, ch := range respChs {
		select {
		case resp := <-ch:
			require.NoError(rc.t, resp.Error)
			out[i] = resp.Response.(*AppendEntriesResponse)
		default:
			rc.t.Fatalf("request %d was not answered", i)
		}
	}
	return out
}

func newCountingReceiver(t *testing.T, terms ...uint64) (*receiver, *batchStore) {
	var counting *batchStore
	rc := newReceiverOn(t, func(s *faultStore) raftStore {
		counting = &batchStore{raftStore: s}
		return counting
	}, terms...)
	return rc, counting
}

func TestFollowerWritesWaitingAppendEntriesWithOneStoreLogs(t *testing.T) {
	rc, store := newCountingReceiver(t, 1)
	resps := rc.groupCall(
		appendFrom(1, 2, 1, 1, 1),
		appendFrom(1, 4, 1, 1),
		appendFrom(1, 5, 1, 1, 1),
	)
	for i, resp := range resps {
		require.True(t, resp.Success, "request %d", i)
	}
	require.Equal(t, [][]uint64{{3, 4, 5, 6, 7}}, store.written(), "the three requests' entries in one write")
	require.Equal(t, []uint64{1, 1, 1, 1, 1, 1, 1}, rc.logTerms())
}

func TestFollowerGroupAnswersEachRequestByItsOwnRules(t *testing.T) {
	// Our log: 1:t1 2:t1 3:t1 4:t1, where the leader of term 2 has
	// 3:t2 on. The group: a request whose previous entry does not match
	// (refused), one that truncates from 3, one that continues it, and one
	// that commits through 4.
	rc, store := newCountingReceiver(t, 1, 1, 1)
	commit := appendFrom(2, 4, 2)
	commit.LeaderCommitIndex = 4
	resps := rc.groupCall(
		appendFrom(2, 3, 2, 2),
		appendFrom(2, 2, 1, 2),
		appendFrom(2, 3, 2, 2),
		commit,
	)
	require.False(t, resps[0].Success, "previous entry 3:t2 does not match 3:t1")
	require.True(t, resps[1].Success)
	require.True(t, resps[2].Success)
	require.True(t, resps[3].Success)
	require.Equal(t, []uint64{1, 1, 2, 2}, rc.logTerms())
	require.Equal(t, [][]uint64{{3, 4}}, store.written())
	require.Equal(t, uint64(4), rc.r.getCommitIndex())
	for i, resp := range resps {
		require.Equal(t, uint64(4), resp.LastLog, "request %d", i)
	}
}

func TestFollowerGroupTruncatingAfterAppendsWritesInOrder(t *testing.T) {
	// Our log: 1:t1 2:t1 3:t1 4:t1 5:t1. The first request adds 6:t2;
	// the second conflicts at 5. No correct leader sends this pair, but
	// whatever the requests, a truncation must reach the store after the
	// writes gathered before it, never mixed into them.
	rc, store := newCountingReceiver(t, 1, 1, 1, 1)
	resps := rc.groupCall(
		appendFrom(2, 5, 1, 2),
		appendFrom(2, 4, 1, 2),
	)
	require.True(t, resps[0].Success)
	require.True(t, resps[1].Success)
	require.Equal(t, []uint64{1, 1, 1, 1, 2}, rc.logTerms())
	require.Equal(t, [][]uint64{{6}, {5}}, store.written(), "a truncation waits for the writes gathered before it")
}

func TestFollowerGroupAcknowledgesNothingWhenTheWriteFails(t *testing.T) {
	rc, _ := newCountingReceiver(t, 1)
	rc.store.failOn("StoreLogs", errors.New("disk full"))
	commit := appendFrom(1, 4, 1)
	commit.LeaderCommitIndex = 4
	resps := rc.groupCall(appendFrom(1, 2, 1, 1), appendFrom(1, 3, 1, 1), commit)
	for i, resp := range resps {
		require.False(t, resp.Success, "request %d was acknowledged without its entries on disk", i)
		require.Equal(t, uint64(2), resp.LastLog)
	}
	require.Equal(t, uint64(0), rc.r.getCommitIndex())
	index, _ := rc.r.getLastLog()
	require.Equal(t, uint64(2), index)
}
