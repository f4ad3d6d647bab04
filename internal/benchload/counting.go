package benchload

import (
	"sync/atomic"

	"github.com/quorumkit/raft"
)

// BatchCounts are the batching figures of a cluster, counted by wrappers
// around each node's log store and transport (never inside the library),
// so that every build is counted the same way.
type BatchCounts struct {
	// LeaderStores and LeaderEntries count the leader's non-empty
	// StoreLogs calls and the entries they carried; FollowerStores and
	// FollowerEntries the same summed over the followers. Both stores
	// (ours and raft-wal) make each StoreLogs durable with one fdatasync,
	// so a StoreLogs call is an fsync of the log.
	LeaderStores, LeaderEntries     uint64
	FollowerStores, FollowerEntries uint64
	// AppendRPCs counts AppendEntries requests that carried at least one
	// entry (heartbeats and probes are left out), pipelined or not, sent
	// by any node; SentEntries the entries they carried.
	AppendRPCs, SentEntries uint64
}

// Sub returns c - o, field by field: the counts of a window.
func (c BatchCounts) Sub(o BatchCounts) BatchCounts {
	return BatchCounts{
		LeaderStores:    c.LeaderStores - o.LeaderStores,
		LeaderEntries:   c.LeaderEntries - o.LeaderEntries,
		FollowerStores:  c.FollowerStores - o.FollowerStores,
		FollowerEntries: c.FollowerEntries - o.FollowerEntries,
		AppendRPCs:      c.AppendRPCs - o.AppendRPCs,
		SentEntries:     c.SentEntries - o.SentEntries,
	}
}

// BatchCounter is implemented by clusters that count their batches; Run
// reports the counts of the measured window.
type BatchCounter interface {
	// BatchCounts returns the counts since the cluster started, splitting
	// the stores by the node that leads at the time of the call.
	BatchCounts() BatchCounts
}

// NodeCounts are the batch counters of one node, updated by wrappers
// around its log store and transport. Each node has its own, so that nodes
// do not contend on one cache line.
type NodeCounts struct {
	stores, storedEntries atomic.Uint64
	appendRPCs, sent      atomic.Uint64
	_                     [32]byte
}

// CountStore records a successful StoreLogs call of entries entries (none
// for an empty call).
func (n *NodeCounts) CountStore(entries int) {
	if entries > 0 {
		n.stores.Add(1)
		n.storedEntries.Add(uint64(entries))
	}
}

// CountAppend records an AppendEntries request carrying entries entries
// (none for a heartbeat or probe).
func (n *NodeCounts) CountAppend(entries int) {
	if entries > 0 {
		n.appendRPCs.Add(1)
		n.sent.Add(uint64(entries))
	}
}

// SumCounts adds up per-node counters, the node at index leader counted as
// the leader (-1 when none is known).
func SumCounts(nodes []*NodeCounts, leader int) BatchCounts {
	var c BatchCounts
	for i, n := range nodes {
		stores, entries := n.stores.Load(), n.storedEntries.Load()
		if i == leader {
			c.LeaderStores += stores
			c.LeaderEntries += entries
		} else {
			c.FollowerStores += stores
			c.FollowerEntries += entries
		}
		c.AppendRPCs += n.appendRPCs.Load()
		c.SentEntries += n.sent.Load()
	}
	return c
}

// countingLogStore counts the StoreLogs batches of the store it wraps.
type countingLogStore struct {
	raft.LogStore
	counts *NodeCounts
}

func (s *countingLogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

func (s *countingLogStore) StoreLogs(logs []*raft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	if err == nil {
		s.counts.CountStore(len(logs))
	}
	return err
}

// monotonicCountingLogStore keeps the MonotonicLogStore promise of the
// store it wraps visible to Raft.
type monotonicCountingLogStore struct {
	countingLogStore
}

func (s *monotonicCountingLogStore) IsMonotonic() bool {
	return s.LogStore.(raft.MonotonicLogStore).IsMonotonic()
}

// countStores wraps store, keeping the optional interfaces Raft looks for.
func countStores(store raft.LogStore, counts *NodeCounts) raft.LogStore {
	if _, ok := store.(raft.CommitTrackingLogStore); ok {
		// Hiding it would change what Raft does; no store we bench
		// implements it, so leave such a store uncounted.
		return store
	}
	c := countingLogStore{LogStore: store, counts: counts}
	if _, ok := store.(raft.MonotonicLogStore); ok {
		return &monotonicCountingLogStore{c}
	}
	return &c
}

// countingTransport counts the AppendEntries requests sent through the
// transport it wraps, pipelined or not.
type countingTransport struct {
	raft.Transport
	counts *NodeCounts
}

func (t *countingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	t.counts.CountAppend(len(args.Entries))
	return t.Transport.AppendEntries(id, target, args, resp)
}

func (t *countingTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	c := countingPipeline{AppendPipeline: p, counts: t.counts}
	if _, ok := p.(answerHandler); ok {
		return &answerHandlingCountingPipeline{c}, nil
	}
	return &c, nil
}

// Close closes the wrapped transport, which Raft does on shutdown.
func (t *countingTransport) Close() error {
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// preVoteCountingTransport keeps prevote for transports that carry it.
type preVoteCountingTransport struct {
	countingTransport
}

func (t *preVoteCountingTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.Transport.(raft.WithPreVote).RequestPreVote(id, target, args, resp)
}

// countTransport wraps trans, keeping prevote where trans has it.
func countTransport(trans raft.Transport, counts *NodeCounts) raft.Transport {
	c := countingTransport{Transport: trans, counts: counts}
	if _, ok := trans.(raft.WithPreVote); ok {
		return &preVoteCountingTransport{c}
	}
	return &c
}

type countingPipeline struct {
	raft.AppendPipeline
	counts *NodeCounts
}

func (p *countingPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.counts.CountAppend(len(args.Entries))
	return p.AppendPipeline.AppendEntries(args, resp)
}

// answerHandler is the optional method of a pipeline to which Raft gives a
// function that handles each answer on the pipeline's own receiver, instead
// of reading Consumer (NetworkTransport's pipelines have it).
type answerHandler interface {
	HandleAnswers(handle func(raft.AppendFuture))
}

// answerHandlingCountingPipeline keeps that method, so that the library runs
// the same path under the benchmark as without the counting wrapper.
type answerHandlingCountingPipeline struct {
	countingPipeline
}

func (p *answerHandlingCountingPipeline) HandleAnswers(handle func(raft.AppendFuture)) {
	p.AppendPipeline.(answerHandler).HandleAnswers(handle)
}
