//go:build go1.25

package raft

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/stretchr/testify/require"
)

// Builders for expected msgpack bytes, written from the rules of docs/WIRE.md
// §2.4 rather than produced by the codec under test.

// fixraw is a string or []byte shorter than 32 bytes.
func fixraw(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func b(bs ...byte) []byte { return bs }

// legacyZeroTime is time.Time{} as MarshalBinary bytes in a fixraw.
var legacyZeroTime = concat(b(0xaf, 0x01), make([]byte, 12), b(0xff, 0xff))

// captureServer accepts one connection, reads exactly len(want) bytes, and
// answers with reply. It reports what it read and whether the client sent
// anything beyond.
func captureServer(t *testing.T, want int, reply []byte) (ServerAddress, <-chan []byte) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { listener.Close() })
	got := make(chan []byte, 2)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(testWait))
		buf := make([]byte, want)
		n, _ := io.ReadFull(conn, buf)
		got <- buf[:n]
		conn.Write(reply)
		extra, _ := io.ReadAll(conn) // until the client closes
		got <- extra
	}()
	return ServerAddress(listener.Addr().String()), got
}

// TestWireGoldenRequests checks the exact bytes the client writes for
// requests against layouts built by hand from docs/WIRE.md §4–5, and that
// it decodes the exact bytes of a hashicorp/raft reply.
// goldenRequest is one request a NetworkTransport sends, the exact bytes it
// must write, the reply a server sends back, and what the caller must get.
type goldenRequest struct {
	name          string
	newTimeFormat bool
	send          func(n *NetworkTransport, target ServerAddress) (interface{}, error)
	want          []byte
	reply         []byte
	wantResp      interface{}
	wantErr       string // the error text the reply carries; "" for none
}

// goldenRequests holds one case per RPC type, with hand-assembled bytes.
func goldenRequests() []goldenRequest {
	addr := "127.0.0.1:7000"
	zeroHeaderReply := func(fields ...[]byte) []byte {
		return concat(b(0xa0), b(0x80|byte(3+len(fields)/2)), fixraw("Addr"), b(0xc0), fixraw("ID"), b(0xc0),
			concat(fields...), fixraw("ProtocolVersion"), b(0x00))
	}
	return []goldenRequest{
		{
			name: "TimeoutNow (the example of WIRE §5 in docs)",
			send: func(n *NetworkTransport, target ServerAddress) (interface{}, error) {
				resp := &TimeoutNowResponse{RPCHeader: RPCHeader{ID: []byte("stale")}}
				return resp, n.TimeoutNow("node1", target, &TimeoutNowRequest{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("node1"), Addr: []byte(addr)}}, resp)
			},
			want:     concat(b(0x03, 0x83), fixraw("Addr"), fixraw(addr), fixraw("ID"), fixraw("node1"), fixraw("ProtocolVersion"), b(0x03)),
			reply:    zeroHeaderReply(),
			wantResp: &TimeoutNowResponse{},
		},
		{
			name: "AppendEntries with one entry, legacy time",
			send: func(n *NetworkTransport, target ServerAddress) (interface{}, error) {
				req := &AppendEntriesRequest{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte(addr)},
					Term: 2, Leader: []byte(addr), PrevLogEntry: 300, PrevLogTerm: 1, LeaderCommitIndex: 200,
					Entries: []*Log{{Index: 5, Term: 2, Type: LogCommand, Data: []byte("x")}}}
				resp := &AppendEntriesResponse{}
				return resp, n.AppendEntries("n2", target, req, resp)
			},
			want: concat(b(0x00, 0x89), fixraw("Addr"), fixraw(addr),
				fixraw("Entries"), b(0x91, 0x86), fixraw("AppendedAt"), legacyZeroTime, fixraw("Data"), fixraw("x"),
				fixraw("Extensions"), b(0xc0), fixraw("Index"), b(0x05), fixraw("Term"), b(0x02), fixraw("Type"), b(0x00),
				fixraw("ID"), fixraw("n1"), fixraw("Leader"), fixraw(addr), fixraw("LeaderCommitIndex"), b(0xcc, 200),
				fixraw("PrevLogEntry"), b(0xcd, 0x01, 0x2c), fixraw("PrevLogTerm"), b(0x01), fixraw("ProtocolVersion"), b(0x03),
				fixraw("Term"), b(0x02)),
			reply: concat(b(0xa0, 0x87), fixraw("Addr"), fixraw("b"), fixraw("ID"), fixraw("n2"), fixraw("LastLog"), b(0xcf, 0, 0, 0, 1, 0, 0, 0, 0),
				fixraw("NoRetryBackoff"), b(0xc3), fixraw("ProtocolVersion"), b(0x03), fixraw("Success"), b(0xc2), fixraw("Term"), b(0x02)),
			wantResp: &AppendEntriesResponse{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n2"), Addr: []byte("b")}, LastLog: 1 << 32, NoRetryBackoff: true, Term: 2},
		},
		{
			name:          "AppendEntries, new time format",
			newTimeFormat: true,
			send: func(n *NetworkTransport, target ServerAddress) (interface{}, error) {
				req := &AppendEntriesRequest{Term: 1, Entries: []*Log{{AppendedAt: time.Unix(1, 0)}, {}}}
				resp := &AppendEntriesResponse{}
				return resp, n.AppendEntries("n2", target, req, resp)
			},
			want: concat(b(0x00, 0x89), fixraw("Addr"), b(0xc0), fixraw("Entries"), b(0x92),
				b(0x86), fixraw("AppendedAt"), b(0xa4, 0, 0, 0, 1), fixraw("Data"), b(0xc0), fixraw("Extensions"), b(0xc0),
				fixraw("Index"), b(0), fixraw("Term"), b(0), fixraw("Type"), b(0),
				b(0x86), fixraw("AppendedAt"), b(0xc0), fixraw("Data"), b(0xc0), fixraw("Extensions"), b(0xc0),
				fixraw("Index"), b(0), fixraw("Term"), b(0), fixraw("Type"), b(0),
				fixraw("ID"), b(0xc0), fixraw("Leader"), b(0xc0), fixraw("LeaderCommitIndex"), b(0), fixraw("PrevLogEntry"), b(0),
				fixraw("PrevLogTerm"), b(0), fixraw("ProtocolVersion"), b(0), fixraw("Term"), b(1)),
			reply:    concat(fixraw("unexpected command"), b(0xc0)),
			wantResp: &AppendEntriesResponse{},
			wantErr:  "unexpected command",
		},
		{
			name: "RequestVote",
			send: func(n *NetworkTransport, target ServerAddress) (interface{}, error) {
				req := &RequestVoteRequest{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte(addr)},
					Term: 70000, Candidate: []byte(addr), LastLogIndex: 1 << 40, LastLogTerm: 127, LeadershipTransfer: true}
				resp := &RequestVoteResponse{}
				return resp, n.RequestVote("n2", target, req, resp)
			},
			want: concat(b(0x01, 0x88), fixraw("Addr"), fixraw(addr), fixraw("Candidate"), fixraw(addr), fixraw("ID"), fixraw("n1"),
				fixraw("LastLogIndex"), b(0xcf, 0, 0, 1, 0, 0, 0, 0, 0), fixraw("LastLogTerm"), b(0x7f),
				fixraw("LeadershipTransfer"), b(0xc3), fixraw("ProtocolVersion"), b(0x03), fixraw("Term"), b(0xce, 0, 1, 0x11, 0x70)),
			reply: concat(b(0xa0, 0x86), fixraw("Addr"), b(0xc0), fixraw("Granted"), b(0xc3), fixraw("ID"), b(0xc0),
				fixraw("Peers"), b(0xc0), fixraw("ProtocolVersion"), b(0x03), fixraw("Term"), b(0xce, 0, 1, 0x11, 0x70)),
			wantResp: &RequestVoteResponse{RPCHeader: RPCHeader{ProtocolVersion: 3}, Granted: true, Term: 70000},
		},
		{
			name: "RequestPreVote",
			send: func(n *NetworkTransport, target ServerAddress) (interface{}, error) {
				req := &RequestPreVoteRequest{RPCHeader: RPCHeader{ProtocolVersion: 3}, Term: 4, LastLogIndex: 9, LastLogTerm: 3}
				resp := &RequestPreVoteResponse{}
				return resp, n.RequestPreVote("n2", target, req, resp)
			},
			want: concat(b(0x04, 0x86), fixraw("Addr"), b(0xc0), fixraw("ID"), b(0xc0), fixraw("LastLogIndex"), b(9),
				fixraw("LastLogTerm"), b(3), fixraw("ProtocolVersion"), b(3), fixraw("Term"), b(4)),
			reply:    zeroHeaderReply(fixraw("Granted"), b(0xc2), fixraw("Term"), b(5)),
			wantResp: &RequestPreVoteResponse{Term: 5},
		},
		{
			name: "InstallSnapshot",
			send: func(n *NetworkTransport, target ServerAddress) (interface{}, error) {
				req := &InstallSnapshotRequest{RPCHeader: RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte(addr)},
					SnapshotVersion: 1, Term: 3, Leader: []byte(addr), LastLogIndex: 128, LastLogTerm: 3,
					Configuration: []byte{}, ConfigurationIndex: 1, Size: 200}
				resp := &InstallSnapshotResponse{}
				return resp, n.InstallSnapshot("n2", target, req, resp, bytes.NewReader(make([]byte, 200)))
			},
			want: concat(b(0x02, 0x8c), fixraw("Addr"), fixraw(addr), fixraw("Configuration"), b(0xa0), fixraw("ConfigurationIndex"), b(1),
				fixraw("ID"), fixraw("n1"), fixraw("LastLogIndex"), b(0xcc, 0x80), fixraw("LastLogTerm"), b(3), fixraw("Leader"), fixraw(addr),
				fixraw("Peers"), b(0xc0), fixraw("ProtocolVersion"), b(3), fixraw("Size"), b(0xd1, 0x00, 0xc8),
				fixraw("SnapshotVersion"), b(1), fixraw("Term"), b(3), make([]byte, 200)),
			reply:    zeroHeaderReply(fixraw("Success"), b(0xc3), fixraw("Term"), b(3)),
			wantResp: &InstallSnapshotResponse{Success: true, Term: 3},
		},
	}
}

func TestWireGoldenRequests(t *testing.T) {
	for _, tc := range goldenRequests() {
		t.Run(tc.name, func(t *testing.T) {
			client, _ := newTestNetTransport(t, &NetworkTransportConfig{MsgpackUseNewTimeFormat: tc.newTimeFormat})
			target, got := captureServer(t, len(tc.want), tc.reply)
			resp, err := tc.send(client, target)
			if tc.wantErr != "" {
				require.EqualError(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, receive(t, got, "request bytes"))
			require.Equal(t, tc.wantResp, resp)
			require.NoError(t, client.Close()) // closes the pooled connection
			require.Empty(t, receive(t, got, "end of stream"), "no bytes after the request")
		})
	}
}

// TestWireGoldenReplies sends hand-built request bytes to a transport and
// checks the exact reply bytes.
func TestWireGoldenReplies(t *testing.T) {
	server, _ := newTestNetTransport(t, nil)
	answerRPCs(t, server, func(rpc RPC) {
		switch rpc.Command.(type) {
		case *TimeoutNowRequest:
			rpc.Respond(&TimeoutNowResponse{}, nil)
		default:
			rpc.Respond(nil, errUnexpectedCommand)
		}
	})
	conn, err := net.DialTimeout("tcp", string(server.LocalAddr()), testWait)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(testWait)))

	timeoutNow := concat(b(0x03, 0x83), fixraw("Addr"), fixraw("a"), fixraw("ID"), fixraw("n"), fixraw("ProtocolVersion"), b(0x03))
	wantReply := concat(b(0xa0, 0x83), fixraw("Addr"), b(0xc0), fixraw("ID"), b(0xc0), fixraw("ProtocolVersion"), b(0x00))
	preVote := concat(b(0x04, 0x81), fixraw("Term"), b(0x01))
	wantError := concat(fixraw("unexpected command"), b(0xc0))

	// Two requests in one write: replies come back in order.
	_, err = conn.Write(concat(timeoutNow, preVote))
	require.NoError(t, err)
	got := make([]byte, len(wantReply)+len(wantError))
	_, err = io.ReadFull(conn, got)
	require.NoError(t, err)
	require.Equal(t, concat(wantReply, wantError), got)
}

// TestWireDecodeStopsAtEndOfValue: decoding a request leaves the bytes
// after it (the next request, or snapshot data) in the reader.
func TestWireDecodeStopsAtEndOfValue(t *testing.T) {
	var stream bytes.Buffer
	w := newMsgWriter(bufio.NewWriter(&stream), newMsgpackHandle(false))
	first := &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 3, Entries: testLogs()}
	require.NoError(t, w.writeRequest(rpcAppendEntries, first))
	require.NoError(t, w.bw.Flush())
	stream.WriteString("TAIL")

	r := newMsgReader(bufio.NewReaderSize(&stream, connBufferSize), &codec.MsgpackHandle{}, DefaultMaxMessageSize)
	rpcType, command, err := r.readRequest()
	require.NoError(t, err)
	require.Equal(t, rpcAppendEntries, rpcType)
	require.Equal(t, first, command)
	rest, err := io.ReadAll(r.br)
	require.NoError(t, err)
	require.Equal(t, "TAIL", string(rest))
}

// TestWireLargeBatchesKeepTheirFrame: a batch too big for the read buffer
// (64 entries of 4 KiB) is framed, and its entries keep the frame's bytes
// instead of a copy of them; the frame buffer is then the request's, and
// decoding the next messages never writes into it.
func TestWireLargeBatchesKeepTheirFrame(t *testing.T) {
	batch := func(fill byte, size int) *AppendEntriesRequest {
		req := &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 3}
		for i := range 64 {
			req.Entries = append(req.Entries, &Log{Index: uint64(i + 1), Term: 3, Type: LogCommand, Data: bytes.Repeat([]byte{fill + byte(i)}, size)})
		}
		return req
	}
	var stream bytes.Buffer
	w := newMsgWriter(bufio.NewWriter(&stream), newMsgpackHandle(false))
	sent := []*AppendEntriesRequest{batch(0, 4096), batch(64, 4096), batch(128, 8192), batch(192, 100)}
	for _, req := range sent {
		require.NoError(t, w.writeRequest(rpcAppendEntries, req))
	}
	require.NoError(t, w.bw.Flush())

	r := newMsgReader(bufio.NewReaderSize(&stream, connBufferSize), &codec.MsgpackHandle{}, DefaultMaxMessageSize)
	var got []*AppendEntriesRequest
	for i := range sent {
		_, command, err := r.readRequest()
		require.NoError(t, err)
		req := command.(*AppendEntriesRequest)
		got = append(got, req)
		if i < 3 {
			require.Nil(t, r.buf, "message %d: the frame went to the request", i)
		}
		for _, entry := range req.Entries {
			require.Equal(t, len(entry.Data), cap(entry.Data), "appending to one entry's data never writes into the next")
		}
	}
	require.Equal(t, sent, got, "no later message overwrote an earlier one's entries")
}

// endlessReader yields zero bytes for ever.
type endlessReader struct{}

func (endlessReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestWireHugeLengthPrefixDoesNotAllocate: a length prefix of 4 GiB (raw32,
// array32) fails at the message size limit having allocated a small
// multiple of that limit, not what the prefix announced.
func TestWireHugeLengthPrefixDoesNotAllocate(t *testing.T) {
	const limit = 1 << 20
	huge := b(0xff, 0xff, 0xff, 0xff)
	cases := []struct {
		name   string
		prefix []byte
	}{
		{"raw32 Addr", concat(b(0x00, 0x81), fixraw("Addr"), b(0xdb), huge)},
		{"array32 Entries", concat(b(0x00, 0x81), fixraw("Entries"), b(0xdd), huge)},
		{"raw32 entry Data", concat(b(0x00, 0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("Data"), b(0xdb), huge)},
		{"map32 of unknown keys", concat(b(0x01, 0xdf), huge)},
		{"raw32 unknown key", concat(b(0x01, 0x81, 0xdb), huge)},
		// Found by FuzzDecodeResponse: the codec allocates an ext value's
		// announced length before reading it.
		{"ext32 value of an unknown key", concat(b(0x01, 0x81), fixraw("Z"), b(0xc9), huge, b(0x01))},
		{"ext32 entry time", concat(b(0x00, 0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("AppendedAt"), b(0xc9), huge, b(0xff))},
		{"a million empty entries", concat(b(0x00, 0x81), fixraw("Entries"), b(0xdd, 0x00, 0x0f, 0x42, 0x40), bytes.Repeat(b(0x80), 1000000))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := io.MultiReader(bytes.NewReader(tc.prefix), endlessReader{})
			r := newMsgReader(bufio.NewReaderSize(input, connBufferSize), &codec.MsgpackHandle{}, limit)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, _, err := r.readRequest()
			runtime.ReadMemStats(&after)
			require.Error(t, err)
			allocated := after.TotalAlloc - before.TotalAlloc
			require.Less(t, allocated, uint64(16*limit), "bytes allocated for a message capped at %d", limit)
		})
	}
}

// TestWireRejectsBadInput runs malformed requests through the decoder.
func TestWireRejectsBadInput(t *testing.T) {
	cases := []struct {
		name    string
		input   []byte
		wantErr error
	}{
		{"empty", nil, io.EOF},
		{"type byte only", b(0x00), io.ErrUnexpectedEOF},
		{"truncated map", concat(b(0x00, 0x82), fixraw("Term")), io.ErrUnexpectedEOF},
		{"unknown type", b(0x09, 0x80), errUnknownRPCType},
		{"oversized", concat(b(0x00, 0x81), fixraw("Leader"), b(0xda, 0x10, 0x00), make([]byte, 4096)), errMessageTooLarge},
		{"not a map", b(0x00, 0x05), nil},
		{"wrong field type", concat(b(0x00, 0x81), fixraw("Term"), fixraw("abc")), nil},
		{"reserved byte", concat(b(0x00, 0x81), fixraw("Term"), b(0xc1)), nil},
		{"negative snapshot size", concat(b(0x02, 0x81), fixraw("Size"), b(0xff)), nil},
		{"corrupt legacy time", concat(b(0x00, 0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("AppendedAt"), b(0xaf, 0x07), make([]byte, 14)), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newMsgReader(bufio.NewReader(bytes.NewReader(tc.input)), &codec.MsgpackHandle{}, 4096)
			_, command, err := r.readRequest()
			require.Error(t, err, "decoded %#v", command)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			}
		})
	}
}

// TestNetServerClosesConnectionOnBadInput sends malformed requests over a
// socket: the server closes the connection without a reply, logs why, and
// keeps serving other connections.
func TestNetServerClosesConnectionOnBadInput(t *testing.T) {
	server, logs := newTestNetTransport(t, &NetworkTransportConfig{MaxMessageSize: 4096, Timeout: time.Second})
	cases := []struct {
		name    string
		input   []byte
		endless bool // keep sending zero bytes after input
		wantLog string
	}{
		{"garbage", b(0x00, 0xc1, 0xc1, 0xc1), false, "failed to decode incoming command"},
		{"unknown type", b(0x07, 0x80), false, "unknown rpc type 7"},
		{"truncated", concat(b(0x00, 0x82), fixraw("Term")), false, "unexpected EOF"},
		{"oversized", concat(b(0x00, 0x81), fixraw("Leader"), b(0xdb, 0xff, 0xff, 0xff, 0xff)), true, "message exceeds maximum size"},
		{"negative snapshot size", concat(b(0x02, 0x81), fixraw("Size"), b(0xd0, 0x80)), false, "negative size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", string(server.LocalAddr()), testWait)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(testWait)))
			_, err = conn.Write(tc.input)
			require.NoError(t, err)
			if tc.endless {
				go io.Copy(conn, endlessReader{}) // ends when the server closes
			} else {
				require.NoError(t, conn.(*net.TCPConn).CloseWrite())
			}
			reply, err := io.ReadAll(conn)
			var netErr net.Error
			require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "server did not close the connection")
			require.Empty(t, reply, "no reply to a bad request")
			require.Contains(t, logs.String(), tc.wantLog)
		})
	}

	// The transport still serves well-formed requests.
	client, _ := newTestNetTransport(t, nil)
	answerRPCs(t, server, func(rpc RPC) { rpc.Respond(&RequestVoteResponse{Granted: true}, nil) })
	resp := &RequestVoteResponse{}
	require.NoError(t, client.RequestVote("s", server.LocalAddr(), &RequestVoteRequest{Term: 1}, resp))
	require.True(t, resp.Granted)
}

// TestNetClientRejectsOversizedResponse: the client side bounds replies
// with the same limit.
func TestNetClientRejectsOversizedResponse(t *testing.T) {
	client, _ := newTestNetTransport(t, &NetworkTransportConfig{MaxMessageSize: 1024})
	reply := concat(b(0xa0, 0x81), fixraw("Peers"), b(0xda, 0x08, 0x00), make([]byte, 2048))
	target, _ := captureServer(t, 1, reply)
	err := client.RequestVote("s", target, &RequestVoteRequest{}, &RequestVoteResponse{})
	require.ErrorIs(t, err, errMessageTooLarge)
}

// fuzzSeedRequests are valid encoded requests of every type.
func fuzzSeedRequests(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, newTime := range []bool{false, true} {
		for _, req := range []struct {
			rpcType uint8
			body    interface{}
		}{
			{rpcAppendEntries, &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 3, PrevLogEntry: 10, PrevLogTerm: 2, Entries: testLogs()[:2], LeaderCommitIndex: 9}},
			{rpcAppendEntries, &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 3, Leader: []byte("l")}},
			{rpcRequestVote, &RequestVoteRequest{RPCHeader: testHeader("n1"), Term: 300, Candidate: []byte("c"), LastLogIndex: 1 << 40, LeadershipTransfer: true}},
			{rpcInstallSnapshot, &InstallSnapshotRequest{RPCHeader: testHeader("n1"), SnapshotVersion: 1, Term: 2, Configuration: []byte{1}, Size: 3}},
			{rpcTimeoutNow, &TimeoutNowRequest{RPCHeader: testHeader("n1")}},
			{rpcRequestPreVote, &RequestPreVoteRequest{RPCHeader: testHeader("n1"), Term: 4, LastLogIndex: 7, LastLogTerm: 3}},
		} {
			var buf bytes.Buffer
			w := newMsgWriter(bufio.NewWriter(&buf), newMsgpackHandle(newTime))
			require.NoError(t, w.writeRequest(req.rpcType, req.body))
			require.NoError(t, w.bw.Flush())
			if req.rpcType == rpcInstallSnapshot {
				buf.WriteString("abc")
			}
			seeds = append(seeds, buf.Bytes())
		}
	}
	return seeds
}

// reencode encodes v with the wire handle.
func reencode(t *testing.T, v interface{}) []byte {
	var buf bytes.Buffer
	require.NoError(t, codec.NewEncoder(&buf, newMsgpackHandle(false)).Encode(v))
	return buf.Bytes()
}

// FuzzDecodeRequest feeds arbitrary bytes to the server's request decoder:
// it must return an error or a request, never panic or run past the limit;
// a request it accepts must survive an encode/decode round trip unchanged.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range fuzzSeedRequests(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := newMsgReader(bufio.NewReader(bytes.NewReader(data)), &codec.MsgpackHandle{}, limit)
		for range 4 { // a stream may hold several requests
			rpcType, command, err := r.readRequest()
			if err != nil {
				return
			}
			require.NotNil(t, command)
			first := reencode(t, command)
			_, again, err := newMsgReader(bufio.NewReader(bytes.NewReader(append([]byte{rpcType}, first...))), &codec.MsgpackHandle{}, 1<<30).readRequest()
			require.NoError(t, err)
			require.Equal(t, first, reencode(t, again), "re-encoding a decoded request is stable")
			if req, ok := command.(*InstallSnapshotRequest); ok {
				if err := drain(io.LimitReader(r.br, req.Size)); err != nil {
					return
				}
			}
		}
	})
}

// FuzzDecodeResponse feeds arbitrary bytes to the client's reply decoder
// for each response type (chosen by the first byte).
func FuzzDecodeResponse(f *testing.F) {
	seeds := []struct {
		kind  byte
		reply []byte
	}{
		{0, concat(b(0xa0, 0x84), fixraw("Term"), b(2), fixraw("LastLog"), b(0xcd, 1, 0), fixraw("Success"), b(0xc3), fixraw("ID"), fixraw("n"))},
		{1, concat(fixraw("operation not supported with current protocol version"[:31]), b(0xc0))},
		{2, concat(b(0xa0, 0x83), fixraw("Granted"), b(0xc3), fixraw("Peers"), fixraw("p"), fixraw("Term"), b(9))},
		{3, concat(b(0xa0, 0x82), fixraw("Success"), b(0xc2), fixraw("Term"), b(1))},
		{4, concat(b(0xa0, 0x80))},
		{0, concat(b(0xda, 0x00, 0x03), []byte("err"), b(0x90))},
	}
	for _, seed := range seeds {
		f.Add(append([]byte{seed.kind}, seed.reply...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var resp interface{}
		switch data[0] % 5 {
		case 0:
			resp = &AppendEntriesResponse{}
		case 1:
			resp = &RequestVoteResponse{}
		case 2:
			resp = &RequestPreVoteResponse{}
		case 3:
			resp = &InstallSnapshotResponse{}
		case 4:
			resp = &TimeoutNowResponse{}
		}
		r := newMsgReader(bufio.NewReader(bytes.NewReader(data[1:])), &codec.MsgpackHandle{}, 1<<16)
		rpcErr, err := r.readResponse(resp)
		if err != nil {
			require.Nil(t, rpcErr)
			return
		}
		first := reencode(t, resp)
		require.NoError(t, newMsgReader(bufio.NewReader(bytes.NewReader(first)), &codec.MsgpackHandle{}, 1<<30).decode(resp))
		require.Equal(t, first, reencode(t, resp), "re-encoding a decoded response is stable")
	})
}

// TestFuzzSeedsAreValid keeps the seed corpus honest: every seed decodes.
func TestFuzzSeedsAreValid(t *testing.T) {
	for i, seed := range fuzzSeedRequests(t) {
		r := newMsgReader(bufio.NewReader(bytes.NewReader(seed)), &codec.MsgpackHandle{}, 1<<16)
		_, _, err := r.readRequest()
		require.NoError(t, err, "seed %d", i)
	}
}
