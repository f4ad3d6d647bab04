package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// This file holds the framing of the TCP wire protocol (WIRE.md §2.2): one
// type byte, then one msgpack value per request; two msgpack values (error
// text, response) per reply. The byte layout of every value comes from the
// go-msgpack handle (codec.go), so it matches hashicorp/raft byte for byte.

// Type bytes of the requests on the wire.
const (
	rpcAppendEntries   uint8 = 0
	rpcRequestVote     uint8 = 1
	rpcInstallSnapshot uint8 = 2
	rpcTimeoutNow      uint8 = 3
	rpcRequestPreVote  uint8 = 4
)

// DefaultMaxMessageSize is the largest request or response, in bytes, a
// NetworkTransport reads when NetworkTransportConfig.MaxMessageSize is zero.
// It leaves room for a batch of 64 entries of SuggestedMaxDataSize each.
// The raw snapshot stream that follows an InstallSnapshot request is not
// counted: it is streamed to the snapshot store, never held in memory.
const DefaultMaxMessageSize = 64 << 20

// connBufferSize is the size of the client's write buffer and the server's
// read buffer (WIRE.md §2.8).
const connBufferSize = 256 << 10

// errMessageTooLarge is reported when a peer sends a message longer than the
// configured maximum. The connection is closed: there is no way to skip the
// rest of a msgpack value without reading it.
var errMessageTooLarge = errors.New("raft-net: message exceeds maximum size")

// errUnknownRPCType is reported for a type byte no RPC has.
var errUnknownRPCType = errors.New("raft-net: unknown rpc type")

// boundedReader caps the bytes one message may consume, so a peer cannot make
// the decoder read (and allocate) without end. The codec grows byte slices
// and arrays as their contents actually arrive rather than trusting a length
// prefix, so bounding the bytes read also bounds what a message can allocate
// to a small multiple of the limit. It passes ReadByte and UnreadByte through
// so that the codec reads exactly one value and nothing beyond it.
type boundedReader struct {
	r         *bufio.Reader
	remaining int64
	exceeded  bool
	// readErr is the last error of the underlying reader. The codec
	// reports it as text only, so decode puts it back in the error chain
	// for callers that test for timeouts or EOF.
	readErr error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		b.exceeded = true
		return 0, errMessageTooLarge
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.r.Read(p)
	b.remaining -= int64(n)
	if err != nil {
		b.readErr = err
	}
	return n, err
}

func (b *boundedReader) ReadByte() (byte, error) {
	if b.remaining <= 0 {
		b.exceeded = true
		return 0, errMessageTooLarge
	}
	c, err := b.r.ReadByte()
	if err == nil {
		b.remaining--
	} else {
		b.readErr = err
	}
	return c, err
}

func (b *boundedReader) UnreadByte() error {
	err := b.r.UnreadByte()
	if err == nil {
		b.remaining++
	}
	return err
}

// msgReader decodes a stream of msgpack values from one connection, each
// bounded by maxSize bytes.
type msgReader struct {
	br      *bufio.Reader
	limit   boundedReader
	dec     *codec.Decoder
	maxSize int64
}

func newMsgReader(br *bufio.Reader, handle *codec.MsgpackHandle, maxSize int64) *msgReader {
	m := &msgReader{br: br, maxSize: maxSize}
	m.limit.r = br
	m.dec = codec.NewDecoder(&m.limit, handle)
	return m
}

// decode reads exactly one msgpack value into v. An error of the
// connection is returned as such (io.EOF only if the stream ended before
// the value's first byte, io.ErrUnexpectedEOF inside it).
func (m *msgReader) decode(v interface{}) error {
	m.limit.remaining = m.maxSize
	m.limit.exceeded = false
	m.limit.readErr = nil
	err := m.dec.Decode(v)
	switch {
	case err == nil:
		return nil
	case m.limit.exceeded:
		return fmt.Errorf("%w of %d bytes", errMessageTooLarge, m.maxSize)
	case m.limit.readErr == io.EOF && m.limit.remaining < m.maxSize:
		return io.ErrUnexpectedEOF
	case m.limit.readErr != nil:
		return m.limit.readErr
	default:
		return err
	}
}

// readRequest reads one request: its type byte and its msgpack body. It does
// not read the raw snapshot bytes that follow an InstallSnapshot request.
func (m *msgReader) readRequest() (rpcType uint8, command interface{}, err error) {
	rpcType, err = m.br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	command, err = m.decodeRequestBody(rpcType)
	return rpcType, command, err
}

// decodeRequestBody decodes the msgpack body of a request whose type byte has
// already been read.
func (m *msgReader) decodeRequestBody(rpcType uint8) (interface{}, error) {
	var command interface{}
	switch rpcType {
	case rpcAppendEntries:
		command = &AppendEntriesRequest{}
	case rpcRequestVote:
		command = &RequestVoteRequest{}
	case rpcInstallSnapshot:
		command = &InstallSnapshotRequest{}
	case rpcTimeoutNow:
		command = &TimeoutNowRequest{}
	case rpcRequestPreVote:
		command = &RequestPreVoteRequest{}
	default:
		return nil, fmt.Errorf("%w %d", errUnknownRPCType, rpcType)
	}
	if err := m.decode(command); err != nil {
		if err == io.EOF {
			// The type byte came without a body.
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("raft-net: decode %s: %w", rpcTypeName(rpcType, command), err)
	}
	if req, ok := command.(*InstallSnapshotRequest); ok && req.Size < 0 {
		return nil, fmt.Errorf("raft-net: install snapshot with negative size %d", req.Size)
	}
	return command, nil
}

// readResponse reads one reply: the error text, then the response into resp.
// A non-empty error text comes back as rpcErr; err reports a broken stream,
// after which the connection must not be reused.
func (m *msgReader) readResponse(resp interface{}) (rpcErr error, err error) {
	var text string
	if err := m.decode(&text); err != nil {
		return nil, fmt.Errorf("raft-net: decode response error text: %w", err)
	}
	if err := m.decode(resp); err != nil {
		return nil, fmt.Errorf("raft-net: decode response: %w", err)
	}
	if text != "" {
		return errors.New(text), nil
	}
	return nil, nil
}

// msgWriter encodes msgpack values into a buffered writer.
type msgWriter struct {
	bw  *bufio.Writer
	enc *codec.Encoder
}

func newMsgWriter(bw *bufio.Writer, handle *codec.MsgpackHandle) *msgWriter {
	return &msgWriter{bw: bw, enc: codec.NewEncoder(bw, handle)}
}

// writeRequest writes a type byte and a request, without flushing.
func (m *msgWriter) writeRequest(rpcType uint8, args interface{}) error {
	if err := m.bw.WriteByte(rpcType); err != nil {
		return err
	}
	return m.enc.Encode(args)
}

// writeResponse writes a reply, error text first, without flushing. A nil
// resp is written as msgpack nil, which the client decodes as a zero value.
func (m *msgWriter) writeResponse(rpcErr error, resp interface{}) error {
	text := ""
	if rpcErr != nil {
		text = rpcErr.Error()
	}
	if err := m.enc.Encode(text); err != nil {
		return err
	}
	return m.enc.Encode(resp)
}

// isHeartbeat reports whether an AppendEntries request has the exact shape
// of a heartbeat (WIRE.md §2.6): a term and a sender, and nothing else that
// would need the log.
func isHeartbeat(req *AppendEntriesRequest) bool {
	sender := req.Addr
	if len(sender) == 0 {
		sender = req.Leader
	}
	return req.Term != 0 && sender != nil &&
		req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// rpcTypeName is the value of the rpcType metric label.
func rpcTypeName(rpcType uint8, command interface{}) string {
	switch rpcType {
	case rpcAppendEntries:
		if req, ok := command.(*AppendEntriesRequest); ok && isHeartbeat(req) {
			return "Heartbeat"
		}
		return "AppendEntries"
	case rpcRequestVote:
		return "RequestVote"
	case rpcInstallSnapshot:
		return "InstallSnapshot"
	case rpcTimeoutNow:
		return "TimeoutNow"
	case rpcRequestPreVote:
		return "RequestPreVote"
	default:
		return "Unknown"
	}
}

// drain discards what the handler left unread of r, so the next request on
// the stream starts where the sender put it.
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
