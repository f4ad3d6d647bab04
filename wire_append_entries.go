package raft

import (
	"encoding/binary"
	"math"
)

// This file holds hand-written msgpack encoders and decoders for the
// messages on the replication hot path: AppendEntriesRequest (with its Log
// entries), AppendEntriesResponse, and the error text before every reply;
// the msgpack primitives they are built from are in wire_msgpack.go.
// They produce exactly the bytes go-msgpack writes with the handle of
// docs/WIRE.md §4 (map form, keys sorted, legacy raw strings, both time
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

// appendAppendEntriesRequest appends req as go-msgpack encodes it.
// newTimeFormat selects the encoding of Log.AppendedAt (docs/WIRE.md §4).
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
