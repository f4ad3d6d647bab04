//go:build go1.25

package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Every test here runs in a synctest bubble: timeouts are measured exactly in
// virtual time, and the end of the bubble proves that no goroutine of the
// transport or its pipelines outlived Close.

const inmemTestTimeout = 500 * time.Millisecond

// newInmemPair returns two transports connected both ways, closed when the
// test ends.
func newInmemPair(t *testing.T) (*InmemTransport, *InmemTransport) {
	t.Helper()
	_, a := NewInmemTransport("")
	_, b := NewInmemTransport("")
	a.Connect(b.LocalAddr(), b)
	b.Connect(a.LocalAddr(), a)
	t.Cleanup(func() {
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
	})
	return a, b
}

// inmemSeen is one RPC as a responder received it, with the snapshot bytes
// it read for InstallSnapshot.
type inmemSeen struct {
	command interface{}
	data    []byte
}

// serveInmem answers every RPC that reaches trans with answer, until the
// test ends, and reports each RPC on the returned channel (if the test reads
// it). It reads the RPC's Reader to the end before answering, as a follower
// installing a snapshot does.
func serveInmem(t *testing.T, trans *InmemTransport, answer func(RPC) (interface{}, error)) <-chan inmemSeen {
	t.Helper()
	seen := make(chan inmemSeen, 64)
	stop := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case rpc := <-trans.Consumer():
				var data []byte
				if rpc.Reader != nil {
					data, _ = io.ReadAll(rpc.Reader)
				}
				rpc.Respond(answer(rpc))
				select {
				case seen <- inmemSeen{command: rpc.Command, data: data}:
				default: // nobody is looking
				}
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-exited
	})
	return seen
}

// inmemRPCCase describes one RPC type: a request, the answer a responder
// gives, and how to send it.
type inmemRPCCase struct {
	name    string
	request interface{}
	answer  interface{}
	// send makes the call from a to target and returns the filled response.
	send func(a *InmemTransport, target ServerAddress, data io.Reader) (interface{}, error)
	// data is streamed with the request (InstallSnapshot only).
	data []byte
	// timeoutFactor is how many times the transport's timeout the RPC waits.
	timeoutFactor time.Duration
}

func inmemRPCCases() []inmemRPCCase {
	header := RPCHeader{ProtocolVersion: 3, ID: []byte("id1"), Addr: []byte("addr1")}
	appendReq := &AppendEntriesRequest{RPCHeader: header, Term: 7, PrevLogEntry: 41, PrevLogTerm: 6,
		Entries: []*Log{{Index: 42, Term: 7, Data: []byte("x")}}, LeaderCommitIndex: 40}
	voteReq := &RequestVoteRequest{RPCHeader: header, Term: 8, LastLogIndex: 42, LastLogTerm: 7, LeadershipTransfer: true}
	preVoteReq := &RequestPreVoteRequest{RPCHeader: header, Term: 9, LastLogIndex: 42, LastLogTerm: 7}
	snapReq := &InstallSnapshotRequest{RPCHeader: header, SnapshotVersion: 1, Term: 7, LastLogIndex: 100,
		LastLogTerm: 7, Configuration: []byte("conf"), ConfigurationIndex: 3, Size: 5}
	timeoutReq := &TimeoutNowRequest{RPCHeader: header}

	return []inmemRPCCase{
		{
			name: "AppendEntries", request: appendReq, timeoutFactor: 1,
			answer: &AppendEntriesResponse{Term: 7, LastLog: 42, Success: true, NoRetryBackoff: true},
			send: func(a *InmemTransport, target ServerAddress, _ io.Reader) (interface{}, error) {
				var resp AppendEntriesResponse
				return &resp, a.AppendEntries("b", target, appendReq, &resp)
			},
		},
		{
			name: "RequestVote", request: voteReq, timeoutFactor: 1,
			answer: &RequestVoteResponse{Term: 8, Granted: true},
			send: func(a *InmemTransport, target ServerAddress, _ io.Reader) (interface{}, error) {
				var resp RequestVoteResponse
				return &resp, a.RequestVote("b", target, voteReq, &resp)
			},
		},
		{
			name: "RequestPreVote", request: preVoteReq, timeoutFactor: 1,
			answer: &RequestPreVoteResponse{Term: 9, Granted: true},
			send: func(a *InmemTransport, target ServerAddress, _ io.Reader) (interface{}, error) {
				var resp RequestPreVoteResponse
				return &resp, a.RequestPreVote("b", target, preVoteReq, &resp)
			},
		},
		{
			name: "InstallSnapshot", request: snapReq, timeoutFactor: 10, data: []byte("state"),
			answer: &InstallSnapshotResponse{Term: 7, Success: true},
			send: func(a *InmemTransport, target ServerAddress, data io.Reader) (interface{}, error) {
				var resp InstallSnapshotResponse
				return &resp, a.InstallSnapshot("b", target, snapReq, &resp, data)
			},
		},
		{
			name: "TimeoutNow", request: timeoutReq, timeoutFactor: 10,
			answer: &TimeoutNowResponse{RPCHeader: header},
			send: func(a *InmemTransport, target ServerAddress, _ io.Reader) (interface{}, error) {
				var resp TimeoutNowResponse
				return &resp, a.TimeoutNow("b", target, timeoutReq, &resp)
			},
		},
	}
}

func TestInmemTransportRoundTripsEveryRPC(t *testing.T) {
	for _, tc := range inmemRPCCases() {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)
				seen := serveInmem(t, b, func(RPC) (interface{}, error) { return tc.answer, nil })

				got, err := tc.send(a, b.LocalAddr(), bytes.NewReader(tc.data))
				require.NoError(t, err)
				require.Equal(t, tc.answer, got, "the caller's response must hold the responder's answer")

				rpc := <-seen
				require.Same(t, tc.request, rpc.command, "the request must be passed through as the same pointer")
				require.Equal(t, tc.data, rpc.data, "the snapshot bytes must reach the responder as RPC.Reader")
			})
		})
	}
}

func TestInmemTransportReturnsResponderError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		refused := errors.New("refused by test")
		serveInmem(t, b, func(RPC) (interface{}, error) { return nil, refused })

		for _, tc := range inmemRPCCases() {
			_, err := tc.send(a, b.LocalAddr(), bytes.NewReader(tc.data))
			require.ErrorIs(t, err, refused, tc.name)
		}
	})
}

func TestInmemTransportRejectsWrongResponseType(t *testing.T) {
	for _, answer := range []interface{}{nil, "text", (*AppendEntriesResponse)(nil), &RequestVoteResponse{}} {
		t.Run(fmt.Sprintf("%T", answer), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)
				serveInmem(t, b, func(RPC) (interface{}, error) { return answer, nil })

				var resp AppendEntriesResponse
				err := a.AppendEntries("b", b.LocalAddr(), &AppendEntriesRequest{}, &resp)
				require.ErrorContains(t, err, "answered *raft.AppendEntriesRequest with")
				require.Equal(t, AppendEntriesResponse{}, resp, "a bad answer must leave resp untouched")
			})
		})
	}
}

func TestInmemTransportCommandTimesOutWhenNobodyAnswers(t *testing.T) {
	for _, tc := range inmemRPCCases() {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)

				start := time.Now()
				_, err := tc.send(a, b.LocalAddr(), bytes.NewReader(tc.data))
				require.EqualError(t, err, "command timed out")
				require.Equal(t, tc.timeoutFactor*inmemTestTimeout, time.Since(start))
				require.Len(t, b.Consumer(), 1, "the request was delivered and left unanswered")
			})
		})
	}
}

func TestInmemTransportSendTimesOutWhenConsumerIsFull(t *testing.T) {
	for _, tc := range inmemRPCCases() {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)

				// Sixteen unanswered calls fill the consumer channel's buffer.
				results := make(chan error, inmemChannelBuffer)
				for range inmemChannelBuffer {
					go func() {
						_, err := tc.send(a, b.LocalAddr(), bytes.NewReader(tc.data))
						results <- err
					}()
				}
				synctest.Wait()
				require.Len(t, b.Consumer(), inmemChannelBuffer)

				start := time.Now()
				_, err := tc.send(a, b.LocalAddr(), bytes.NewReader(tc.data))
				require.EqualError(t, err, "send timed out")
				require.Equal(t, tc.timeoutFactor*inmemTestTimeout, time.Since(start))

				for range inmemChannelBuffer {
					require.EqualError(t, <-results, "command timed out")
				}
			})
		})
	}
}

func TestInmemTransportDisconnectAndReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		serveInmem(t, b, func(RPC) (interface{}, error) { return &RequestVoteResponse{Granted: true}, nil })
		vote := func() error {
			var resp RequestVoteResponse
			return a.RequestVote("b", b.LocalAddr(), &RequestVoteRequest{}, &resp)
		}
		unreachable := "failed to connect to peer: " + string(b.LocalAddr())

		require.NoError(t, vote())

		a.Disconnect(b.LocalAddr())
		require.EqualError(t, vote(), unreachable)
		_, err := a.AppendEntriesPipeline("b", b.LocalAddr())
		require.EqualError(t, err, unreachable)

		a.Connect(b.LocalAddr(), b)
		require.NoError(t, vote())

		a.DisconnectAll()
		require.EqualError(t, vote(), unreachable)

		a.Connect(b.LocalAddr(), b)
		require.NoError(t, vote())
	})
}

func TestInmemTransportUnknownPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newInmemPair(t)
		for _, tc := range inmemRPCCases() {
			start := time.Now()
			_, err := tc.send(a, "nowhere", bytes.NewReader(tc.data))
			require.EqualError(t, err, "failed to connect to peer: nowhere", tc.name)
			require.Zero(t, time.Since(start), "an unknown peer must fail at once")
		}
	})
}

// notInmem is a Transport of another kind; its methods are never called.
type notInmem struct{ Transport }

func TestInmemTransportConnectIgnoresOtherTransports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := newInmemPair(t)
		a.Connect("other", notInmem{})
		a.Connect("nil", nil)
		a.Connect("typed-nil", (*InmemTransport)(nil))

		for _, peer := range []ServerAddress{"other", "nil", "typed-nil"} {
			var resp RequestVoteResponse
			err := a.RequestVote("x", peer, &RequestVoteRequest{}, &resp)
			require.EqualError(t, err, "failed to connect to peer: "+string(peer))
		}
	})
}

func TestInmemTransportCallsAfterCloseFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		serveInmem(t, b, func(rpc RPC) (interface{}, error) { return &AppendEntriesResponse{Success: true}, nil })
		require.NoError(t, a.Close())
		require.NoError(t, a.Close(), "Close must be idempotent")

		for _, tc := range inmemRPCCases() {
			_, err := tc.send(a, b.LocalAddr(), bytes.NewReader(tc.data))
			require.ErrorIs(t, err, ErrTransportShutdown, tc.name)
		}
		_, err := a.AppendEntriesPipeline("b", b.LocalAddr())
		require.ErrorIs(t, err, ErrTransportShutdown)

		a.Connect(b.LocalAddr(), b)
		var resp AppendEntriesResponse
		require.ErrorIs(t, a.AppendEntries("b", b.LocalAddr(), &AppendEntriesRequest{}, &resp), ErrTransportShutdown,
			"Connect must not revive a closed transport")
	})
}

func TestInmemTransportCallsToClosedPeerFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		require.NoError(t, b.Close())

		var resp AppendEntriesResponse
		err := a.AppendEntries("b", b.LocalAddr(), &AppendEntriesRequest{}, &resp)
		require.EqualError(t, err, "failed to connect to peer: "+string(b.LocalAddr()))
		_, err = a.AppendEntriesPipeline("b", b.LocalAddr())
		require.EqualError(t, err, "failed to connect to peer: "+string(b.LocalAddr()))
	})
}

func TestInmemTransportCloseEndsCallsInFlight(t *testing.T) {
	for _, closeSide := range []string{"caller", "peer"} {
		t.Run(closeSide, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)
				result := make(chan error, 1)
				go func() {
					var resp AppendEntriesResponse
					result <- a.AppendEntries("b", b.LocalAddr(), &AppendEntriesRequest{}, &resp)
				}()
				synctest.Wait() // the request sits unanswered in b's consumer channel

				start := time.Now()
				if closeSide == "caller" {
					require.NoError(t, a.Close())
					require.ErrorIs(t, <-result, ErrTransportShutdown)
				} else {
					require.NoError(t, b.Close())
					require.EqualError(t, <-result, "failed to connect to peer: "+string(b.LocalAddr()))
				}
				require.Zero(t, time.Since(start), "Close must end the wait at once, not at the timeout")
			})
		})
	}
}

func TestInmemTransportAddressesAndPeers(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := make(map[ServerAddress]bool)
	for range 100 {
		addr := NewInmemAddr()
		require.Regexp(t, uuid, string(addr))
		require.False(t, seen[addr], "NewInmemAddr repeated %q", addr)
		seen[addr] = true
	}

	addr, trans := NewInmemTransport("")
	require.Regexp(t, uuid, string(addr))
	require.Equal(t, addr, trans.LocalAddr())

	addr, trans = NewInmemTransport("node-1")
	require.Equal(t, ServerAddress("node-1"), addr)
	require.Equal(t, addr, trans.LocalAddr())
	require.Equal(t, []byte("node-2"), trans.EncodePeer("id-2", "node-2"))
	require.Equal(t, ServerAddress("node-2"), trans.DecodePeer([]byte("node-2")))
	require.Equal(t, inmemChannelBuffer, cap(trans.Consumer()))
	trans.SetHeartbeatHandler(func(RPC) { t.Error("the heartbeat handler must never be called") })
	require.NoError(t, trans.Close())
}

func TestInmemTransportTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"custom", 2 * time.Second, 2 * time.Second},
		{"zero means default", 0, inmemTestTimeout},
		{"negative means default", -time.Second, inmemTestTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a := NewInmemTransportWithTimeout("", tc.timeout)
				_, b := NewInmemTransportWithTimeout("", tc.timeout)
				defer a.Close()
				defer b.Close()
				a.Connect(b.LocalAddr(), b)

				start := time.Now()
				var resp RequestVoteResponse
				err := a.RequestVote("b", b.LocalAddr(), &RequestVoteRequest{}, &resp)
				require.EqualError(t, err, "command timed out")
				require.Equal(t, tc.want, time.Since(start))
			})
		})
	}
}

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
