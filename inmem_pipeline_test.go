//go:build go1.25

package raft

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Like inmem_transport_test.go, every test here runs in a synctest bubble, so
// the end of each test also proves that no pipeline goroutine outlived Close.

// openInmemPipeline opens a pipeline from a to b, closed when the test ends.
func openInmemPipeline(t *testing.T, a, b *InmemTransport) AppendPipeline {
	t.Helper()
	pipe, err := a.AppendEntriesPipeline("b", b.LocalAddr())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pipe.Close()) })
	return pipe
}

func TestInmemPipelineDeliversAnswersInRequestOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		serveInmem(t, b, func(rpc RPC) (interface{}, error) {
			req := rpc.Command.(*AppendEntriesRequest)
			return &AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry + 1, Success: true}, nil
		})
		pipe := openInmemPipeline(t, a, b)

		// More requests than the channels buffer, consumed concurrently.
		const requests = 5 * inmemChannelBuffer
		consumed := make(chan AppendFuture, requests)
		go func() {
			for range requests {
				consumed <- <-pipe.Consumer()
			}
		}()

		sent := make([]*AppendEntriesRequest, requests)
		for n := range requests {
			sent[n] = &AppendEntriesRequest{Term: 3, PrevLogEntry: uint64(n)}
			future, err := pipe.AppendEntries(sent[n], &AppendEntriesResponse{})
			require.NoError(t, err)
			require.Same(t, sent[n], future.Request())
			require.Equal(t, time.Now(), future.Start())
		}

		for n := range requests {
			future := <-consumed
			require.NoError(t, future.Error())
			require.Same(t, sent[n], future.Request(), "future %d is out of order", n)
			require.Equal(t, &AppendEntriesResponse{Term: 3, LastLog: uint64(n) + 1, Success: true}, future.Response())
		}
	})
}

func TestInmemPipelineOrdersAnswersGivenOutOfOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		pipe := openInmemPipeline(t, a, b)

		const requests = 3
		for n := range requests {
			_, err := pipe.AppendEntries(&AppendEntriesRequest{PrevLogEntry: uint64(n)}, &AppendEntriesResponse{})
			require.NoError(t, err)
		}
		// The peer answers the last request first.
		rpcs := make([]RPC, requests)
		for n := range rpcs {
			rpcs[n] = <-b.Consumer()
		}
		for n := requests - 1; n >= 0; n-- {
			req := rpcs[n].Command.(*AppendEntriesRequest)
			rpcs[n].Respond(&AppendEntriesResponse{LastLog: req.PrevLogEntry}, nil)
		}

		for n := range requests {
			future := <-pipe.Consumer()
			require.NoError(t, future.Error())
			require.Equal(t, uint64(n), future.Request().PrevLogEntry)
			require.Equal(t, uint64(n), future.Response().LastLog)
		}
	})
}

func TestInmemPipelineReportsResponderError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		refused := errors.New("refused by test")
		serveInmem(t, b, func(RPC) (interface{}, error) { return nil, refused })
		pipe := openInmemPipeline(t, a, b)

		_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.NoError(t, err)
		require.ErrorIs(t, (<-pipe.Consumer()).Error(), refused)
	})
}

func TestInmemPipelineCommandTimesOutWhenNobodyAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		pipe := openInmemPipeline(t, a, b)

		start := time.Now()
		_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.NoError(t, err)
		future := <-pipe.Consumer()
		require.EqualError(t, future.Error(), "command timed out")
		require.Equal(t, inmemTestTimeout, time.Since(start))
	})
}

func TestInmemPipelineSendTimesOutWhenConsumerIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		pipe := openInmemPipeline(t, a, b)

		for range inmemChannelBuffer {
			_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
			require.NoError(t, err)
		}
		start := time.Now()
		_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.EqualError(t, err, "send timed out")
		require.Equal(t, inmemTestTimeout, time.Since(start))
	})
}

func TestInmemPipelineBlocksWhileWindowIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		serveInmem(t, b, func(RPC) (interface{}, error) { return &AppendEntriesResponse{Success: true}, nil })
		pipe := openInmemPipeline(t, a, b)

		// Nobody reads Consumer: answered futures fill its buffer, one more
		// waits in the collector, and the window of in-flight requests fills.
		const window = 2*inmemChannelBuffer + 1
		for n := range window {
			_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
			require.NoError(t, err, "request %d fits in the window", n)
		}
		start := time.Now()
		_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.EqualError(t, err, "command enqueue timeout")
		require.Equal(t, inmemTestTimeout, time.Since(start))

		// Reading one answer makes room again.
		require.NoError(t, (<-pipe.Consumer()).Error())
		_, err = pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.NoError(t, err)
	})
}

func TestInmemPipelineCloseFailsRequestsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		pipe, err := a.AppendEntriesPipeline("b", b.LocalAddr())
		require.NoError(t, err)

		// Nobody answers: the requests stay in flight.
		var futures []AppendFuture
		for range 3 {
			future, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
			require.NoError(t, err)
			futures = append(futures, future)
		}
		synctest.Wait()

		start := time.Now()
		require.NoError(t, pipe.Close())
		require.NoError(t, pipe.Close(), "Close must be idempotent")
		for n, future := range futures {
			require.ErrorIs(t, future.Error(), ErrPipelineShutdown, "future %d", n)
		}
		require.Zero(t, time.Since(start), "Close must fail requests at once, not at the timeout")

		_, err = pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.ErrorIs(t, err, ErrPipelineShutdown)

		// The transport itself stays usable.
		serveInmem(t, b, func(RPC) (interface{}, error) { return &AppendEntriesResponse{Success: true}, nil })
		var resp AppendEntriesResponse
		require.NoError(t, a.AppendEntries("b", b.LocalAddr(), &AppendEntriesRequest{}, &resp))
	})
}

func TestInmemPipelineClosedByTransport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		close func(a, b *InmemTransport)
	}{
		{"Disconnect", func(a, b *InmemTransport) { a.Disconnect(b.LocalAddr()) }},
		{"DisconnectAll", func(a, _ *InmemTransport) { a.DisconnectAll() }},
		{"Close", func(a, _ *InmemTransport) { require.NoError(t, a.Close()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)
				pipe, err := a.AppendEntriesPipeline("b", b.LocalAddr())
				require.NoError(t, err)
				inFlight, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
				require.NoError(t, err)

				tc.close(a, b)
				require.ErrorIs(t, inFlight.Error(), ErrPipelineShutdown)
				_, err = pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
				require.ErrorIs(t, err, ErrPipelineShutdown)
				// The bubble ending proves the pipeline's goroutine exited.
			})
		})
	}
}

func TestInmemPipelineDisconnectLeavesOtherPeersPipelines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		_, c := NewInmemTransport("")
		defer c.Close()
		a.Connect(c.LocalAddr(), c)
		serveInmem(t, c, func(RPC) (interface{}, error) { return &AppendEntriesResponse{Success: true}, nil })

		toB := openInmemPipeline(t, a, b)
		toC, err := a.AppendEntriesPipeline("c", c.LocalAddr())
		require.NoError(t, err)
		defer toC.Close()

		a.Disconnect(b.LocalAddr())
		_, err = toB.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.ErrorIs(t, err, ErrPipelineShutdown)
		_, err = toC.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.NoError(t, err)
		require.NoError(t, (<-toC.Consumer()).Error())
	})
}

func TestInmemPipelineFailsWhenPeerCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		pipe := openInmemPipeline(t, a, b)
		_, err := pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.NoError(t, err)
		synctest.Wait()

		require.NoError(t, b.Close())
		unreachable := "failed to connect to peer: " + string(b.LocalAddr())
		require.EqualError(t, (<-pipe.Consumer()).Error(), unreachable)
		_, err = pipe.AppendEntries(&AppendEntriesRequest{}, &AppendEntriesResponse{})
		require.EqualError(t, err, unreachable)
	})
}
