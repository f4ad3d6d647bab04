package raft

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// This file holds the framing of the TCP wire protocol (docs/WIRE.md §2): one
// type byte, then one msgpack value per request; two msgpack values (error
// text, response) per reply. The byte layout of every value comes from the
// go-msgpack handle (codec.go), so it matches hashicorp/raft byte for byte;
// the values of the replication hot path go through hand-written encoders
// and decoders that produce and accept the same bytes
// (wire_append_entries.go).

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
// read buffer (docs/WIRE.md §8).
const connBufferSize = 256 << 10

// errMessageTooLarge is reported when a peer sends a message longer than the
// configured maximum. The connection is closed: there is no way to skip the
// rest of a msgpack value without reading it.
var errMessageTooLarge = errors.New("raft-net: message exceeds maximum size")

// errUnknownRPCType is reported for a type byte no RPC has.
var errUnknownRPCType = errors.New("raft-net: unknown rpc type")

// maxContainerLen bounds the elements of one msgpack array or map. Raft's
// largest array is a batch of entries (MaxAppendEntries, at most 1024), so
// this is far above any real message; it stops a message of one-byte
// elements (say, a million empty maps) from decoding into a million structs.
const maxContainerLen = 1 << 16

// msgReader reads a stream of msgpack values from one connection. It frames
// each value itself before decoding: it walks the value's structure,
// copying exactly its bytes into a buffer while checking them against
// maxSize, and only then lets the codec decode the buffer. So a length
// prefix is never trusted before its bytes have arrived (the codec would
// allocate an ext value's announced length up front), nothing past the value
// is consumed, and a message can cost no more than maxSize bytes of buffer
// plus what its decoded fields hold.
type msgReader struct {
	br      *bufio.Reader
	buf     []byte // the current value; reused, since the codec copies out of it
	dec     *codec.Decoder
	maxSize int64
	// frameHint is the size of the last frame handed over to a decoded
	// request, the capacity the next frame buffer starts with.
	frameHint int
}

func newMsgReader(br *bufio.Reader, handle *codec.MsgpackHandle, maxSize int64) *msgReader {
	return &msgReader{br: br, maxSize: maxSize, dec: codec.NewDecoderBytes(nil, handle)}
}

// decode reads exactly one msgpack value into v. Connection errors come
// back as such: io.EOF only if the stream ended before the value's first
// byte, io.ErrUnexpectedEOF inside it.
func (m *msgReader) decode(v interface{}) error {
	// Most values are already whole in the read buffer: decode them where
	// they are. Anything else (a value still arriving, or one the scan
	// refuses) goes through frame, which also gives the errors.
	data, buffered := m.bufferedValue()
	if !buffered {
		if err := m.frame(); err != nil {
			return err
		}
		if req, ok := v.(*AppendEntriesRequest); ok && decodeAppendEntriesRequestOwned(m.buf, req) {
			// A batch too big for the read buffer: its entries keep the
			// frame's bytes instead of a copy, and the next frame gets a
			// buffer of its own, sized like this one.
			m.frameHint = len(m.buf)
			m.buf = nil
			return nil
		}
		data = m.buf
	}
	err := m.decodeBytes(data, v)
	if buffered {
		m.br.Discard(len(data)) // cannot fail: the bytes are buffered
	}
	return err
}

// decodeBytes decodes one complete value into v.
func (m *msgReader) decodeBytes(data []byte, v interface{}) error {
	switch v := v.(type) {
	case *AppendEntriesRequest:
		if decodeAppendEntriesRequestFast(data, v) {
			return nil
		}
		*v = AppendEntriesRequest{} // undo what the fast path filled in
	case *AppendEntriesResponse:
		if decodeAppendEntriesResponseFast(data, v) {
			return nil
		}
	case *string:
		if decodeStringFast(data, v) {
			return nil
		}
	}
	m.dec.ResetBytes(data)
	err := m.dec.Decode(v)
	m.dec.ResetBytes(nil) // do not keep the read buffer
	return err
}

// bufferedValue returns the next value if the read buffer already holds
// all of it, within the size and container limits, without consuming it.
func (m *msgReader) bufferedValue() ([]byte, bool) {
	data, _ := m.br.Peek(m.br.Buffered())
	end := 0
	for pending := 1; pending > 0; pending-- {
		if end >= len(data) {
			return nil, false
		}
		head := data[end]
		end++
		lenBytes, payload, elements, ok := msgpackHead(head)
		if !ok {
			return nil, false
		}
		if lenBytes > 0 {
			if len(data)-end < lenBytes {
				return nil, false
			}
			var n uint64
			for _, c := range data[end : end+lenBytes] {
				n = n<<8 | uint64(c)
			}
			end += lenBytes
			payload, elements = msgpackLength(head, n)
			if elements > 2*maxContainerLen {
				return nil, false
			}
		}
		if payload > len(data)-end {
			return nil, false
		}
		end += payload
		if int64(end) > m.maxSize {
			return nil, false
		}
		pending += elements
	}
	return data[:end], true
}

// msgpackHead reads a value's first byte: the size of the length field
// after it, or else the bytes of data that follow and the values nested
// inside. ok is false for the one byte msgpack never uses.
func msgpackHead(head byte) (lenBytes, payload, elements int, ok bool) {
	switch {
	case head <= 0x7f || head >= 0xe0, head == 0xc0, head == 0xc2, head == 0xc3:
	case head <= 0x8f:
		elements = 2 * int(head&0x0f)
	case head <= 0x9f:
		elements = int(head & 0x0f)
	case head <= 0xbf:
		payload = int(head & 0x1f)
	case head == 0xc4, head == 0xd9: // bin8, str8
		lenBytes = 1
	case head == 0xc5, head == 0xda: // bin16, str16
		lenBytes = 2
	case head == 0xc6, head == 0xdb: // bin32, str32
		lenBytes = 4
	case head == 0xc7, head == 0xc8, head == 0xc9: // ext8/16/32: length, then type
		lenBytes = 1 << (head - 0xc7)
	case head == 0xca:
		payload = 4
	case head == 0xcb:
		payload = 8
	case head >= 0xcc && head <= 0xcf: // uint8..uint64
		payload = 1 << (head - 0xcc)
	case head >= 0xd0 && head <= 0xd3: // int8..int64
		payload = 1 << (head - 0xd0)
	case head >= 0xd4 && head <= 0xd8: // fixext 1..16, plus the type byte
		payload = 1 + 1<<(head-0xd4)
	case head == 0xdc, head == 0xde: // array16, map16
		lenBytes = 2
	case head == 0xdd, head == 0xdf: // array32, map32
		lenBytes = 4
	default: // 0xc1 is never used
		return 0, 0, 0, false
	}
	return lenBytes, payload, elements, true
}

// msgpackLength applies the length field n of a value whose first byte is
// head: the bytes of data that follow, or the values nested inside (over
// 2*maxContainerLen for a container beyond the limit).
func msgpackLength(head byte, n uint64) (payload, elements int) {
	switch head {
	case 0xdc, 0xdd:
		return 0, containerLen(n)
	case 0xde, 0xdf:
		return 0, 2 * containerLen(n)
	case 0xc7, 0xc8, 0xc9:
		return clampLen(n) + 1, 0
	default:
		return clampLen(n), 0
	}
}

// frameBufferKept is the largest frame buffer a reader keeps for the next
// message. Messages too big for the read buffer come through frame: a full
// batch of 64 entries of 4 KiB is one of them, and building its buffer anew
// for each batch (growing it chunk by chunk, copying and zeroing as it goes)
// once took 40% of a follower's CPU. A bigger one is let go, so that a rare
// huge message does not hold memory for ever.
const frameBufferKept = 4 * connBufferSize

// frame reads one complete msgpack value into m.buf.
func (m *msgReader) frame() error {
	m.buf = m.buf[:0]
	if cap(m.buf) > frameBufferKept {
		m.buf = nil
	}
	if m.buf == nil && m.frameHint > 0 {
		m.buf = make([]byte, 0, m.frameHint)
		m.frameHint = 0
	}
	for pending := 1; pending > 0; pending-- {
		head, err := m.br.ReadByte()
		if err != nil {
			if err == io.EOF && len(m.buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if err := m.grow(1); err != nil {
			return err
		}
		m.buf = append(m.buf, head)

		lenBytes, payload, elements, ok := msgpackHead(head)
		if !ok {
			return fmt.Errorf("raft-net: invalid msgpack byte 0x%02x", head)
		}
		if lenBytes > 0 {
			start := len(m.buf)
			if err := m.copyBytes(lenBytes); err != nil {
				return err
			}
			var n uint64
			for _, c := range m.buf[start:] {
				n = n<<8 | uint64(c)
			}
			payload, elements = msgpackLength(head, n)
			if elements > 2*maxContainerLen {
				return fmt.Errorf("raft-net: msgpack container of %d elements exceeds %d", n, maxContainerLen)
			}
		}
		if err := m.copyBytes(payload); err != nil {
			return err
		}
		pending += elements
	}
	return nil
}

// containerLen converts an array or map length, flagging one over the limit
// so that frame rejects it.
func containerLen(n uint64) int {
	if n > maxContainerLen {
		return 2*maxContainerLen + 1
	}
	return int(n)
}

// clampLen converts a 32-bit length to int without overflow; anything over
// the message limit fails in grow anyway.
func clampLen(n uint64) int {
	if n > 1<<40 {
		return 1 << 40
	}
	return int(n)
}

// grow checks that n more bytes fit in the message limit.
func (m *msgReader) grow(n int) error {
	if int64(len(m.buf))+int64(n) > m.maxSize {
		return fmt.Errorf("%w of %d bytes", errMessageTooLarge, m.maxSize)
	}
	return nil
}

// copyBytes appends the next n bytes of the stream to m.buf, in chunks, so
// that memory grows only as bytes actually arrive.
func (m *msgReader) copyBytes(n int) error {
	if err := m.grow(n); err != nil {
		return err
	}
	const chunk = 64 << 10
	for n > 0 {
		step := min(n, chunk)
		m.buf = slices.Grow(m.buf, step)
		start := len(m.buf)
		m.buf = m.buf[:start+step]
		if _, err := io.ReadFull(m.br, m.buf[start:]); err != nil {
			m.buf = m.buf[:start]
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n -= step
	}
	return nil
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

// msgWriter encodes msgpack values into a buffered writer. AppendEntries
// requests and responses and the error text go through the hand-written
// encoders of wire_append_entries.go; every other value through the codec.
type msgWriter struct {
	bw            *bufio.Writer
	enc           *codec.Encoder
	newTimeFormat bool   // the handle writes time.Time in the msgpack timestamp format
	scratch       []byte // reused encoding buffer of the hand-written encoders
}

func newMsgWriter(bw *bufio.Writer, handle *codec.MsgpackHandle) *msgWriter {
	return &msgWriter{bw: bw, enc: codec.NewEncoder(bw, handle), newTimeFormat: !handle.TimeNotBuiltin}
}

// writeRequest writes a type byte and a request, without flushing.
func (m *msgWriter) writeRequest(rpcType uint8, args interface{}) error {
	if err := m.bw.WriteByte(rpcType); err != nil {
		return err
	}
	if req, ok := args.(*AppendEntriesRequest); ok && req != nil {
		buf, err := appendAppendEntriesRequest(m.scratch[:0], req, m.newTimeFormat)
		if err != nil {
			return err
		}
		return m.writeScratch(buf)
	}
	return m.enc.Encode(args)
}

// writeScratch writes buf, an encoding built in m.scratch, and keeps its
// storage for the next message unless it grew past a large batch.
func (m *msgWriter) writeScratch(buf []byte) error {
	_, err := m.bw.Write(buf)
	if cap(buf) <= 4*connBufferSize {
		m.scratch = buf[:0]
	} else {
		m.scratch = nil
	}
	return err
}

// writeResponse writes a reply, error text first, without flushing. A nil
// resp is written as msgpack nil, which the client decodes as a zero value.
func (m *msgWriter) writeResponse(rpcErr error, resp interface{}) error {
	text := ""
	if rpcErr != nil {
		text = rpcErr.Error()
	}
	buf, err := appendRawString(m.scratch[:0], text)
	if err != nil {
		return err
	}
	if r, ok := resp.(*AppendEntriesResponse); ok && r != nil {
		if buf, err = appendAppendEntriesResponse(buf, r); err != nil {
			return err
		}
		return m.writeScratch(buf)
	}
	if err := m.writeScratch(buf); err != nil {
		return err
	}
	return m.enc.Encode(resp)
}

// isHeartbeat reports whether an AppendEntries request has the exact shape
// of a heartbeat (docs/WIRE.md §6): a term and a sender, and nothing else that
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
