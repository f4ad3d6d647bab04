package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The msgpack primitives behind the hand-written AppendEntries encoders and
// decoders of wire_append_entries.go: append* functions that write one value
// in the form go-msgpack writes it, and wireCursor, which reads one value of
// the forms the fast path accepts and reports anything else as unhandled.

// errWireValueTooLarge is returned for a byte string or array longer than
// msgpack can frame (4 GiB); no real message comes near it.
var errWireValueTooLarge = errors.New("raft-net: value too large for msgpack")

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
