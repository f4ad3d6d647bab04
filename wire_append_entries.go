package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// This file holds hand-written msgpack encoders and decoders for the
// messages on the replication hot path: AppendEntriesRequest (with its Log
// entries), AppendEntriesResponse, and the error text before every reply.
// They produce exactly the bytes go-msgpack writes with the handle of
// WIRE.md §2.4 (map form, keys sorted, legacy raw strings, both time
// formats), which wire_append_entries_test.go checks against the codec on
// randomized messages.
//
// The decoders are a fast path, not a second implementation of the codec:
// they accept the shapes a sender of either library writes (a fixmap with
// every known key at most once, the usual integer and raw forms), and report
// anything else as "not handled" so that the caller decodes the same bytes
// with the codec. Every input therefore gets the codec's result or its
// error; the fast path only makes the common case cheaper.

// Map keys as they appear on the wire: a fixraw header, then the name.
const (
	keyAddr              = "\xa4Addr"
	keyEntries           = "\xa7Entries"
	keyID                = "\xa2ID"
	keyLeader            = "\xa6Leader"
	keyLeaderCommitIndex = "\xb1LeaderCommitIndex"
	keyPrevLogEntry      = "\xacPrevLogEntry"
	keyPrevLogTerm       = "\xabPrevLogTerm"
	keyProtocolVersion   = "\xafProtocolVersion"
	keyTerm              = "\xa4Term"
	keyAppendedAt        = "\xaaAppendedAt"
	keyData              = "\xa4Data"
	keyExtensions        = "\xaaExtensions"
	keyIndex             = "\xa5Index"
	keyType              = "\xa4Type"
	keyLastLog           = "\xa7LastLog"
	keyNoRetryBackoff    = "\xaeNoRetryBackoff"
	keySuccess           = "\xa7Success"
)

// errWireValueTooLarge is returned for a byte string or array longer than
// msgpack can frame (4 GiB); no real message comes near it.
var errWireValueTooLarge = errors.New("raft-net: value too large for msgpack")

// appendAppendEntriesRequest appends req as go-msgpack encodes it.
// newTimeFormat selects the encoding of Log.AppendedAt (WIRE.md §2.4).
func appendAppendEntriesRequest(buf []byte, req *AppendEntriesRequest, newTimeFormat bool) ([]byte, error) {
	var err error
	buf = append(buf, 0x89)
	buf = append(buf, keyAddr...)
	if buf, err = appendRawOrNil(buf, req.Addr); err != nil {
		return nil, err
	}
	buf = append(buf, keyEntries...)
	if req.Entries == nil {
		buf = append(buf, 0xc0)
	} else {
		if buf, err = appendArrayHeader(buf, len(req.Entries)); err != nil {
			return nil, err
		}
		for _, entry := range req.Entries {
			if buf, err = appendLog(buf, entry, newTimeFormat); err != nil {
				return nil, err
			}
		}
	}
	buf = append(buf, keyID...)
	if buf, err = appendRawOrNil(buf, req.ID); err != nil {
		return nil, err
	}
	buf = append(buf, keyLeader...)
	if buf, err = appendRawOrNil(buf, req.Leader); err != nil {
		return nil, err
	}
	buf = append(buf, keyLeaderCommitIndex...)
	buf = appendUint(buf, req.LeaderCommitIndex)
	buf = append(buf, keyPrevLogEntry...)
	buf = appendUint(buf, req.PrevLogEntry)
	buf = append(buf, keyPrevLogTerm...)
	buf = appendUint(buf, req.PrevLogTerm)
	buf = append(buf, keyProtocolVersion...)
	buf = appendInt(buf, int64(req.ProtocolVersion))
	buf = append(buf, keyTerm...)
	buf = appendUint(buf, req.Term)
	return buf, nil
}

// appendLog appends one entry of AppendEntriesRequest.Entries.
func appendLog(buf []byte, entry *Log, newTimeFormat bool) ([]byte, error) {
	if entry == nil {
		return append(buf, 0xc0), nil
	}
	var err error
	buf = append(buf, 0x86)
	buf = append(buf, keyAppendedAt...)
	if buf, err = appendTime(buf, entry.AppendedAt, newTimeFormat); err != nil {
		return nil, err
	}
	buf = append(buf, keyData...)
	if buf, err = appendRawOrNil(buf, entry.Data); err != nil {
		return nil, err
	}
	buf = append(buf, keyExtensions...)
	if buf, err = appendRawOrNil(buf, entry.Extensions); err != nil {
		return nil, err
	}
	buf = append(buf, keyIndex...)
	buf = appendUint(buf, entry.Index)
	buf = append(buf, keyTerm...)
	buf = appendUint(buf, entry.Term)
	buf = append(buf, keyType...)
	buf = appendUint(buf, uint64(entry.Type))
	return buf, nil
}

// appendAppendEntriesResponse appends resp as go-msgpack encodes it.
func appendAppendEntriesResponse(buf []byte, resp *AppendEntriesResponse) ([]byte, error) {
	var err error
	buf = append(buf, 0x87)
	buf = append(buf, keyAddr...)
	if buf, err = appendRawOrNil(buf, resp.Addr); err != nil {
		return nil, err
	}
	buf = append(buf, keyID...)
	if buf, err = appendRawOrNil(buf, resp.ID); err != nil {
		return nil, err
	}
	buf = append(buf, keyLastLog...)
	buf = appendUint(buf, resp.LastLog)
	buf = append(buf, keyNoRetryBackoff...)
	buf = appendBool(buf, resp.NoRetryBackoff)
	buf = append(buf, keyProtocolVersion...)
	buf = appendInt(buf, int64(resp.ProtocolVersion))
	buf = append(buf, keySuccess...)
	buf = appendBool(buf, resp.Success)
	buf = append(buf, keyTerm...)
	buf = appendUint(buf, resp.Term)
	return buf, nil
}

// appendRawOrNil appends a []byte: msgpack nil for a nil slice, otherwise a
// legacy raw string (an empty non-nil slice is a0).
func appendRawOrNil(buf, value []byte) ([]byte, error) {
	if value == nil {
		return append(buf, 0xc0), nil
	}
	buf, err := appendRawHeader(buf, len(value))
	if err != nil {
		return nil, err
	}
	return append(buf, value...), nil
}

// appendRawString appends a string as a legacy raw string.
func appendRawString(buf []byte, value string) ([]byte, error) {
	buf, err := appendRawHeader(buf, len(value))
	if err != nil {
		return nil, err
	}
	return append(buf, value...), nil
}

// appendRawHeader appends the header of a raw string of n bytes in the
// family go-msgpack's legacy mode writes: fixraw, raw16, raw32 (never str8).
func appendRawHeader(buf []byte, n int) ([]byte, error) {
	switch {
	case n < 32:
		return append(buf, 0xa0|byte(n)), nil
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(buf, 0xda), uint16(n)), nil
	case uint64(n) <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(buf, 0xdb), uint32(n)), nil
	default:
		return nil, fmt.Errorf("%w: %d bytes", errWireValueTooLarge, n)
	}
}

// appendArrayHeader appends the header of an array of n elements.
func appendArrayHeader(buf []byte, n int) ([]byte, error) {
	switch {
	case n < 16:
		return append(buf, 0x90|byte(n)), nil
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(buf, 0xdc), uint16(n)), nil
	case uint64(n) <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(buf, 0xdd), uint32(n)), nil
	default:
		return nil, fmt.Errorf("%w: array of %d elements", errWireValueTooLarge, n)
	}
}

// appendUint appends an unsigned integer in its smallest form.
func appendUint(buf []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(buf, byte(v))
	case v <= math.MaxUint8:
		return append(buf, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(buf, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(buf, 0xce), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(buf, 0xcf), v)
	}
}

// appendInt appends a signed integer as go-msgpack does: a fixint for
// -32..127, otherwise the smallest signed form that holds it (so 128 is
// int16, not uint8).
func appendInt(buf []byte, v int64) []byte {
	switch {
	case v >= -32 && v <= 127:
		return append(buf, byte(v))
	case v >= math.MinInt8 && v < 0:
		return append(buf, 0xd0, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(append(buf, 0xd1), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(buf, 0xd2), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(buf, 0xd3), uint64(v))
	}
}

func appendBool(buf []byte, v bool) []byte {
	if v {
		return append(buf, 0xc3)
	}
	return append(buf, 0xc2)
}

// appendTime appends Log.AppendedAt. The legacy format is MarshalBinary's
// bytes as a raw string (the zero time included); the new format is nil for
// the zero time, else the msgpack timestamp payload as a raw string.
func appendTime(buf []byte, t time.Time, newTimeFormat bool) ([]byte, error) {
	if !newTimeFormat {
		// MarshalBinary is 15 bytes, or 16 when the zone offset has seconds:
		// a fixraw either way.
		headerAt := len(buf)
		buf = append(buf, 0)
		buf, err := appendMarshalBinary(buf, t)
		if err != nil {
			return nil, fmt.Errorf("raft-net: encode AppendedAt: %w", err)
		}
		n := len(buf) - headerAt - 1
		if n >= 32 {
			return nil, fmt.Errorf("raft-net: encode AppendedAt: unexpected length %d", n)
		}
		buf[headerAt] = 0xa0 | byte(n)
		return buf, nil
	}
	if t.IsZero() {
		return append(buf, 0xc0), nil
	}
	seconds, nanos := t.Unix(), uint64(t.Nanosecond())
	switch {
	case uint64(seconds)>>34 == 0 && nanos == 0 && seconds <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(buf, 0xa4), uint32(seconds)), nil
	case uint64(seconds)>>34 == 0:
		return binary.BigEndian.AppendUint64(append(buf, 0xa8), nanos<<34|uint64(seconds)), nil
	default:
		buf = binary.BigEndian.AppendUint32(append(buf, 0xac), uint32(nanos))
		return binary.BigEndian.AppendUint64(buf, uint64(seconds)), nil
	}
}

// wireCursor reads msgpack values from one complete, framed message. Each
// read reports ok=false, leaving the cursor unspecified, for anything the
// fast path does not handle.
type wireCursor struct {
	data []byte
	off  int

	// arena holds the bytes of every []byte field decoded from this
	// message, so that a batch costs one allocation rather than one per
	// field. Fields are cut with their capacity equal to their length, so
	// appending to one never writes into another.
	arena []byte
	// owned says the message's bytes are the decoded value's to keep:
	// []byte fields are cut from them rather than copied.
	owned bool
}

func (c *wireCursor) byte() (byte, bool) {
	if c.off >= len(c.data) {
		return 0, false
	}
	b := c.data[c.off]
	c.off++
	return b, true
}

// take returns the next n bytes of the message.
func (c *wireCursor) take(n int) ([]byte, bool) {
	if n < 0 || n > len(c.data)-c.off {
		return nil, false
	}
	b := c.data[c.off : c.off+n]
	c.off += n
	return b, true
}

// mapLen reads a map header.
func (c *wireCursor) mapLen() (int, bool) {
	head, ok := c.byte()
	switch {
	case !ok:
		return 0, false
	case head >= 0x80 && head <= 0x8f:
		return int(head & 0x0f), true
	case head == 0xde:
		b, ok := c.take(2)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint16(b)), true
	default:
		return 0, false
	}
}

// key reads a map key; only fixraw keys are handled (every field name of
// these messages is shorter than 32 bytes).
func (c *wireCursor) key() ([]byte, bool) {
	head, ok := c.byte()
	if !ok || head < 0xa0 || head > 0xbf {
		return nil, false
	}
	return c.take(int(head & 0x1f))
}

// uint reads an unsigned integer in any unsigned form or as a
// non-negative fixint.
func (c *wireCursor) uint() (uint64, bool) {
	head, ok := c.byte()
	if !ok {
		return 0, false
	}
	if head <= 0x7f {
		return uint64(head), true
	}
	if head < 0xcc || head > 0xcf {
		return 0, false
	}
	b, ok := c.take(1 << (head - 0xcc))
	if !ok {
		return 0, false
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v, true
}

// int reads a signed integer in any fixint, signed or (fitting) unsigned
// form.
func (c *wireCursor) int() (int64, bool) {
	head, ok := c.byte()
	switch {
	case !ok:
		return 0, false
	case head <= 0x7f || head >= 0xe0:
		return int64(int8(head)), true
	case head >= 0xcc && head <= 0xcf:
		c.off--
		v, ok := c.uint()
		if !ok || v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case head >= 0xd0 && head <= 0xd3:
		b, ok := c.take(1 << (head - 0xd0))
		if !ok {
			return 0, false
		}
		switch len(b) {
		case 1:
			return int64(int8(b[0])), true
		case 2:
			return int64(int16(binary.BigEndian.Uint16(b))), true
		case 4:
			return int64(int32(binary.BigEndian.Uint32(b))), true
		default:
			return int64(binary.BigEndian.Uint64(b)), true
		}
	default:
		return 0, false
	}
}

func (c *wireCursor) bool() (value, ok bool) {
	head, ok := c.byte()
	switch {
	case ok && head == 0xc2:
		return false, true
	case ok && head == 0xc3:
		return true, true
	default:
		return false, false
	}
}

// rawLen reads the header of a raw string: fixraw, raw16 or raw32.
func (c *wireCursor) rawLen(head byte) (int, bool) {
	switch {
	case head >= 0xa0 && head <= 0xbf:
		return int(head & 0x1f), true
	case head == 0xda:
		b, ok := c.take(2)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint16(b)), true
	case head == 0xdb:
		b, ok := c.take(4)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint32(b)), true
	default:
		return 0, false
	}
}

// bytes reads a []byte field: nil for msgpack nil, else a copy of the raw
// string (non-nil even when empty, as the codec decodes it).
func (c *wireCursor) bytes() ([]byte, bool) {
	head, ok := c.byte()
	if !ok {
		return nil, false
	}
	if head == 0xc0 {
		return nil, true
	}
	n, ok := c.rawLen(head)
	if !ok {
		return nil, false
	}
	raw, ok := c.take(n)
	if !ok {
		return nil, false
	}
	if n == 0 {
		return []byte{}, true
	}
	if c.owned {
		return raw[:n:n], true
	}
	if len(c.arena)+n > cap(c.arena) {
		// The whole message bounds what is left to copy.
		c.arena = make([]byte, 0, max(len(c.data)-c.off+n, 64))
	}
	start := len(c.arena)
	c.arena = append(c.arena, raw...)
	return c.arena[start:len(c.arena):len(c.arena)], true
}

// time reads Log.AppendedAt in either format: nil, MarshalBinary bytes, or
// a timestamp payload of 4, 8 or 12 bytes in a fixraw. Ext forms are left
// to the codec.
func (c *wireCursor) time() (time.Time, bool) {
	head, ok := c.byte()
	if !ok {
		return time.Time{}, false
	}
	if head == 0xc0 {
		return time.Time{}, true
	}
	if head < 0xa0 || head > 0xbf {
		return time.Time{}, false
	}
	raw, ok := c.take(int(head & 0x1f))
	if !ok {
		return time.Time{}, false
	}
	switch len(raw) {
	case 15, 16:
		var t time.Time
		if err := t.UnmarshalBinary(raw); err != nil {
			return time.Time{}, false
		}
		return t, true
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(raw)), 0).UTC(), true
	case 8:
		v := binary.BigEndian.Uint64(raw)
		nanos := v >> 34
		if nanos > 999999999 {
			return time.Time{}, false
		}
		return time.Unix(int64(v&(1<<34-1)), int64(nanos)).UTC(), true
	case 12:
		nanos := binary.BigEndian.Uint32(raw)
		if nanos > 999999999 {
			return time.Time{}, false
		}
		return time.Unix(int64(binary.BigEndian.Uint64(raw[4:])), int64(nanos)).UTC(), true
	default:
		return time.Time{}, false
	}
}

// done reports whether the whole message was read.
func (c *wireCursor) done() bool { return c.off == len(c.data) }

// decodeAppendEntriesRequestFast decodes one framed request body into a
// fresh req. It reports false, with req in an unspecified state, for any
// input it leaves to the codec.
func decodeAppendEntriesRequestFast(data []byte, req *AppendEntriesRequest) bool {
	return decodeAppendEntriesRequestCursor(wireCursor{data: data}, req)
}

// decodeAppendEntriesRequestOwned is decodeAppendEntriesRequestFast for a
// message whose bytes the request may keep: its []byte fields share them.
func decodeAppendEntriesRequestOwned(data []byte, req *AppendEntriesRequest) bool {
	return decodeAppendEntriesRequestCursor(wireCursor{data: data, owned: true}, req)
}

func decodeAppendEntriesRequestCursor(c wireCursor, req *AppendEntriesRequest) bool {
	n, ok := c.mapLen()
	if !ok {
		return false
	}
	var seen uint16
	for range n {
		key, ok := c.key()
		if !ok {
			return false
		}
		var bit uint16
		switch string(key) {
		case keyAddr[1:]:
			bit = 1 << 0
			req.Addr, ok = c.bytes()
		case keyEntries[1:]:
			bit = 1 << 1
			req.Entries, ok = c.entries()
		case keyID[1:]:
			bit = 1 << 2
			req.ID, ok = c.bytes()
		case keyLeader[1:]:
			bit = 1 << 3
			req.Leader, ok = c.bytes()
		case keyLeaderCommitIndex[1:]:
			bit = 1 << 4
			req.LeaderCommitIndex, ok = c.uint()
		case keyPrevLogEntry[1:]:
			bit = 1 << 5
			req.PrevLogEntry, ok = c.uint()
		case keyPrevLogTerm[1:]:
			bit = 1 << 6
			req.PrevLogTerm, ok = c.uint()
		case keyProtocolVersion[1:]:
			bit = 1 << 7
			var v int64
			v, ok = c.int()
			req.ProtocolVersion = ProtocolVersion(v)
		case keyTerm[1:]:
			bit = 1 << 8
			req.Term, ok = c.uint()
		default:
			return false
		}
		// A repeated key is left to the codec, whose rules for merging
		// the two values are its own.
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	return c.done()
}

// entries reads AppendEntriesRequest.Entries. The entries of one message
// share one allocation.
func (c *wireCursor) entries() ([]*Log, bool) {
	head, ok := c.byte()
	if !ok {
		return nil, false
	}
	var n int
	switch {
	case head == 0xc0:
		return nil, true
	case head >= 0x90 && head <= 0x9f:
		n = int(head & 0x0f)
	case head == 0xdc:
		b, ok := c.take(2)
		if !ok {
			return nil, false
		}
		n = int(binary.BigEndian.Uint16(b))
	default:
		return nil, false
	}
	// Each entry takes at least one byte, which bounds the allocation by
	// the message size.
	if n > len(c.data)-c.off {
		return nil, false
	}
	logs := make([]Log, n)
	entries := make([]*Log, n)
	for i := range logs {
		if !c.log(&logs[i]) {
			return nil, false
		}
		entries[i] = &logs[i]
	}
	return entries, true
}

// log reads one entry.
func (c *wireCursor) log(entry *Log) bool {
	n, ok := c.mapLen()
	if !ok {
		return false
	}
	var seen uint8
	for range n {
		key, ok := c.key()
		if !ok {
			return false
		}
		var bit uint8
		switch string(key) {
		case keyAppendedAt[1:]:
			bit = 1 << 0
			entry.AppendedAt, ok = c.time()
		case keyData[1:]:
			bit = 1 << 1
			entry.Data, ok = c.bytes()
		case keyExtensions[1:]:
			bit = 1 << 2
			entry.Extensions, ok = c.bytes()
		case keyIndex[1:]:
			bit = 1 << 3
			entry.Index, ok = c.uint()
		case keyTerm[1:]:
			bit = 1 << 4
			entry.Term, ok = c.uint()
		case keyType[1:]:
			bit = 1 << 5
			var v uint64
			v, ok = c.uint()
			ok = ok && v <= math.MaxUint8
			entry.Type = LogType(v)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	return true
}

// decodeAppendEntriesResponseFast decodes one framed reply value into
// resp. Keys absent from the message leave resp's fields as they were, as
// with the codec; nil resets resp. It reports false, leaving resp
// untouched, for any input it leaves to the codec.
func decodeAppendEntriesResponseFast(data []byte, resp *AppendEntriesResponse) bool {
	if len(data) == 1 && data[0] == 0xc0 {
		*resp = AppendEntriesResponse{}
		return true
	}
	c := wireCursor{data: data}
	n, ok := c.mapLen()
	if !ok {
		return false
	}
	decoded := *resp
	var seen uint8
	for range n {
		key, ok := c.key()
		if !ok {
			return false
		}
		var bit uint8
		switch string(key) {
		case keyAddr[1:]:
			bit = 1 << 0
			decoded.Addr, ok = c.bytes()
		case keyID[1:]:
			bit = 1 << 1
			decoded.ID, ok = c.bytes()
		case keyLastLog[1:]:
			bit = 1 << 2
			decoded.LastLog, ok = c.uint()
		case keyNoRetryBackoff[1:]:
			bit = 1 << 3
			decoded.NoRetryBackoff, ok = c.bool()
		case keyProtocolVersion[1:]:
			bit = 1 << 4
			var v int64
			v, ok = c.int()
			decoded.ProtocolVersion = ProtocolVersion(v)
		case keySuccess[1:]:
			bit = 1 << 5
			decoded.Success, ok = c.bool()
		case keyTerm[1:]:
			bit = 1 << 6
			decoded.Term, ok = c.uint()
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	if !c.done() {
		return false
	}
	*resp = decoded
	return true
}

// decodeStringFast decodes the error text of a reply: a raw string, or nil
// as "". It reports false for anything else.
func decodeStringFast(data []byte, text *string) bool {
	if len(data) == 0 {
		return false
	}
	if data[0] == 0xc0 {
		if len(data) != 1 {
			return false
		}
		*text = ""
		return true
	}
	c := wireCursor{data: data}
	head, _ := c.byte()
	n, ok := c.rawLen(head)
	if !ok {
		return false
	}
	raw, ok := c.take(n)
	if !ok || !c.done() {
		return false
	}
	*text = string(raw)
	return true
}
