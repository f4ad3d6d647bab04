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
