//go:build go1.25

package raft

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// These tests run over real sockets on 127.0.0.1, so they use real time.
// Every wait is bounded by testWait, which only limits how long a broken
// build hangs; no test relies on a sleep for ordering.
const testWait = 5 * time.Second

// logBuffer collects a transport's log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestNetTransport starts a TCP transport on a free loopback port, closed
// when the test ends. It returns the buffer its logs go to.
func newTestNetTransport(t *testing.T, config *NetworkTransportConfig) (*NetworkTransport, *logBuffer) {
	t.Helper()
	if config == nil {
		config = &NetworkTransportConfig{}
	}
	logs := &logBuffer{}
	if config.Logger == nil {
		config.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft-net", Output: logs, Level: hclog.Trace})
	}
	if config.Timeout == 0 {
		config.Timeout = testWait
	}
	trans, err := NewTCPTransportWithConfig("127.0.0.1:0", nil, config)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, trans.Close()) })
	return trans, logs
}

// answerRPCs serves trans's consumer until the test ends: each RPC is sent
// on the returned channel, then answered by respond.
func answerRPCs(t *testing.T, trans *NetworkTransport, respond func(rpc RPC)) <-chan RPC {
	t.Helper()
	seen := make(chan RPC, 64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-trans.Consumer():
				seen <- rpc
				respond(rpc)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); wg.Wait() })
	return seen
}

// receive waits up to testWait for a value on ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func testHeader(id string) RPCHeader {
	return RPCHeader{ProtocolVersion: 3, ID: []byte(id), Addr: []byte("127.0.0.1:7000")}
}

func testLogs() []*Log {
	return []*Log{
		{Index: 11, Term: 4, Type: LogCommand, Data: []byte("set x=1"), Extensions: []byte("ext"), AppendedAt: time.Unix(1700000000, 123456789).UTC()},
		{Index: 12, Term: 4, Type: LogNoop},
		{Index: 13, Term: 5, Type: LogConfiguration, Data: bytes.Repeat([]byte{0xab}, 70000), AppendedAt: time.Unix(1, 0).UTC()},
	}
}

// TestNetTransportRoundTripsEveryRPC sends each RPC type over loopback and
// checks that the server sees the request, and the client the response,
// with every field preserved.
func TestNetTransportRoundTripsEveryRPC(t *testing.T) {
	for _, newTimeFormat := range []bool{false, true} {
		server, _ := newTestNetTransport(t, &NetworkTransportConfig{MsgpackUseNewTimeFormat: newTimeFormat})
		client, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxPool: 2, MsgpackUseNewTimeFormat: newTimeFormat})
		answers := make(map[string]interface{})
		seen := answerRPCs(t, server, func(rpc RPC) {
			switch rpc.Command.(type) {
			case *AppendEntriesRequest:
				rpc.Respond(answers["AppendEntries"], nil)
			case *RequestVoteRequest:
				rpc.Respond(answers["RequestVote"], nil)
			case *RequestPreVoteRequest:
				rpc.Respond(answers["RequestPreVote"], nil)
			case *TimeoutNowRequest:
				rpc.Respond(answers["TimeoutNow"], nil)
			default:
				rpc.Respond(nil, errUnexpectedCommand)
			}
		})
		target := server.LocalAddr()

		cases := []struct {
			name string
			req  interface{}
			resp interface{}
			call func() (interface{}, error)
		}{
			{
				name: "AppendEntries",
				req: &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 5, Leader: []byte("127.0.0.1:7000"),
					PrevLogEntry: 10, PrevLogTerm: 4, Entries: testLogs(), LeaderCommitIndex: 9},
				resp: &AppendEntriesResponse{RPCHeader: testHeader("n2"), Term: 5, LastLog: 13, Success: true, NoRetryBackoff: true},
			},
			{
				name: "RequestVote",
				req: &RequestVoteRequest{RPCHeader: testHeader("n1"), Term: 300, Candidate: []byte("127.0.0.1:7000"),
					LastLogIndex: 1 << 40, LastLogTerm: 299, LeadershipTransfer: true},
				resp: &RequestVoteResponse{RPCHeader: testHeader("n2"), Term: 300, Peers: []byte("legacy"), Granted: true},
			},
			{
				name: "RequestPreVote",
				req:  &RequestPreVoteRequest{RPCHeader: testHeader("n1"), Term: 7, LastLogIndex: 70, LastLogTerm: 6},
				resp: &RequestPreVoteResponse{RPCHeader: testHeader("n2"), Term: 7, Granted: true},
			},
			{
				name: "TimeoutNow",
				req:  &TimeoutNowRequest{RPCHeader: testHeader("n1")},
				resp: &TimeoutNowResponse{RPCHeader: testHeader("n2")},
			},
		}
		for _, tc := range cases {
			answers[tc.name] = tc.resp
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var got interface{}
				var err error
				switch req := tc.req.(type) {
				case *AppendEntriesRequest:
					resp := &AppendEntriesResponse{}
					err, got = client.AppendEntries("n2", target, req, resp), resp
				case *RequestVoteRequest:
					resp := &RequestVoteResponse{}
					err, got = client.RequestVote("n2", target, req, resp), resp
				case *RequestPreVoteRequest:
					resp := &RequestPreVoteResponse{}
					err, got = client.RequestPreVote("n2", target, req, resp), resp
				case *TimeoutNowRequest:
					resp := &TimeoutNowResponse{}
					err, got = client.TimeoutNow("n2", target, req, resp), resp
				}
				require.NoError(t, err)
				require.Equal(t, tc.req, receive(t, seen, "request").Command, "request as the server decoded it")
				require.Equal(t, tc.resp, got, "response as the client decoded it")
			})
		}
	}
}

// TestNetTransportInstallSnapshotStreamsExactlySizeBytes checks the request,
// the raw bytes after it, and that the stream stays usable when the handler
// reads none of them.
func TestNetTransportInstallSnapshotStreamsExactlySizeBytes(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	client, _ := newTestNetTransport(t, nil)
	snapshot := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes, more than one buffer

	received := make(chan []byte, 2)
	seen := answerRPCs(t, server, func(rpc RPC) {
		req := rpc.Command.(*InstallSnapshotRequest)
		if req.Term == 1 {
			// A rejection reads nothing; the transport must skip the bytes.
			rpc.Respond(&InstallSnapshotResponse{Term: 9}, errors.New("snapshot rejected"))
			return
		}
		data, err := io.ReadAll(rpc.Reader)
		received <- data
		rpc.Respond(&InstallSnapshotResponse{Term: req.Term, Success: true}, err)
	})

	req := &InstallSnapshotRequest{RPCHeader: testHeader("n1"), SnapshotVersion: 1, Term: 9, Leader: []byte("127.0.0.1:7000"),
		LastLogIndex: 1000, LastLogTerm: 8, Peers: []byte("peers"), Configuration: []byte("config"), ConfigurationIndex: 900,
		Size: int64(len(snapshot))}
	resp := &InstallSnapshotResponse{}
	require.NoError(t, client.InstallSnapshot("n2", server.LocalAddr(), req, resp, bytes.NewReader(snapshot)))
	require.Equal(t, &InstallSnapshotResponse{Term: 9, Success: true}, resp)
	got := receive(t, seen, "request").Command.(*InstallSnapshotRequest)
	require.Equal(t, req, got)
	require.Equal(t, snapshot, receive(t, received, "snapshot data"))

	rejected := *req
	rejected.Term = 1
	resp = &InstallSnapshotResponse{}
	// data holds more than Size: only Size bytes may go on the wire.
	err := client.InstallSnapshot("n2", server.LocalAddr(), &rejected, resp, io.MultiReader(bytes.NewReader(snapshot), strings.NewReader("extra")))
	require.EqualError(t, err, "snapshot rejected")
	require.Equal(t, &InstallSnapshotResponse{Term: 9}, resp, "a response sent beside an error is kept")
	receive(t, seen, "rejected request")
}

func TestNetTransportInstallSnapshotFailsOnShortData(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	client, _ := newTestNetTransport(t, nil)
	answerRPCs(t, server, func(rpc RPC) {
		_, err := io.ReadAll(rpc.Reader)
		rpc.Respond(&InstallSnapshotResponse{}, err)
	})
	req := &InstallSnapshotRequest{RPCHeader: testHeader("n1"), Term: 2, Size: 100}
	err := client.InstallSnapshot("n2", server.LocalAddr(), req, &InstallSnapshotResponse{}, strings.NewReader("only 18 bytes here"))
	require.ErrorIs(t, err, errShortRead)

	req.Size = -1
	err = client.InstallSnapshot("n2", server.LocalAddr(), req, &InstallSnapshotResponse{}, strings.NewReader(""))
	require.ErrorContains(t, err, "negative size")
}

// TestNetTransportKeepsResponseBesideError: raft answers some requests with
// both a filled response and an error; the client gets both, and the
// connection, being in step, goes back to the pool.
func TestNetTransportKeepsResponseBesideError(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	client, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxPool: 1})
	answerRPCs(t, server, func(rpc RPC) {
		rpc.Respond(&AppendEntriesResponse{Term: 8, LastLog: 3}, ErrUnsupportedProtocol)
	})
	resp := &AppendEntriesResponse{Success: true}
	err := client.AppendEntries("n2", server.LocalAddr(), &AppendEntriesRequest{Term: 8}, resp)
	require.EqualError(t, err, ErrUnsupportedProtocol.Error())
	require.Equal(t, &AppendEntriesResponse{Term: 8, LastLog: 3}, resp)
	require.Len(t, client.pool[server.LocalAddr()], 1, "connection in step after an error answer is pooled")
}

// TestNetTransportPoolsConnectionsLIFO checks MaxPool: connections are
// reused most recent first, and no more than MaxPool are kept.
func TestNetTransportPoolsConnectionsLIFO(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	client, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxPool: 2})
	answerRPCs(t, server, func(rpc RPC) { rpc.Respond(&RequestVoteResponse{}, nil) })
	target := server.LocalAddr()

	conns := make([]*netConn, 3)
	for i := range conns {
		c, err := client.getConn("n2", target)
		require.NoError(t, err)
		conns[i] = c
	}
	for _, c := range conns {
		client.returnConn(c)
	}
	require.Equal(t, []*netConn{conns[0], conns[1]}, client.pool[target], "pool keeps MaxPool connections")

	require.NoError(t, client.RequestVote("n2", target, &RequestVoteRequest{Term: 1}, &RequestVoteResponse{}))
	require.Equal(t, []*netConn{conns[0], conns[1]}, client.pool[target], "the last pooled connection was used and returned")

	c, err := client.getConn("n2", target)
	require.NoError(t, err)
	require.Same(t, conns[1], c, "LIFO")
	c.Close()

	client.CloseStreams()
	require.Empty(t, client.pool[target])
	require.NoError(t, client.RequestVote("n2", target, &RequestVoteRequest{Term: 1}, &RequestVoteResponse{}), "a fresh connection after CloseStreams")
}

func TestNetTransportWithoutPoolClosesConnections(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	client, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxPool: 0})
	answerRPCs(t, server, func(rpc RPC) { rpc.Respond(&RequestVoteResponse{}, nil) })
	require.NoError(t, client.RequestVote("n2", server.LocalAddr(), &RequestVoteRequest{Term: 1}, &RequestVoteResponse{}))
	require.Empty(t, client.pool[server.LocalAddr()])
}

// TestNetTransportHeartbeatFastPath: with a heartbeat handler set,
// heartbeats are answered while the consumer (the Raft main loop) is busy.
func TestNetTransportHeartbeatFastPath(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	client, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxPool: 2})
	server.SetHeartbeatHandler(func(rpc RPC) {
		rpc.Respond(&AppendEntriesResponse{Term: rpc.Command.(*AppendEntriesRequest).Term, Success: true}, nil)
	})
	target := server.LocalAddr()

	// Nobody reads Consumer: this AppendEntries stays pending.
	pending := make(chan error, 1)
	go func() {
		pending <- client.AppendEntries("n2", target, &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 3, LeaderCommitIndex: 1}, &AppendEntriesResponse{})
	}()

	heartbeat := &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 3, Leader: []byte("127.0.0.1:7000")}
	resp := &AppendEntriesResponse{}
	require.NoError(t, client.AppendEntries("n2", target, heartbeat, resp))
	require.Equal(t, &AppendEntriesResponse{Term: 3, Success: true}, resp)

	// The consumer still gets the non-heartbeat.
	rpc := receive(t, server.Consumer(), "the non-heartbeat request")
	require.Equal(t, uint64(1), rpc.Command.(*AppendEntriesRequest).LeaderCommitIndex)
	rpc.Respond(&AppendEntriesResponse{}, nil)
	require.NoError(t, receive(t, pending, "pending AppendEntries"))

	// Without a handler, heartbeats go through the consumer.
	server.SetHeartbeatHandler(nil)
	go func() { pending <- client.AppendEntries("n2", target, heartbeat, &AppendEntriesResponse{}) }()
	rpc = receive(t, server.Consumer(), "heartbeat on the consumer")
	require.Equal(t, heartbeat, rpc.Command)
	rpc.Respond(&AppendEntriesResponse{}, nil)
	require.NoError(t, receive(t, pending, "heartbeat"))
}

func TestIsHeartbeat(t *testing.T) {
	addr := []byte("a")
	cases := []struct {
		name string
		req  AppendEntriesRequest
		want bool
	}{
		{"term and addr", AppendEntriesRequest{RPCHeader: RPCHeader{Addr: addr}, Term: 1}, true},
		{"term and legacy leader", AppendEntriesRequest{Term: 1, Leader: addr}, true},
		{"no term", AppendEntriesRequest{RPCHeader: RPCHeader{Addr: addr}}, false},
		{"no sender", AppendEntriesRequest{Term: 1}, false},
		{"prev entry", AppendEntriesRequest{RPCHeader: RPCHeader{Addr: addr}, Term: 1, PrevLogEntry: 1}, false},
		{"prev term", AppendEntriesRequest{RPCHeader: RPCHeader{Addr: addr}, Term: 1, PrevLogTerm: 1}, false},
		{"entries", AppendEntriesRequest{RPCHeader: RPCHeader{Addr: addr}, Term: 1, Entries: []*Log{{}}}, false},
		{"commit index", AppendEntriesRequest{RPCHeader: RPCHeader{Addr: addr}, Term: 1, LeaderCommitIndex: 1}, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, isHeartbeat(&tc.req), tc.name)
	}
}

// TestNetTransportSlowPeerDoesNotBlockOthers: a follower that never answers
// holds only its own connection; RPCs to another follower proceed.
func TestNetTransportSlowPeerDoesNotBlockOthers(t *testing.T) {
	slow, _ := newTestNetTransport(t, nil) // nobody reads its consumer
	fast, _ := newTestNetTransport(t, nil)
	leader, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxPool: 2, Timeout: time.Second})
	answerRPCs(t, fast, func(rpc RPC) { rpc.Respond(&AppendEntriesResponse{Success: true}, nil) })

	stuck := make(chan error, 1)
	go func() {
		stuck <- leader.AppendEntries("slow", slow.LocalAddr(), &AppendEntriesRequest{Term: 1, LeaderCommitIndex: 1}, &AppendEntriesResponse{})
	}()
	for i := 0; i < 20; i++ {
		resp := &AppendEntriesResponse{}
		require.NoError(t, leader.AppendEntries("fast", fast.LocalAddr(), &AppendEntriesRequest{Term: 1, LeaderCommitIndex: uint64(i)}, resp))
		require.True(t, resp.Success)
	}
	// The stuck RPC ends with its deadline rather than hanging.
	var netErr net.Error
	require.ErrorAs(t, receive(t, stuck, "slow RPC to time out"), &netErr)
	require.True(t, netErr.Timeout())
}

type staticAddrProvider map[ServerID]ServerAddress

func (p staticAddrProvider) ServerAddr(id ServerID) (ServerAddress, error) {
	if addr, ok := p[id]; ok {
		return addr, nil
	}
	return "", errors.New("unknown server")
}

func TestNetTransportUsesServerAddressProvider(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	answerRPCs(t, server, func(rpc RPC) { rpc.Respond(&RequestVoteResponse{Granted: true}, nil) })
	client, logs := newTestNetTransport(t, &NetworkTransportConfig{
		ServerAddressProvider: staticAddrProvider{"n2": server.LocalAddr()},
	})

	resp := &RequestVoteResponse{}
	require.NoError(t, client.RequestVote("n2", "192.0.2.1:1", &RequestVoteRequest{Term: 1}, resp), "provider's address wins")
	require.True(t, resp.Granted)
	require.Equal(t, []byte(server.LocalAddr()), client.EncodePeer("n2", "ignored"))

	require.NoError(t, client.RequestVote("n3", server.LocalAddr(), &RequestVoteRequest{Term: 1}, resp), "fallback to the given address")
	require.Contains(t, logs.String(), "unable to get address for server")
	require.Equal(t, []byte("x:1"), client.EncodePeer("n3", "x:1"))
	require.Equal(t, ServerAddress("x:1"), client.DecodePeer([]byte("x:1")))
}

// TestNetTransportCallsAfterCloseFail: every call on a closed transport gets
// an error, Close is idempotent, and the listener is gone.
func TestNetTransportCallsAfterCloseFail(t *testing.T) {
	trans, err := NewTCPTransportWithLogger("127.0.0.1:0", nil, 2, time.Second, hclog.NewNullLogger())
	require.NoError(t, err)
	addr := trans.LocalAddr()
	require.False(t, trans.IsShutdown())
	require.NoError(t, trans.Close())
	require.NoError(t, trans.Close())
	require.True(t, trans.IsShutdown())

	require.ErrorIs(t, trans.AppendEntries("x", addr, &AppendEntriesRequest{}, &AppendEntriesResponse{}), ErrTransportShutdown)
	require.ErrorIs(t, trans.RequestVote("x", addr, &RequestVoteRequest{}, &RequestVoteResponse{}), ErrTransportShutdown)
	require.ErrorIs(t, trans.RequestPreVote("x", addr, &RequestPreVoteRequest{}, &RequestPreVoteResponse{}), ErrTransportShutdown)
	require.ErrorIs(t, trans.TimeoutNow("x", addr, &TimeoutNowRequest{}, &TimeoutNowResponse{}), ErrTransportShutdown)
	require.ErrorIs(t, trans.InstallSnapshot("x", addr, &InstallSnapshotRequest{}, &InstallSnapshotResponse{}, nil), ErrTransportShutdown)
	_, err = trans.AppendEntriesPipeline("x", addr)
	require.ErrorIs(t, err, ErrTransportShutdown)

	_, err = net.DialTimeout("tcp", string(addr), time.Second)
	require.Error(t, err, "listener closed")
}

// TestNetTransportCloseReleasesServedRequests: a request Raft never
// answers does not keep Close waiting, and the client sees the connection
// close.
func TestNetTransportCloseReleasesServedRequests(t *testing.T) {
	server, err := NewTCPTransportWithLogger("127.0.0.1:0", nil, 2, testWait, hclog.NewNullLogger())
	require.NoError(t, err)
	client, _ := newTestNetTransport(t, nil)
	handed := make(chan struct{}, 1)
	server.SetHeartbeatHandler(func(rpc RPC) { handed <- struct{}{} }) // never responds

	pending := make(chan error, 1)
	go func() {
		heartbeat := &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 1}
		pending <- client.AppendEntries("n2", server.LocalAddr(), heartbeat, &AppendEntriesResponse{})
	}()
	receive(t, handed, "heartbeat to reach the handler")
	require.NoError(t, server.Close())
	require.Error(t, receive(t, pending, "RPC to fail"))
}

func TestNewTCPTransportChecksAddresses(t *testing.T) {
	cases := []struct {
		name      string
		bind      string
		advertise net.Addr
		wantErr   string
	}{
		{"unspecified bind without advertise", "0.0.0.0:0", nil, "local bind address is not advertisable"},
		{"unspecified advertise", "127.0.0.1:0", &net.TCPAddr{IP: net.IPv4zero, Port: 1}, "local bind address is not advertisable"},
		{"non-TCP advertise", "127.0.0.1:0", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, "local address is not a TCP address"},
		{"bad bind address", "127.0.0.1:notaport", nil, "unknown port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTCPTransport(tc.bind, tc.advertise, 1, time.Second, io.Discard)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	advertise := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 7000}
	trans, err := NewTCPTransport("0.0.0.0:0", advertise, 1, time.Second, io.Discard)
	require.NoError(t, err)
	defer trans.Close()
	require.Equal(t, ServerAddress("10.1.2.3:7000"), trans.LocalAddr())
	require.Equal(t, DefaultTimeoutScale, trans.TimeoutScale)
}

func TestNetTransportSnapshotTimeoutScalesWithSize(t *testing.T) {
	trans := &NetworkTransport{TimeoutScale: DefaultTimeoutScale, timeout: time.Second}
	cases := []struct {
		size int64
		want time.Duration
	}{
		{0, time.Second},
		{DefaultTimeoutScale - 1, time.Second},
		{2*DefaultTimeoutScale + 5, 2 * time.Second},
		{100 * DefaultTimeoutScale, 100 * time.Second},
		{1 << 62, maxSnapshotTimeout},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, trans.snapshotTimeout(tc.size), "size %d", tc.size)
	}
}
