//go:build go1.25

package raft

import (
	"bufio"
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/stretchr/testify/require"
)

// The hand-written AppendEntries codec is checked against go-msgpack itself:
// the same bytes out for every message, and the same values back from the
// codec's bytes.

// codecEncode encodes v with the wire handle of the given time format.
func codecEncode(t testing.TB, v interface{}, newTimeFormat bool) []byte {
	t.Helper()
	var out []byte
	require.NoError(t, codec.NewEncoderBytes(&out, newMsgpackHandle(newTimeFormat)).Encode(v))
	return out
}

// codecDecode decodes data into v with the receiving handle (all defaults).
func codecDecode(data []byte, v interface{}) error {
	return codec.NewDecoderBytes(data, &codec.MsgpackHandle{}).Decode(v)
}

// wireGen makes random values that cover every encoding class: each
// integer width, each raw string header, nil and empty slices, and times
// of every zone and timestamp form.
type wireGen struct{ rng *rand.Rand }

func (g wireGen) uint() uint64 {
	bits := []int{0, 7, 8, 16, 32, 64}[g.rng.IntN(6)]
	if bits == 0 {
		return 0
	}
	return g.rng.Uint64() >> (64 - bits)
}

func (g wireGen) int() int64 {
	v := int64(g.uint())
	if g.rng.IntN(2) == 0 {
		v = -v
	}
	return v
}

func (g wireGen) bytes() []byte {
	switch g.rng.IntN(8) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	sizes := []int{1, 31, 32, 255, 256, 65535, 65536, 70000}
	if g.rng.IntN(10) != 0 { // large values are slow to compare; a few suffice
		sizes = sizes[:5]
	}
	size := sizes[g.rng.IntN(len(sizes))]
	if g.rng.IntN(2) == 0 {
		size = g.rng.IntN(size) + 1
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(g.rng.UintN(256))
	}
	return data
}

func (g wireGen) time() time.Time {
	var t time.Time
	switch g.rng.IntN(5) {
	case 0:
		return time.Time{}
	case 1: // seconds only, fits the 4-byte timestamp
		t = time.Unix(g.rng.Int64N(1<<32), 0)
	case 2: // before 1970 or past 2514: the 12-byte timestamp
		t = time.Unix(g.rng.Int64N(1<<40)-1<<39, g.rng.Int64N(1e9))
	default:
		t = time.Unix(g.rng.Int64N(1<<34), g.rng.Int64N(1e9))
	}
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("plus2", 2*3600),
		time.FixedZone("minus-9:30", -(9*3600 + 1800)), time.FixedZone("with seconds", 3600+17)}
	return t.In(zones[g.rng.IntN(len(zones))])
}

func (g wireGen) request() *AppendEntriesRequest {
	req := &AppendEntriesRequest{
		RPCHeader:         RPCHeader{ProtocolVersion: ProtocolVersion(g.int()), ID: g.bytes(), Addr: g.bytes()},
		Term:              g.uint(),
		Leader:            g.bytes(),
		PrevLogEntry:      g.uint(),
		PrevLogTerm:       g.uint(),
		LeaderCommitIndex: g.uint(),
	}
	switch g.rng.IntN(6) {
	case 0: // nil Entries
	case 1:
		req.Entries = []*Log{}
	default:
		count := []int{1, 15, 16, 40}[g.rng.IntN(4)]
		for range count {
			req.Entries = append(req.Entries, &Log{
				Index: g.uint(), Term: g.uint(), Type: LogType(g.uint()),
				Data: g.bytes(), Extensions: g.bytes(), AppendedAt: g.time(),
			})
		}
	}
	return req
}

func (g wireGen) response() *AppendEntriesResponse {
	return &AppendEntriesResponse{
		RPCHeader: RPCHeader{ProtocolVersion: ProtocolVersion(g.int()), ID: g.bytes(), Addr: g.bytes()},
		Term:      g.uint(), LastLog: g.uint(),
		Success: g.rng.IntN(2) == 0, NoRetryBackoff: g.rng.IntN(2) == 0,
	}
}

const wireRandomMessages = 300

func TestAppendEntriesRequestEncodingMatchesCodec(t *testing.T) {
	for _, newTimeFormat := range []bool{false, true} {
		g := wireGen{rand.New(rand.NewPCG(1, 2))}
		for i := range wireRandomMessages {
			req := g.request()
			got, err := appendAppendEntriesRequest(nil, req, newTimeFormat)
			require.NoError(t, err)
			require.Equal(t, codecEncode(t, req, newTimeFormat), got, "message %d, new time format %v", i, newTimeFormat)
		}
	}
}

func TestAppendEntriesResponseEncodingMatchesCodec(t *testing.T) {
	g := wireGen{rand.New(rand.NewPCG(3, 4))}
	for i := range wireRandomMessages {
		resp := g.response()
		got, err := appendAppendEntriesResponse(nil, resp)
		require.NoError(t, err)
		require.Equal(t, codecEncode(t, resp, false), got, "message %d", i)
	}
}

func TestErrorTextEncodingMatchesCodec(t *testing.T) {
	for _, size := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		text := string(bytes.Repeat([]byte{'e'}, size))
		got, err := appendRawString(nil, text)
		require.NoError(t, err)
		require.Equal(t, codecEncode(t, text, false), got, "text of %d bytes", size)

		var decoded string
		require.True(t, decodeStringFast(got, &decoded))
		require.Equal(t, text, decoded)
	}
}

// TestIntegerEncodingMatchesCodecAtEveryBoundary covers the edges of each
// integer form, which random values rarely hit.
func TestIntegerEncodingMatchesCodecAtEveryBoundary(t *testing.T) {
	var unsigned []uint64
	for _, edge := range []uint64{0x7f, math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxUint64} {
		unsigned = append(unsigned, edge-1, edge, edge+1)
	}
	for _, v := range unsigned {
		require.Equal(t, codecEncode(t, v, false), appendUint(nil, v), "uint %d", v)
	}
	var signed []int64
	for _, edge := range []int64{-32, 127, math.MinInt8, math.MaxInt8, math.MinInt16, math.MaxInt16,
		math.MinInt32, math.MaxInt32, math.MinInt64, math.MaxInt64, 0, 255, 256} {
		signed = append(signed, edge-1, edge, edge+1) // wraps at the int64 ends, which is fine
	}
	for _, v := range signed {
		encoded := appendInt(nil, v)
		require.Equal(t, codecEncode(t, v, false), encoded, "int %d", v)
		c := wireCursor{data: encoded}
		decoded, ok := c.int()
		require.True(t, ok)
		require.Equal(t, v, decoded)
	}
}

func TestAppendEntriesRequestFastDecodeMatchesCodec(t *testing.T) {
	for _, newTimeFormat := range []bool{false, true} {
		g := wireGen{rand.New(rand.NewPCG(5, 6))}
		for i := range wireRandomMessages {
			data := codecEncode(t, g.request(), newTimeFormat)
			var want, got AppendEntriesRequest
			require.NoError(t, codecDecode(data, &want))
			require.True(t, decodeAppendEntriesRequestFast(data, &got), "message %d not handled by the fast path", i)
			require.Equal(t, want, got, "message %d, new time format %v", i, newTimeFormat)
		}
	}
}

func TestAppendEntriesResponseFastDecodeMatchesCodec(t *testing.T) {
	g := wireGen{rand.New(rand.NewPCG(7, 8))}
	for i := range wireRandomMessages {
		data := codecEncode(t, g.response(), false)
		// Decode over a response that already holds values, as a caller
		// reusing one would: the results must agree on that too.
		stale := g.response()
		want, got := *stale, *stale
		require.NoError(t, codecDecode(data, &want))
		require.True(t, decodeAppendEntriesResponseFast(data, &got), "message %d not handled by the fast path", i)
		require.Equal(t, want, got, "message %d", i)
	}
}

// TestWireFastDecodeFallsBackToCodec: messages outside the fast path's
// shapes (all legal msgpack a peer could send) decode exactly as the codec
// decodes them, and malformed ones fail as they do with the codec.
func TestWireFastDecodeFallsBackToCodec(t *testing.T) {
	requestCases := []struct {
		name string
		body []byte
	}{
		{"unknown key", concat(b(0x82), fixraw("Future"), b(0x01), fixraw("Term"), b(0x05))},
		{"str8 key", concat(b(0x81, 0xd9, 0x04), []byte("Term"), b(0x07))},
		{"repeated key", concat(b(0x82), fixraw("Term"), b(0x05), fixraw("Term"), b(0x06))},
		{"signed int for a uint", concat(b(0x81), fixraw("Term"), b(0xd1, 0x01, 0x00))},
		{"bin Leader", concat(b(0x81), fixraw("Leader"), b(0xc4, 0x01), []byte("x"))},
		{"array-form struct", concat(b(0x92), fixraw("id"), fixraw("addr"))},
		{"ext timestamp", concat(b(0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("AppendedAt"), b(0xd6, 0xff, 0, 0, 0, 9))},
		{"nil entry", concat(b(0x81), fixraw("Entries"), b(0x91, 0xc0))},
		{"nested RPCHeader", concat(b(0x82), fixraw("RPCHeader"), b(0x81), fixraw("ID"), fixraw("x"), fixraw("Term"), b(0x02))},
		{"negative Term", concat(b(0x81), fixraw("Term"), b(0xff))},
		{"Type overflows uint8", concat(b(0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("Type"), b(0xcd, 0x01, 0x00))},
		{"corrupt legacy time", concat(b(0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("AppendedAt"), b(0xaf, 0x07), make([]byte, 14))},
		{"timestamp with nanoseconds over a second", concat(b(0x81), fixraw("Entries"), b(0x91, 0x81), fixraw("AppendedAt"), b(0xac, 0x7f, 0xff, 0xff, 0xff), make([]byte, 8))},
	}
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			var want AppendEntriesRequest
			wantErr := codecDecode(tc.body, &want)
			r := newMsgReader(bufio.NewReader(bytes.NewReader(tc.body)), &codec.MsgpackHandle{}, 1<<16)
			var got AppendEntriesRequest
			err := r.decode(&got)
			if wantErr != nil {
				require.Error(t, err, "the codec refuses this message: %v", wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}

	responseCases := []struct {
		name string
		body []byte
	}{
		{"nil resets", b(0xc0)},
		{"unknown key", concat(b(0x82), fixraw("Other"), b(0xc3), fixraw("Success"), b(0xc3))},
		{"int for a bool", concat(b(0x81), fixraw("Success"), b(0x01))},
		{"map16", concat(b(0xde, 0x00, 0x01), fixraw("Term"), b(0x09))},
	}
	for _, tc := range responseCases {
		t.Run(tc.name, func(t *testing.T) {
			stale := AppendEntriesResponse{Term: 4, LastLog: 8, RPCHeader: RPCHeader{ID: []byte("old")}}
			want, got := stale, stale
			wantErr := codecDecode(tc.body, &want)
			err := newMsgReader(bufio.NewReader(bytes.NewReader(tc.body)), &codec.MsgpackHandle{}, 1<<16).decode(&got)
			if wantErr != nil {
				require.Error(t, err, "the codec refuses this message: %v", wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// TestWireDecodedEntriesDoNotShareCapacity: entries decoded from one
// message share one allocation, but appending to one field never changes
// another.
func TestWireDecodedEntriesDoNotShareCapacity(t *testing.T) {
	req := &AppendEntriesRequest{Entries: []*Log{{Data: []byte("ab"), Extensions: []byte("cd")}, {Data: []byte("ef")}}}
	var got AppendEntriesRequest
	require.True(t, decodeAppendEntriesRequestFast(codecEncode(t, req, false), &got))
	_ = append(got.Entries[0].Data, 'X', 'Y')
	require.Equal(t, "cd", string(got.Entries[0].Extensions))
	require.Equal(t, "ef", string(got.Entries[1].Data))
}

// FuzzAppendEntriesFastDecode: whatever the fast path accepts, the codec
// accepts too, with the same result.
func FuzzAppendEntriesFastDecode(f *testing.F) {
	g := wireGen{rand.New(rand.NewPCG(9, 10))}
	for range 4 {
		req := g.request()
		for _, entry := range req.Entries {
			entry.Data = entry.Data[:min(len(entry.Data), 40)]
		}
		f.Add(append([]byte{0}, codecEncode(f, req, false)...))
		f.Add(append([]byte{0}, codecEncode(f, req, true)...))
	}
	f.Add(append([]byte{1}, codecEncode(f, g.response(), false)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		body := data[1:]
		if data[0]%2 == 0 {
			var fast AppendEntriesRequest
			if !decodeAppendEntriesRequestFast(body, &fast) {
				return
			}
			var want AppendEntriesRequest
			require.NoError(t, codecDecode(body, &want), "the fast path accepted what the codec refuses")
			require.Equal(t, want, fast)
			return
		}
		var fast, want AppendEntriesResponse
		if !decodeAppendEntriesResponseFast(body, &fast) {
			return
		}
		require.NoError(t, codecDecode(body, &want), "the fast path accepted what the codec refuses")
		require.Equal(t, want, fast)
	})
}

// Benchmarks of the hot messages, hand-written against the codec:
//
//	go test -run '^$' -bench 'WireAppendEntries' -benchmem .
func benchRequest() *AppendEntriesRequest {
	req := &AppendEntriesRequest{RPCHeader: testHeader("n1"), Term: 7, Leader: []byte("127.0.0.1:7000"),
		PrevLogEntry: 100000, PrevLogTerm: 7, LeaderCommitIndex: 99990}
	now := time.Now()
	for i := range 64 {
		req.Entries = append(req.Entries, &Log{Index: 100001 + uint64(i), Term: 7, Type: LogCommand,
			Data: bytes.Repeat([]byte{'x'}, 128), AppendedAt: now})
	}
	return req
}

func BenchmarkWireAppendEntriesEncode(b *testing.B) {
	req := benchRequest()
	b.Run("codec", func(b *testing.B) {
		var out []byte
		enc := codec.NewEncoderBytes(&out, newMsgpackHandle(false))
		for b.Loop() {
			out = out[:0]
			enc.ResetBytes(&out)
			if err := enc.Encode(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand", func(b *testing.B) {
		var out []byte
		for b.Loop() {
			var err error
			if out, err = appendAppendEntriesRequest(out[:0], req, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkWireAppendEntriesDecode(b *testing.B) {
	data := codecEncode(b, benchRequest(), false)
	b.Run("codec", func(b *testing.B) {
		dec := codec.NewDecoderBytes(nil, &codec.MsgpackHandle{})
		for b.Loop() {
			var req AppendEntriesRequest
			dec.ResetBytes(data)
			if err := dec.Decode(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			var req AppendEntriesRequest
			if !decodeAppendEntriesRequestFast(data, &req) {
				b.Fatal("not handled")
			}
		}
	})
}

// BenchmarkWireReadAppendEntries reads requests through the server's
// reader, framing included:
//
//	go test -run '^$' -bench 'WireReadAppendEntries' -benchmem .
func BenchmarkWireReadAppendEntries(b *testing.B) {
	var stream bytes.Buffer
	w := newMsgWriter(bufio.NewWriter(&stream), newMsgpackHandle(false))
	require.NoError(b, w.writeRequest(rpcAppendEntries, benchRequest()))
	require.NoError(b, w.bw.Flush())
	one := stream.Bytes()
	source := bytes.NewReader(one)
	br := bufio.NewReaderSize(source, connBufferSize)
	r := newMsgReader(br, &codec.MsgpackHandle{}, DefaultMaxMessageSize)
	b.SetBytes(int64(len(one)))
	for b.Loop() {
		source.Reset(one)
		br.Reset(source)
		if _, _, err := r.readRequest(); err != nil {
			b.Fatal(err)
		}
	}
}
