package main

import (
	hraft "github.com/hashicorp/raft"

	"github.com/quorumkit/raft/internal/benchload"
)

// The batch counters of benchload, around hashicorp/raft's store and
// transport types, so that theirs is counted as ours is.

type theirCountingLogStore struct {
	hraft.LogStore
	counts *benchload.NodeCounts
}

func (s *theirCountingLogStore) StoreLog(l *hraft.Log) error {
	return s.StoreLogs([]*hraft.Log{l})
}

func (s *theirCountingLogStore) StoreLogs(logs []*hraft.Log) error {
	err := s.LogStore.StoreLogs(logs)
	if err == nil {
		s.counts.CountStore(len(logs))
	}
	return err
}

// theirMonotonicCountingLogStore keeps the MonotonicLogStore promise of
// the store it wraps visible to hashicorp/raft.
type theirMonotonicCountingLogStore struct {
	theirCountingLogStore
}

func (s *theirMonotonicCountingLogStore) IsMonotonic() bool {
	return s.LogStore.(hraft.MonotonicLogStore).IsMonotonic()
}

func countTheirStore(store hraft.LogStore, counts *benchload.NodeCounts) hraft.LogStore {
	c := theirCountingLogStore{LogStore: store, counts: counts}
	if _, ok := store.(hraft.MonotonicLogStore); ok {
		return &theirMonotonicCountingLogStore{c}
	}
	return &c
}

type theirCountingTransport struct {
	hraft.Transport
	counts *benchload.NodeCounts
}

func (t *theirCountingTransport) AppendEntries(id hraft.ServerID, target hraft.ServerAddress, args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) error {
	t.counts.CountAppend(len(args.Entries))
	return t.Transport.AppendEntries(id, target, args, resp)
}

func (t *theirCountingTransport) AppendEntriesPipeline(id hraft.ServerID, target hraft.ServerAddress) (hraft.AppendPipeline, error) {
	p, err := t.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &theirCountingPipeline{AppendPipeline: p, counts: t.counts}, nil
}

// Close closes the wrapped transport, which hashicorp/raft does on
// shutdown.
func (t *theirCountingTransport) Close() error {
	if c, ok := t.Transport.(hraft.WithClose); ok {
		return c.Close()
	}
	return nil
}

type theirPreVoteCountingTransport struct {
	theirCountingTransport
}

func (t *theirPreVoteCountingTransport) RequestPreVote(id hraft.ServerID, target hraft.ServerAddress, args *hraft.RequestPreVoteRequest, resp *hraft.RequestPreVoteResponse) error {
	return t.Transport.(hraft.WithPreVote).RequestPreVote(id, target, args, resp)
}

func countTheirTransport(trans hraft.Transport, counts *benchload.NodeCounts) hraft.Transport {
	c := theirCountingTransport{Transport: trans, counts: counts}
	if _, ok := trans.(hraft.WithPreVote); ok {
		return &theirPreVoteCountingTransport{c}
	}
	return &c
}

type theirCountingPipeline struct {
	hraft.AppendPipeline
	counts *benchload.NodeCounts
}

func (p *theirCountingPipeline) AppendEntries(args *hraft.AppendEntriesRequest, resp *hraft.AppendEntriesResponse) (hraft.AppendFuture, error) {
	p.counts.CountAppend(len(args.Entries))
	return p.AppendPipeline.AppendEntries(args, resp)
}
