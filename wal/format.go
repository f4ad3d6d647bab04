package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/quorumkit/raft"
)

// On-disk layout, version 1. All integers are little-endian. The layout is
// described in doc.go; this file is the only place that knows the bytes.

// formatVersion is written into every segment and metadata header. A reader
// refuses any other version instead of guessing.
const formatVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Segment header: magic[8] version u32 flags u32 seq u64 base u64 crc u32.
const (
	segmentMagic      = "QKRAFTWL"
	segmentHeaderSize = 36
)

// Frame header: magic u32 crc u32 payloadLen u32 count u32 firstIndex u64.
// A frame holds one StoreLogs batch (count > 0), or is a truncation marker
// (count == 0, no payload) that removes every entry >= firstIndex.
const (
	frameMagic      = 0x46574b51 // "QKWF"
	frameHeaderSize = 24
)

// Entry header: crc u32 term u64 type u8 seconds i64 nanos u32 dataLen u32
// extLen u32, followed by Data then Extensions.
const entryHeaderSize = 33

// Meta file: magic[8] version u32 head u64 activeSeq u64 count u32, then
// count × (keyLen u32 key valLen u32 val), then crc u32 over all before it.
const (
	metaMagic      = "QKRAFTMT"
	metaHeaderSize = 32
)

// Limits that keep offsets inside uint32 and keep a corrupt length field from
// turning into a huge allocation.
const (
	// MaxBatchBytes is the largest encoded StoreLogs batch (entries plus
	// their 33-byte headers) the store accepts.
	MaxBatchBytes = 1 << 30
	// MaxSegmentSize is the largest Options.SegmentSize accepted.
	MaxSegmentSize = 1 << 30
	// MaxKeySize and MaxValueSize bound StableStore keys and values; the
	// whole key space is rewritten on every Set, so it is meant to be small.
	MaxKeySize   = 1 << 16
	MaxValueSize = 16 << 20
)

// unixToYearOne is the number of seconds from 0001-01-01 UTC (the zero
// time.Time) to the Unix epoch. Timestamps are stored as seconds since year
// one so that the zero time encodes as all zeros and round-trips as IsZero.
const unixToYearOne = 62135596800

var (
	errShortEntry = errors.New("entry shorter than its header")
	errEntryCRC   = errors.New("entry checksum mismatch")
	errEntrySize  = errors.New("entry lengths do not match its size")
)

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// segmentHeader is the decoded first 36 bytes of a segment file.
type segmentHeader struct {
	seq  uint64 // sequence number, also in the file name
	base uint64 // index of the first entry the segment was created to hold
}

func encodeSegmentHeader(h segmentHeader) []byte {
	b := make([]byte, segmentHeaderSize)
	copy(b, segmentMagic)
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	binary.LittleEndian.PutUint64(b[16:], h.seq)
	binary.LittleEndian.PutUint64(b[24:], h.base)
	binary.LittleEndian.PutUint32(b[32:], crcOf(b[:32]))
	return b
}

func decodeSegmentHeader(b []byte) (segmentHeader, error) {
	if len(b) < segmentHeaderSize {
		return segmentHeader{}, fmt.Errorf("header is %d bytes, want %d", len(b), segmentHeaderSize)
	}
	if string(b[:8]) != segmentMagic {
		return segmentHeader{}, errors.New("bad segment magic")
	}
	if crcOf(b[:32]) != binary.LittleEndian.Uint32(b[32:]) {
		return segmentHeader{}, errors.New("segment header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return segmentHeader{}, fmt.Errorf("unsupported segment format version %d (this build reads %d)", v, formatVersion)
	}
	return segmentHeader{
		seq:  binary.LittleEndian.Uint64(b[16:]),
		base: binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

// encodedEntrySize is the number of bytes log takes inside a frame.
func encodedEntrySize(log *raft.Log) int {
	return entryHeaderSize + len(log.Data) + len(log.Extensions)
}

// putEntry encodes log into b, which must be exactly encodedEntrySize long.
func putEntry(b []byte, log *raft.Log) {
	binary.LittleEndian.PutUint64(b[4:], log.Term)
	b[12] = byte(log.Type)
	var secs int64
	var nanos uint32
	if !log.AppendedAt.IsZero() {
		secs = log.AppendedAt.Unix() + unixToYearOne
		nanos = uint32(log.AppendedAt.Nanosecond())
	}
	binary.LittleEndian.PutUint64(b[13:], uint64(secs))
	binary.LittleEndian.PutUint32(b[21:], nanos)
	binary.LittleEndian.PutUint32(b[25:], uint32(len(log.Data)))
	binary.LittleEndian.PutUint32(b[29:], uint32(len(log.Extensions)))
	n := copy(b[entryHeaderSize:], log.Data)
	copy(b[entryHeaderSize+n:], log.Extensions)
	binary.LittleEndian.PutUint32(b[0:], crcOf(b[4:]))
}

// decodeEntry fills out from the encoded entry b (exactly one entry). With
// verify it checks the entry checksum first. With copyData the Data and
// Extensions slices are fresh copies; otherwise they alias b, which the
// caller must then hand over for good.
func decodeEntry(b []byte, index uint64, out *raft.Log, verify, copyData bool) error {
	if len(b) < entryHeaderSize {
		return errShortEntry
	}
	if verify && crcOf(b[4:]) != binary.LittleEndian.Uint32(b) {
		return errEntryCRC
	}
	dataLen := uint64(binary.LittleEndian.Uint32(b[25:]))
	extLen := uint64(binary.LittleEndian.Uint32(b[29:]))
	if entryHeaderSize+dataLen+extLen != uint64(len(b)) {
		return errEntrySize
	}
	data := b[entryHeaderSize : entryHeaderSize+dataLen]
	ext := b[entryHeaderSize+dataLen:]
	if copyData {
		data = cloneOrNil(data)
		ext = cloneOrNil(ext)
	} else {
		data = nilIfEmpty(data)
		ext = nilIfEmpty(ext)
	}
	secs := int64(binary.LittleEndian.Uint64(b[13:]))
	nanos := binary.LittleEndian.Uint32(b[21:])
	var at time.Time
	if secs != 0 || nanos != 0 {
		at = time.Unix(secs-unixToYearOne, int64(nanos))
	}
	*out = raft.Log{
		Index:      index,
		Term:       binary.LittleEndian.Uint64(b[4:]),
		Type:       raft.LogType(b[12]),
		Data:       data,
		Extensions: ext,
		AppendedAt: at,
	}
	return nil
}

func cloneOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}

// frameHeader is a decoded frame header.
type frameHeader struct {
	payloadLen uint32
	count      uint32 // 0 for a truncation marker
	first      uint64 // index of the first entry, or the marker's cut point
}

// putFrameHeader writes the header of a frame whose payload already sits in
// frame[frameHeaderSize:], including the checksum over header and payload.
func putFrameHeader(frame []byte, count uint32, first uint64) {
	binary.LittleEndian.PutUint32(frame[0:], frameMagic)
	binary.LittleEndian.PutUint32(frame[8:], uint32(len(frame)-frameHeaderSize))
	binary.LittleEndian.PutUint32(frame[12:], count)
	binary.LittleEndian.PutUint64(frame[16:], first)
	binary.LittleEndian.PutUint32(frame[4:], frameCRC(frame))
}

// frameCRC is the CRC-32C of a whole frame with its checksum field skipped.
func frameCRC(frame []byte) uint32 {
	c := crc32.Update(0, castagnoli, frame[0:4])
	return crc32.Update(c, castagnoli, frame[8:])
}

// encodeMarker returns a truncation marker frame that removes every entry
// with index >= cut.
func encodeMarker(cut uint64) []byte {
	b := make([]byte, frameHeaderSize)
	putFrameHeader(b, 0, cut)
	return b
}

// parseFrame checks the frame starting at b[0] (b runs to the end of the
// file). It returns the header and the frame's total length, or an error
// describing why the bytes are not a valid frame.
func parseFrame(b []byte) (frameHeader, int, error) {
	if len(b) < frameHeaderSize {
		return frameHeader{}, 0, fmt.Errorf("%d bytes left, a frame header needs %d", len(b), frameHeaderSize)
	}
	if binary.LittleEndian.Uint32(b) != frameMagic {
		return frameHeader{}, 0, errors.New("bad frame magic")
	}
	h := frameHeader{
		payloadLen: binary.LittleEndian.Uint32(b[8:]),
		count:      binary.LittleEndian.Uint32(b[12:]),
		first:      binary.LittleEndian.Uint64(b[16:]),
	}
	total := frameHeaderSize + int(h.payloadLen)
	if uint64(h.payloadLen) > uint64(len(b)-frameHeaderSize) {
		return frameHeader{}, 0, fmt.Errorf("frame of %d bytes runs past the end of the file", total)
	}
	if frameCRC(b[:total]) != binary.LittleEndian.Uint32(b[4:]) {
		return frameHeader{}, 0, errors.New("frame checksum mismatch")
	}
	if h.first == 0 {
		return frameHeader{}, 0, errors.New("frame has index 0")
	}
	if h.count == 0 && h.payloadLen != 0 {
		return frameHeader{}, 0, errors.New("truncation marker with a payload")
	}
	return h, total, nil
}

// frameEntries splits a checked frame payload into entry extents relative to
// the payload start. It fails if the entries do not exactly fill it.
func frameEntries(payload []byte, count uint32, each func(off, n int)) error {
	off := 0
	for i := uint32(0); i < count; i++ {
		if len(payload)-off < entryHeaderSize {
			return fmt.Errorf("entry %d of %d: %w", i, count, errShortEntry)
		}
		n := entryHeaderSize + int(binary.LittleEndian.Uint32(payload[off+25:])) + int(binary.LittleEndian.Uint32(payload[off+29:]))
		if n > len(payload)-off || n < entryHeaderSize {
			return fmt.Errorf("entry %d of %d: %w", i, count, errEntrySize)
		}
		each(off, n)
		off += n
	}
	if off != len(payload) {
		return fmt.Errorf("%d bytes after the last entry", len(payload)-off)
	}
	return nil
}

// metaState is the content of the metadata file: the stable store's keys and
// the two facts about the log that the segment files alone cannot prove.
type metaState struct {
	// head is the lowest index the log may hold: entries below it were
	// deleted from the head. 0 when the log has never held an entry or was
	// emptied.
	head uint64
	// activeSeq is the sequence number of the newest segment that may hold
	// entries; segments above it are left over from an interrupted
	// operation and hold no acknowledged entry. 0 means no segment.
	activeSeq uint64
	// kv holds the StableStore keys.
	kv map[string][]byte
}

func encodeMeta(m metaState) []byte {
	size := metaHeaderSize + 4
	keys := make([]string, 0, len(m.kv))
	for k, v := range m.kv {
		keys = append(keys, k)
		size += 8 + len(k) + len(v)
	}
	slices.Sort(keys)
	b := make([]byte, metaHeaderSize, size)
	copy(b, metaMagic)
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	binary.LittleEndian.PutUint64(b[12:], m.head)
	binary.LittleEndian.PutUint64(b[20:], m.activeSeq)
	binary.LittleEndian.PutUint32(b[28:], uint32(len(keys)))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(m.kv[k])))
		b = append(b, m.kv[k]...)
	}
	return binary.LittleEndian.AppendUint32(b, crcOf(b))
}

// metaError describes a defect in the metadata file at a byte offset.
type metaError struct {
	off int
	msg string
}

func (e *metaError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

func decodeMeta(b []byte) (metaState, error) {
	if len(b) < metaHeaderSize+4 {
		return metaState{}, &metaError{0, fmt.Sprintf("file is %d bytes, too short for a metadata file", len(b))}
	}
	if string(b[:8]) != metaMagic {
		return metaState{}, &metaError{0, "bad metadata magic"}
	}
	body := b[:len(b)-4]
	if crcOf(body) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return metaState{}, &metaError{len(b) - 4, "metadata checksum mismatch"}
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return metaState{}, &metaError{8, fmt.Sprintf("unsupported metadata format version %d (this build reads %d)", v, formatVersion)}
	}
	m := metaState{
		head:      binary.LittleEndian.Uint64(b[12:]),
		activeSeq: binary.LittleEndian.Uint64(b[20:]),
		kv:        make(map[string][]byte),
	}
	count := binary.LittleEndian.Uint32(b[28:])
	off := metaHeaderSize
	readChunk := func() ([]byte, bool) {
		if len(body)-off < 4 {
			return nil, false
		}
		n := int(binary.LittleEndian.Uint32(body[off:]))
		if n > len(body)-off-4 {
			return nil, false
		}
		v := body[off+4 : off+4+n]
		off += 4 + n
		return v, true
	}
	for i := uint32(0); i < count; i++ {
		at := off
		k, ok1 := readChunk()
		v, ok2 := readChunk()
		if !ok1 || !ok2 {
			return metaState{}, &metaError{at, fmt.Sprintf("key %d of %d is truncated", i, count)}
		}
		m.kv[string(k)] = append([]byte{}, v...)
	}
	if off != len(body) {
		return metaState{}, &metaError{off, "unexpected bytes after the last key"}
	}
	return m, nil
}
