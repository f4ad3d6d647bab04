package benchload

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
)

func TestCountingWrappersKeepTheOptionalInterfaces(t *testing.T) {
	store, err := wal.Open(t.TempDir(), wal.Options{Logger: QuietLogger("wal")})
	require.NoError(t, err)
	defer store.Close()
	counts := &NodeCounts{}
	wrapped := countStores(store, counts)
	m, ok := wrapped.(raft.MonotonicLogStore)
	require.True(t, ok, "a wrapped monotonic store must stay monotonic")
	require.True(t, m.IsMonotonic())
	_, ok = countStores(raft.NewInmemStore(), counts).(raft.MonotonicLogStore)
	require.False(t, ok, "a wrapped store must not claim what the store does not")

	_, inmem := raft.NewInmemTransport("")
	_, ok = countTransport(inmem, counts).(raft.WithPreVote)
	require.True(t, ok, "a wrapped transport must keep prevote")
	_, ok = countTransport(struct{ raft.Transport }{inmem}, counts).(raft.WithPreVote)
	require.False(t, ok)
}

func TestCountingStoreCountsDurableBatches(t *testing.T) {
	counts := &NodeCounts{}
	store := countStores(raft.NewInmemStore(), counts)
	require.NoError(t, store.StoreLogs([]*raft.Log{{Index: 1}, {Index: 2}, {Index: 3}}))
	require.NoError(t, store.StoreLog(&raft.Log{Index: 4}))
	require.NoError(t, store.StoreLogs(nil))
	require.Equal(t, uint64(2), counts.stores.Load())
	require.Equal(t, uint64(4), counts.storedEntries.Load())
}

func TestCountingPipelineCountsRequestsWithEntries(t *testing.T) {
	_, t1 := raft.NewInmemTransport("")
	addr2, t2 := raft.NewInmemTransport("")
	t1.Connect(addr2, t2)
	defer t1.Close()
	defer t2.Close()
	go func() { // answer every request
		for rpc := range t2.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		}
	}()
	counts := &NodeCounts{}
	trans := countTransport(t1, counts)
	pipeline, err := trans.AppendEntriesPipeline("node2", addr2)
	require.NoError(t, err)
	defer pipeline.Close()
	for _, n := range []int{3, 0, 5} { // 0: a heartbeat-like request, not counted
		future, err := pipeline.AppendEntries(&raft.AppendEntriesRequest{Entries: make([]*raft.Log, n)}, &raft.AppendEntriesResponse{})
		require.NoError(t, err)
		require.NoError(t, future.Error())
	}
	require.NoError(t, trans.AppendEntries("node2", addr2, &raft.AppendEntriesRequest{Entries: make([]*raft.Log, 2)}, &raft.AppendEntriesResponse{}))
	require.Equal(t, uint64(3), counts.appendRPCs.Load())
	require.Equal(t, uint64(10), counts.sent.Load())
}

func TestSumCountsSplitsLeaderAndFollowers(t *testing.T) {
	nodes := []*NodeCounts{{}, {}, {}}
	for i, n := range nodes {
		n.stores.Add(uint64(i + 1))
		n.storedEntries.Add(uint64(10 * (i + 1)))
		n.appendRPCs.Add(1)
		n.sent.Add(7)
	}
	got := SumCounts(nodes, 1)
	require.Equal(t, BatchCounts{LeaderStores: 2, LeaderEntries: 20, FollowerStores: 4, FollowerEntries: 40, AppendRPCs: 3, SentEntries: 21}, got)
	var r Result
	r.setBatching(got, 20)
	require.Equal(t, 10.0, r.EntriesPerFsync)
	require.Equal(t, 10.0, r.LeaderEntriesPerFsync)
	require.Equal(t, 7.0, r.EntriesPerRPC)
	require.Equal(t, 0.3, r.FsyncsPerOp)
	require.Equal(t, 0.15, r.RPCsPerOp)
}
