//go:build go1.25

package raft

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/stretchr/testify/require"
)

// The pipeline tests run in a synctest bubble over in-memory pipes, so that
// "the sender is blocked" can be observed exactly with synctest.Wait and
// deadlines pass in virtual time.

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// pipeStreamLayer dials in-memory pipes whose far ends go to a fake
// follower per address; nothing ever connects to it.
type pipeStreamLayer struct {
	mu        sync.Mutex
	followers map[ServerAddress]*fakeFollower
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *pipeStreamLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	l.mu.Lock()
	follower := l.followers[address]
	l.mu.Unlock()
	if follower == nil {
		return nil, errors.New("no such follower")
	}
	client, server := net.Pipe()
	go follower.serve(server)
	return client, nil
}

func (l *pipeStreamLayer) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}

func (l *pipeStreamLayer) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeStreamLayer) Addr() net.Addr { return pipeAddr("leader") }

// fakeFollower reads AppendEntries requests as fast as they arrive and
// answers only when told to, with LastLog set to the request's Term.
type fakeFollower struct {
	mu       sync.Mutex
	received []*AppendEntriesRequest
	answer   chan struct{} // one token per answer to write
	// unsolicited makes it write one answer before reading any request.
	unsolicited bool
}

func (f *fakeFollower) serve(conn net.Conn) {
	defer conn.Close()
	r := newMsgReader(bufio.NewReader(conn), &codec.MsgpackHandle{}, DefaultMaxMessageSize)
	w := newMsgWriter(bufio.NewWriter(conn), newMsgpackHandle(false))
	if f.unsolicited && (w.writeResponse(nil, &AppendEntriesResponse{Success: true}) != nil || w.bw.Flush() != nil) {
		return
	}
	requests := make(chan *AppendEntriesRequest, 1024)
	go func() {
		defer close(requests)
		for {
			_, command, err := r.readRequest()
			if err != nil {
				return
			}
			req := command.(*AppendEntriesRequest)
			f.mu.Lock()
			f.received = append(f.received, req)
			f.mu.Unlock()
			requests <- req
		}
	}()
	for req := range requests {
		if _, ok := <-f.answer; !ok {
			return
		}
		if w.writeResponse(nil, &AppendEntriesResponse{Term: req.Term, LastLog: req.Term, Success: true}) != nil || w.bw.Flush() != nil {
			return
		}
	}
}

func (f *fakeFollower) receivedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.received)
}

// newPipeTransport returns a transport whose pipelines reach the given fake
// followers. It is closed at the end of the test.
func newPipeTransport(t *testing.T, maxInFlight int, followers map[ServerAddress]*fakeFollower) *NetworkTransport {
	stream := &pipeStreamLayer{followers: followers, closed: make(chan struct{})}
	trans := NewNetworkTransportWithConfig(&NetworkTransportConfig{
		Stream: stream, Logger: hclog.NewNullLogger(), MaxRPCsInFlight: maxInFlight, Timeout: time.Second,
	})
	t.Cleanup(func() {
		for _, f := range followers {
			close(f.answer)
		}
		trans.Close()
	})
	return trans
}

func newFakeFollower() *fakeFollower { return &fakeFollower{answer: make(chan struct{}, 1024)} }

// pipelineTo opens a pipeline with the given window to follower, the one
// fake follower of a new transport.
func pipelineTo(t *testing.T, window int, follower *fakeFollower) (*NetworkTransport, AppendPipeline) {
	t.Helper()
	trans := newPipeTransport(t, window, map[ServerAddress]*fakeFollower{"f": follower})
	p, err := trans.AppendEntriesPipeline("f", "f")
	require.NoError(t, err)
	return trans, p
}

// pipelineWithAnswers opens a pipeline, with a window of 8, to a fake
// follower that answers its first count requests as they come.
func pipelineWithAnswers(t *testing.T, count int) AppendPipeline {
	follower := newFakeFollower()
	for range count {
		follower.answer <- struct{}{}
	}
	_, p := pipelineTo(t, 8, follower)
	return p
}

// sendAll sends requests with terms 1..count on p, reporting each accepted
// term on the returned channel.
func sendAll(p AppendPipeline, count int) <-chan uint64 {
	accepted := make(chan uint64, count)
	go func() {
		for term := uint64(1); term <= uint64(count); term++ {
			if _, err := p.AppendEntries(&AppendEntriesRequest{Term: term}, &AppendEntriesResponse{}); err != nil {
				return
			}
			accepted <- term
		}
	}()
	return accepted
}

// TestNetPipelineBoundsWindow: with MaxRPCsInFlight m, at most m requests
// are unanswered; AppendEntries blocks until an answer frees a slot.
func TestNetPipelineBoundsWindow(t *testing.T) {
	for _, maxInFlight := range []int{2, 4, 16} {
		synctest.Test(t, func(t *testing.T) {
			follower := newFakeFollower()
			_, p := pipelineTo(t, maxInFlight, follower)
			accepted := sendAll(p, 100)

			synctest.Wait()
			require.Equal(t, maxInFlight, follower.receivedCount(), "requests on the wire with no answer")
			require.Len(t, accepted, maxInFlight-1, "AppendEntries calls returned; the next one waits for room")

			follower.answer <- struct{}{}
			future := <-p.Consumer()
			require.NoError(t, future.Error())
			require.Equal(t, uint64(1), future.Response().LastLog)
			synctest.Wait()
			require.Equal(t, maxInFlight+1, follower.receivedCount(), "one answer lets one more request out")
			require.Len(t, accepted, maxInFlight)
			require.NoError(t, p.Close())
		})
	}
}

// TestNetPipelineKeepsOrder: answers are matched to requests in order and
// the futures come out of Consumer in request order.
func TestNetPipelineKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 200
		p := pipelineWithAnswers(t, count)
		sendAll(p, count)
		for term := uint64(1); term <= count; term++ {
			future := <-p.Consumer()
			require.NoError(t, future.Error())
			require.Equal(t, term, future.Request().Term)
			require.Equal(t, term, future.Response().LastLog, "answer matched to its request")
			require.False(t, future.Start().IsZero())
		}
		require.NoError(t, p.Close())
	})
}

// TestNetPipelineSlowPeerDoesNotBlockOthers: a follower that never answers
// fills its own window only; the pipeline to another follower runs on.
func TestNetPipelineSlowPeerDoesNotBlockOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 100
		slow, fast := newFakeFollower(), newFakeFollower()
		for range count {
			fast.answer <- struct{}{}
		}
		trans := newPipeTransport(t, 4, map[ServerAddress]*fakeFollower{"slow": slow, "fast": fast})
		slowPipe, err := trans.AppendEntriesPipeline("slow", "slow")
		require.NoError(t, err)
		fastPipe, err := trans.AppendEntriesPipeline("fast", "fast")
		require.NoError(t, err)

		sendAll(slowPipe, count)
		sendAll(fastPipe, count)
		for term := uint64(1); term <= count; term++ {
			future := <-fastPipe.Consumer()
			require.NoError(t, future.Error())
			require.Equal(t, term, future.Response().LastLog)
		}
		synctest.Wait()
		require.Equal(t, 4, slow.receivedCount())
	})
}

// TestNetPipelineTimesOutSilentPeer: an unanswered request fails after
// Timeout, and the requests behind it fail too.
func TestNetPipelineTimesOutSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		follower := newFakeFollower()
		_, p := pipelineTo(t, 4, follower)
		sendAll(p, 3)
		start := time.Now()
		for range 3 {
			require.Error(t, (<-p.Consumer()).Error())
		}
		require.Equal(t, time.Second, time.Since(start), "failed at the read deadline")
		require.NoError(t, p.Close())
	})
}

// TestNetPipelineIdleConnectionNeverTimesOut: the read deadline runs only
// while a request is unanswered, from when it was sent into an idle
// pipeline or from the previous answer; an idle pipeline waits for the next
// request as long as it likes.
func TestNetPipelineIdleConnectionNeverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		follower := newFakeFollower()
		_, p := pipelineTo(t, 4, follower)
		for round := uint64(1); round <= 3; round++ {
			time.Sleep(10 * time.Second) // ten Timeouts with nothing unanswered
			for term := round * 10; term < round*10+3; term++ {
				_, err := p.AppendEntries(&AppendEntriesRequest{Term: term}, &AppendEntriesResponse{})
				require.NoError(t, err)
			}
			for term := round * 10; term < round*10+3; term++ {
				time.Sleep(900 * time.Millisecond) // each answer within Timeout of the one before
				follower.answer <- struct{}{}
				future := <-p.Consumer()
				require.NoError(t, future.Error(), "round %d, term %d", round, term)
				require.Equal(t, term, future.Response().LastLog)
			}
		}
		require.NoError(t, p.Close())
	})
}

// TestNetPipelineAnswerWithoutRequestEndsIt: an answer to nothing we sent
// breaks the stream's pairing of requests and answers; the pipeline fails
// rather than hand that answer to the next request.
func TestNetPipelineAnswerWithoutRequestEndsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		follower := newFakeFollower()
		follower.unsolicited = true
		follower.answer <- struct{}{}
		_, p := pipelineTo(t, 4, follower)
		synctest.Wait()
		future, err := p.AppendEntries(&AppendEntriesRequest{Term: 1}, &AppendEntriesResponse{})
		if err == nil {
			require.Error(t, future.Error(), "the unsolicited answer was taken for this request")
		}
		require.Zero(t, follower.receivedCount(), "nothing reached the follower over the broken connection")
		require.NoError(t, p.Close())
	})
}

// TestNetPipelineCloseFailsPendingRequests: Close resolves every future
// still in flight and later calls fail with ErrPipelineShutdown.
func TestNetPipelineCloseFailsPendingRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		follower := newFakeFollower()
		_, p := pipelineTo(t, 4, follower)
		futures := make([]AppendFuture, 3)
		var err error
		for i := range futures {
			futures[i], err = p.AppendEntries(&AppendEntriesRequest{Term: uint64(i + 1)}, &AppendEntriesResponse{})
			require.NoError(t, err)
		}
		require.NoError(t, p.Close())
		require.NoError(t, p.Close(), "Close twice")
		for _, future := range futures {
			require.Error(t, future.Error())
		}
		_, err = p.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.ErrorIs(t, err, ErrPipelineShutdown)
	})
}

// TestNetTransportCloseClosesPipelines: closing the transport ends its
// pipelines.
func TestNetTransportCloseClosesPipelines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		follower := newFakeFollower()
		trans, p := pipelineTo(t, 4, follower)
		future, err := p.AppendEntries(&AppendEntriesRequest{Term: 1}, &AppendEntriesResponse{})
		require.NoError(t, err)
		require.NoError(t, trans.Close())
		require.Error(t, future.Error())
		_, err = p.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.ErrorIs(t, err, ErrPipelineShutdown)
	})
}

func TestNetPipelineNeedsTwoInFlight(t *testing.T) {
	cases := []struct {
		maxInFlight int
		supported   bool
	}{
		{-1, false}, {1, false}, {0, true}, {2, true},
	}
	for _, tc := range cases {
		synctest.Test(t, func(t *testing.T) {
			trans := newPipeTransport(t, tc.maxInFlight, map[ServerAddress]*fakeFollower{"f": newFakeFollower()})
			p, err := trans.AppendEntriesPipeline("f", "f")
			if !tc.supported {
				require.ErrorIs(t, err, ErrPipelineReplicationNotSupported, "MaxRPCsInFlight %d", tc.maxInFlight)
				return
			}
			require.NoError(t, err, "MaxRPCsInFlight %d", tc.maxInFlight)
			require.NoError(t, p.Close())
		})
	}
}

// answerLog records what a pipeline's answer handler was given.
type answerLog struct {
	mu      sync.Mutex
	terms   []uint64
	errs    []error
	handled chan struct{} // a token per call
}

func newAnswerLog() *answerLog { return &answerLog{handled: make(chan struct{}, 1024)} }

func (a *answerLog) handle(future AppendFuture) {
	a.mu.Lock()
	a.terms = append(a.terms, future.Request().Term)
	a.errs = append(a.errs, future.Error())
	a.mu.Unlock()
	a.handled <- struct{}{}
}

// TestNetPipelineHandlerGetsEveryAnswerInOrder: once Raft has given the
// pipeline a handler, every answer goes to it, matched to its request and in
// request order, and none to Consumer.
func TestNetPipelineHandlerGetsEveryAnswerInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 200
		p := pipelineWithAnswers(t, count)
		h, ok := p.(answerHandlingPipeline)
		require.True(t, ok, "NetworkTransport's pipeline takes a handler")
		answers := newAnswerLog()
		h.HandleAnswers(answers.handle)
		sendAll(p, count)
		for range count {
			<-answers.handled
		}
		synctest.Wait()
		require.NoError(t, p.Close())
		want := make([]uint64, count)
		for i := range want {
			want[i] = uint64(i + 1)
		}
		require.Equal(t, want, answers.terms)
		for _, err := range answers.errs {
			require.NoError(t, err)
		}
		require.Empty(t, p.Consumer(), "nothing is handed over on Consumer")
	})
}

// TestNetPipelineHandlerGetsFailuresAndNothingAfterClose: when the peer
// stops answering, the handler gets each request behind the broken answer,
// failed, in order; once Close has returned it is never called again, even
// for requests still in flight.
func TestNetPipelineHandlerGetsFailuresAndNothingAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		follower := newFakeFollower()
		trans, p := pipelineTo(t, 4, follower)
		answers := newAnswerLog()
		p.(answerHandlingPipeline).HandleAnswers(answers.handle)
		sendAll(p, 3)
		for range 3 {
			<-answers.handled
		}
		require.Equal(t, []uint64{1, 2, 3}, answers.terms)
		for _, err := range answers.errs {
			require.Error(t, err, "timed out at the read deadline")
		}
		require.NoError(t, p.Close())

		// A second pipeline: requests still in flight at Close are failed
		// by Close, and the handler hears nothing of them.
		q, err := trans.AppendEntriesPipeline("f", "f")
		require.NoError(t, err)
		later := newAnswerLog()
		q.(answerHandlingPipeline).HandleAnswers(later.handle)
		futures := make([]AppendFuture, 3)
		for i := range futures {
			futures[i], err = q.AppendEntries(&AppendEntriesRequest{Term: uint64(10 + i)}, &AppendEntriesResponse{})
			require.NoError(t, err)
		}
		require.NoError(t, q.Close())
		for range 3 {
			follower.answer <- struct{}{}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for _, f := range futures {
			require.ErrorIs(t, f.Error(), ErrPipelineShutdown)
		}
		require.Empty(t, later.handled, "the handler was called after Close")
	})
}
