//go:build go1.25

package raft

import (
	"io"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// The strict doubles of testing_strict_test.go record each broken rule, and
// nothing when the rules are kept.

// blockingStore is an InmemStore whose StoreLogs waits for entered to be
// read and then for release to close.
type blockingStore struct {
	*InmemStore
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) StoreLogs(logs []*Log) error {
	s.entered <- struct{}{}
	<-s.release
	return s.InmemStore.StoreLogs(logs)
}

// blockingFSM is a testFSM whose Apply waits like blockingStore.StoreLogs.
type blockingFSM struct {
	testFSM
	entered chan struct{}
	release chan struct{}
}

func (f *blockingFSM) Apply(l *Log) interface{} {
	f.entered <- struct{}{}
	<-f.release
	return f.testFSM.Apply(l)
}

// requireViolations checks that cv recorded exactly one violation per
// fragment, each containing it, in order.
func requireViolations(t *testing.T, cv *contractViolations, fragments ...string) {
	t.Helper()
	got := cv.list()
	require.Len(t, got, len(fragments), "violations: %q", got)
	for i, fragment := range fragments {
		require.True(t, strings.Contains(got[i], fragment), "violation %d is %q, want one about %q", i, got[i], fragment)
	}
}

func TestStrictDoublesKeptRulesRecordNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cv := &contractViolations{}
		_, trans := NewInmemTransport("")
		_, peer := NewInmemTransport("")
		trans.Connect(peer.LocalAddr(), peer)
		defer peer.Close()
		fsm := &testFSM{}
		_, store, runTrans, runFSM := newStrictNode(cv, "n", NewInmemStore(), trans, fsm)

		require.NoError(t, store.StoreLogs([]*Log{{Index: 1, Term: 1}, {Index: 2, Term: 1}}))
		require.NoError(t, store.DeleteRange(2, 2))
		require.NoError(t, store.SetUint64([]byte("k"), 1))
		runFSM.Apply(&Log{Index: 1, Data: []byte("a")})
		_, err := runFSM.Snapshot()
		require.NoError(t, err)

		pipe, err := runTrans.AppendEntriesPipeline("p", peer.LocalAddr())
		require.NoError(t, err)
		require.NoError(t, pipe.Close())
		_, ok := runTrans.(WithPreVote)
		require.True(t, ok, "a strict double over a pre-vote transport offers pre-votes")
		require.NoError(t, runTrans.(WithClose).Close())
		require.Empty(t, cv.list())
	})
}

// With checkPipelineClosedOnce off, the pipeline records nothing.
func TestStrictPipelineRecordsSecondCloseAndUseAfterClose(t *testing.T) {
	want := []string{"AppendEntries after Close", "closed twice"}
	if !checkPipelineClosedOnce {
		want = nil
	}
	synctest.Test(t, func(t *testing.T) {
		cv := &contractViolations{}
		_, trans := NewInmemTransport("")
		_, peer := NewInmemTransport("")
		trans.Connect(peer.LocalAddr(), peer)
		defer trans.Close()
		defer peer.Close()
		_, _, runTrans, _ := newStrictNode(cv, "n", NewInmemStore(), trans, &testFSM{})

		pipe, err := runTrans.AppendEntriesPipeline("p", peer.LocalAddr())
		require.NoError(t, err)
		require.NoError(t, pipe.Close())
		_, err = pipe.AppendEntries(&AppendEntriesRequest{Term: 1}, new(AppendEntriesResponse))
		require.ErrorIs(t, err, ErrPipelineShutdown)
		require.NoError(t, pipe.Close())
		requireViolations(t, cv, want...)
	})
}

func TestStrictTransportRecordsCallsAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cv := &contractViolations{}
		_, trans := NewInmemTransport("")
		_, _, runTrans, _ := newStrictNode(cv, "n", NewInmemStore(), trans, &testFSM{})
		require.NoError(t, runTrans.(WithClose).Close())

		var resp RequestVoteResponse
		require.Error(t, runTrans.RequestVote("p", "nowhere", &RequestVoteRequest{Term: 1}, &resp))
		var preResp RequestPreVoteResponse
		require.Error(t, runTrans.(WithPreVote).RequestPreVote("p", "nowhere", &RequestPreVoteRequest{Term: 1}, &preResp))
		require.NoError(t, runTrans.(WithClose).Close())
		requireViolations(t, cv, "RequestVote called after Close", "RequestPreVote called after Close", "closed twice")
	})
}

// With checkLogWriterOverlap off, the store records nothing.
func TestStrictStoreRecordsOverlappingLogWrites(t *testing.T) {
	want := []string{"DeleteRange overlapped 1 other write"}
	if !checkLogWriterOverlap {
		want = nil
	}
	synctest.Test(t, func(t *testing.T) {
		cv := &contractViolations{}
		inner := &blockingStore{InmemStore: NewInmemStore(), entered: make(chan struct{}), release: make(chan struct{})}
		_, store, _, _ := newStrictNode(cv, "n", inner, nil, &testFSM{})

		done := make(chan error)
		go func() { done <- store.StoreLogs([]*Log{{Index: 1, Term: 1}}) }()
		<-inner.entered
		// Reads may overlap a write; another write may not.
		_, err := store.LastIndex()
		require.NoError(t, err)
		require.NoError(t, store.DeleteRange(5, 6))
		close(inner.release)
		require.NoError(t, <-done)
		requireViolations(t, cv, want...)
	})
}

func TestStrictFSMRecordsOverlappingCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cv := &contractViolations{}
		fsm := &blockingFSM{entered: make(chan struct{}), release: make(chan struct{})}
		_, _, _, runFSM := newStrictNode(cv, "n", NewInmemStore(), nil, fsm)

		done := make(chan struct{})
		go func() {
			defer close(done)
			runFSM.Apply(&Log{Index: 1, Data: []byte("a")})
		}()
		<-fsm.entered
		_, err := runFSM.Snapshot()
		require.NoError(t, err)
		require.NoError(t, runFSM.Restore(io.NopCloser(strings.NewReader(""))))
		close(fsm.release)
		<-done
		requireViolations(t, cv, "FSM Snapshot overlapped 1 other", "FSM Restore overlapped 1 other")
	})
}

func TestStrictDoublesRecordCallsAfterShutdownReturned(t *testing.T) {
	cv := &contractViolations{}
	sn, store, _, runFSM := newStrictNode(cv, "n", NewInmemStore(), nil, &testFSM{})
	sn.retire()
	_, err := store.GetUint64([]byte("k"))
	require.NoError(t, err)
	runFSM.Apply(&Log{Index: 1})
	requireViolations(t, cv, "store GetUint64 called after Shutdown returned", "FSM Apply called after Shutdown returned")
}
