//go:build go1.25

package raft

import (
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// Tests of the InmemTransport's heartbeat fast path and of its interceptor,
// the hook through which in-package tests inject link faults.

// inmemHeartbeat is an AppendEntries of the heartbeat shape (docs/WIRE.md §6).
func inmemHeartbeat() *AppendEntriesRequest {
	return &AppendEntriesRequest{RPCHeader: RPCHeader{ID: []byte("a"), Addr: []byte("addr-a")}, Term: 4}
}

// inmemSend is one way to send an AppendEntries: a plain RPC or through a
// pipeline.
type inmemSend struct {
	name string
	send func(t *testing.T, a, b *InmemTransport, req *AppendEntriesRequest) (*AppendEntriesResponse, error)
}

func inmemSends() []inmemSend {
	return []inmemSend{
		{"plain", func(t *testing.T, a, b *InmemTransport, req *AppendEntriesRequest) (*AppendEntriesResponse, error) {
			var resp AppendEntriesResponse
			return &resp, a.AppendEntries("b", b.LocalAddr(), req, &resp)
		}},
		{"pipelined", func(t *testing.T, a, b *InmemTransport, req *AppendEntriesRequest) (*AppendEntriesResponse, error) {
			pipe := openInmemPipeline(t, a, b)
			future, err := pipe.AppendEntries(req, new(AppendEntriesResponse))
			if err != nil {
				return nil, err
			}
			require.Same(t, future, <-pipe.Consumer())
			return future.Response(), future.Error()
		}},
	}
}

func TestInmemTransportHeartbeatsGoToTheHeartbeatHandler(t *testing.T) {
	for _, way := range inmemSends() {
		t.Run(way.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := newInmemPair(t)
				seen := serveInmem(t, b, func(RPC) (interface{}, error) {
					return &AppendEntriesResponse{Term: 4, LastLog: 1}, nil
				})
				var handled atomic.Int64
				b.SetHeartbeatHandler(func(rpc RPC) {
					handled.Add(1)
					rpc.Respond(&AppendEntriesResponse{Term: 4, LastLog: 9, Success: true}, nil)
				})

				resp, err := way.send(t, a, b, inmemHeartbeat())
				require.NoError(t, err)
				require.Equal(t, &AppendEntriesResponse{Term: 4, LastLog: 9, Success: true}, resp, "the handler answers a heartbeat")
				require.EqualValues(t, 1, handled.Load())
				synctest.Wait()
				require.Empty(t, seen, "a heartbeat must not reach Consumer while a handler is set")

				// Anything but a heartbeat goes to Consumer.
				notHeartbeat := inmemHeartbeat()
				notHeartbeat.PrevLogEntry = 1
				resp, err = way.send(t, a, b, notHeartbeat)
				require.NoError(t, err)
				require.Equal(t, uint64(1), resp.LastLog, "the consumer answers a request with a previous entry")
				require.Same(t, notHeartbeat, (<-seen).command)

				// A nil handler sends heartbeats to Consumer again.
				b.SetHeartbeatHandler(nil)
				heartbeat := inmemHeartbeat()
				_, err = way.send(t, a, b, heartbeat)
				require.NoError(t, err)
				require.Same(t, heartbeat, (<-seen).command)
				require.EqualValues(t, 1, handled.Load())
			})
		})
	}
}

// A handler busy elsewhere (the node's main loop) makes its sender time
// out, as over TCP, instead of blocking it.
func TestInmemTransportBusyHeartbeatHandlerTimesOutItsSender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := newInmemPair(t)
		release := make(chan struct{})
		b.SetHeartbeatHandler(func(rpc RPC) {
			<-release
			rpc.Respond(&AppendEntriesResponse{}, nil)
		})
		defer close(release)

		start := time.Now()
		var resp AppendEntriesResponse
		err := a.AppendEntries("b", b.LocalAddr(), inmemHeartbeat(), &resp)
		require.ErrorIs(t, err, errInmemCommandTimeout)
		require.Equal(t, inmemTestTimeout, time.Since(start))
	})
}

// Each verdict of the interceptor, on a plain and on a pipelined send.
func TestInmemInterceptorJudgesPlainAndPipelinedSendsAlike(t *testing.T) {
	errLost := errors.New("test: answer lost")
	cases := []struct {
		name    string
		verdict inmemVerdict
		// gated holds the send at a gate that opens a second later.
		gated     bool
		delivered bool
		wantErr   error
		wantResp  *AppendEntriesResponse
		wantTook  time.Duration
	}{
		{name: "deliver", delivered: true, wantResp: &AppendEntriesResponse{Term: 5, LastLog: 3, Success: true}},
		{name: "delay", verdict: inmemVerdict{delay: 70 * time.Millisecond}, delivered: true,
			wantResp: &AppendEntriesResponse{Term: 5, LastLog: 3, Success: true}, wantTook: 70 * time.Millisecond},
		{name: "gate", gated: true, delivered: true,
			wantResp: &AppendEntriesResponse{Term: 5, LastLog: 3, Success: true}, wantTook: time.Second},
		{name: "fail", verdict: inmemVerdict{fail: errDroppedByTest}, wantErr: errDroppedByTest},
		{name: "respond", verdict: inmemVerdict{respond: &AppendEntriesResponse{Term: 5, LastLog: 1}},
			wantResp: &AppendEntriesResponse{Term: 5, LastLog: 1}},
		{name: "rewrite answer", delivered: true, verdict: inmemVerdict{answered: func(resp interface{}, err error) error {
			resp.(*AppendEntriesResponse).Success = false
			return err
		}}, wantResp: &AppendEntriesResponse{Term: 5, LastLog: 3}},
		{name: "lose answer", delivered: true, verdict: inmemVerdict{answered: func(interface{}, error) error { return errLost }},
			wantErr: errLost},
	}
	for _, way := range inmemSends() {
		for _, tc := range cases {
			t.Run(way.name+"/"+tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					a, b := newInmemPair(t)
					seen := serveInmem(t, b, func(RPC) (interface{}, error) {
						return &AppendEntriesResponse{Term: 5, LastLog: 3, Success: true}, nil
					})
					req := &AppendEntriesRequest{Term: 5, PrevLogEntry: 2, Entries: []*Log{{Index: 3, Term: 5}}}
					verdict := tc.verdict
					if tc.gated {
						gate := make(chan struct{})
						verdict.gate = gate
						go func() {
							time.Sleep(time.Second)
							close(gate)
						}()
					}
					var judged atomic.Int64
					a.setInterceptor(func(from, to ServerAddress, got interface{}) inmemVerdict {
						judged.Add(1)
						require.Equal(t, a.LocalAddr(), from)
						require.Equal(t, b.LocalAddr(), to)
						require.Same(t, req, got)
						return verdict
					})

					start := time.Now()
					resp, err := way.send(t, a, b, req)
					require.Equal(t, tc.wantTook, time.Since(start))
					require.EqualValues(t, 1, judged.Load())
					if tc.wantErr != nil {
						require.ErrorIs(t, err, tc.wantErr)
					} else {
						require.NoError(t, err)
						require.Equal(t, tc.wantResp, resp)
					}
					synctest.Wait()
					if tc.delivered {
						require.Same(t, req, (<-seen).command)
					} else {
						require.Empty(t, seen, "the request must not reach the peer")
					}
				})
			})
		}
	}
}

// Waits at a gate end when the sending transport closes, and a pipelined
// one also when its pipeline closes.
func TestInmemInterceptorWaitsEndOnClose(t *testing.T) {
	hold := func(from, to ServerAddress, req interface{}) inmemVerdict {
		return inmemVerdict{gate: make(chan struct{})}
	}
	t.Run("transport", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := newInmemPair(t)
			a.setInterceptor(hold)
			errCh := make(chan error, 1)
			go func() {
				var resp RequestVoteResponse
				errCh <- a.RequestVote("b", b.LocalAddr(), &RequestVoteRequest{Term: 1}, &resp)
			}()
			synctest.Wait()
			require.NoError(t, a.Close())
			require.ErrorIs(t, <-errCh, ErrTransportShutdown)
		})
	})
	t.Run("pipeline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := newInmemPair(t)
			a.setInterceptor(hold)
			pipe := openInmemPipeline(t, a, b)
			errCh := make(chan error, 1)
			go func() {
				_, err := pipe.AppendEntries(&AppendEntriesRequest{Term: 1}, new(AppendEntriesResponse))
				errCh <- err
			}()
			synctest.Wait()
			require.NoError(t, pipe.Close())
			require.ErrorIs(t, <-errCh, ErrPipelineShutdown)
		})
	})
}
