package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"

	"github.com/quorumkit/raft"
)

// Command opcodes: the first byte of every log entry the service writes.
const (
	opPut          byte = 1 // key, value
	opDelete       byte = 2 // key
	opSetMember    byte = 3 // server ID, HTTP address
	opDeleteMember byte = 4 // server ID
)

// Snapshot stream layout: snapshotMagic, then records, each a kind byte and
// two length-prefixed (uvarint) strings, then an end record (kind 0) holding
// the record count and a CRC-32C of every byte before the end record's kind,
// both as little-endian uint64/uint32. The checksum lets Restore refuse a
// damaged or cut stream on its own, whatever store or transport carried it.
const (
	snapshotMagic  = "RAFTKV\x00\x01"
	recordEnd      = 0
	recordKV       = 1
	recordMember   = 2
	maxRecordField = 64 << 20 // refuse a length above this before allocating
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeCommand builds a log entry: op, uvarint length of key, key, value.
func encodeCommand(op byte, key, value string) []byte {
	buf := make([]byte, 0, 1+binary.MaxVarintLen64+len(key)+len(value))
	buf = append(buf, op)
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	return append(buf, value...)
}

// decodeCommand is the inverse of encodeCommand. It never panics on bad
// bytes: a malformed entry is an error.
func decodeCommand(data []byte) (op byte, key, value string, err error) {
	if len(data) == 0 {
		return 0, "", "", errors.New("raftkv: empty command")
	}
	op = data[0]
	keyLen, n := binary.Uvarint(data[1:])
	if n <= 0 {
		return 0, "", "", errors.New("raftkv: command has a bad key length")
	}
	rest := data[1+n:]
	if keyLen > uint64(len(rest)) {
		return 0, "", "", fmt.Errorf("raftkv: command key length %d exceeds the %d bytes left", keyLen, len(rest))
	}
	return op, string(rest[:keyLen]), string(rest[keyLen:]), nil
}

// kvFSM is the replicated state: the key-value map, and the HTTP address of
// each server (so that a follower can forward writes to the leader). Apply,
// Snapshot and Restore run on the Raft FSM goroutine; reads come from HTTP
// handlers at any time, hence the lock.
type kvFSM struct {
	mu      sync.RWMutex
	data    map[string]string // key -> value
	members map[string]string // server ID -> HTTP address
}

func newKVFSM() *kvFSM {
	return &kvFSM{data: map[string]string{}, members: map[string]string{}}
}

// Apply implements raft.FSM. It returns nil, or an error for an entry it
// cannot decode (which the leader reports to the writer).
func (f *kvFSM) Apply(entry *raft.Log) interface{} {
	op, key, value, err := decodeCommand(entry.Data)
	if err != nil {
		return fmt.Errorf("entry %d: %w", entry.Index, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case opPut:
		f.data[key] = value
	case opDelete:
		delete(f.data, key)
	case opSetMember:
		f.members[key] = value
	case opDeleteMember:
		delete(f.members, key)
	default:
		return fmt.Errorf("raftkv: entry %d has unknown opcode %d", entry.Index, op)
	}
	return nil
}

// get returns the local value of key.
func (f *kvFSM) get(key string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

// kvPair is one key and its value.
type kvPair struct {
	Key   string
	Value string
}

// list returns, in key order, up to limit pairs whose key has prefix and
// sorts after the key after (all keys when after is empty), and whether more
// matched.
func (f *kvFSM) list(prefix, after string, limit int) ([]kvPair, bool) {
	f.mu.RLock()
	keys := make([]string, 0)
	for k := range f.data {
		if strings.HasPrefix(k, prefix) && (after == "" || k > after) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	pairs := make([]kvPair, len(keys))
	for i, k := range keys {
		pairs[i] = kvPair{Key: k, Value: f.data[k]}
	}
	f.mu.RUnlock()
	return pairs, more
}

// size returns the number of keys.
func (f *kvFSM) size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.data)
}

// member returns the HTTP address recorded for a server ID.
func (f *kvFSM) member(id string) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.members[id]
}

// Snapshot implements raft.FSM. Raft does not call Apply while Snapshot
// runs, but Persist runs concurrently with later Applies, so it takes a
// point-in-time view: a shallow clone of the maps (strings are immutable, so
// no key or value bytes are copied). Persist then streams that view to the
// sink record by record; the state is never serialised into one buffer.
func (f *kvFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &kvSnapshot{data: maps.Clone(f.data), members: maps.Clone(f.members)}, nil
}

// Restore implements raft.FSM: it reads a stream written by Persist into new
// maps and swaps them in only once the whole stream has checked out, so a
// damaged snapshot leaves the current state untouched.
func (f *kvFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, members, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.data, f.members = data, members
	f.mu.Unlock()
	return nil
}

// kvSnapshot is a point-in-time view of the FSM, owned by the snapshot.
type kvSnapshot struct {
	data    map[string]string
	members map[string]string
}

// Persist implements raft.FSMSnapshot.
func (s *kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.data, s.members); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *kvSnapshot) Release() {}

// writeSnapshot streams the maps to w in the snapshot layout.
func writeSnapshot(w io.Writer, data, members map[string]string) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var count uint64
	var lenBuf [binary.MaxVarintLen64]byte
	writeField := func(s string) {
		n := binary.PutUvarint(lenBuf[:], uint64(len(s)))
		bw.Write(lenBuf[:n])
		bw.WriteString(s)
	}
	writeRecords := func(kind byte, m map[string]string) {
		for k, v := range m {
			bw.WriteByte(kind)
			writeField(k)
			writeField(v)
			count++
		}
	}
	// bufio.Writer remembers its first error and returns it from Flush, so
	// the writes above need no individual checks.
	bw.WriteString(snapshotMagic)
	writeRecords(recordMember, members)
	writeRecords(recordKV, data)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("raftkv: write snapshot: %w", err)
	}
	var end [1 + 8 + 4]byte
	end[0] = recordEnd
	binary.LittleEndian.PutUint64(end[1:], count)
	binary.LittleEndian.PutUint32(end[9:], crc.Sum32())
	if _, err := w.Write(end[:]); err != nil {
		return fmt.Errorf("raftkv: write snapshot: %w", err)
	}
	return nil
}

// readSnapshot parses a stream written by writeSnapshot, checking its
// length fields, record count and checksum.
func readSnapshot(r io.Reader) (data, members map[string]string, err error) {
	crc := crc32.New(castagnoli)
	br := bufio.NewReaderSize(r, 64<<10)
	// Only bytes the parser consumed may reach the checksum, so the parser
	// reads through countingTee rather than a tee with read-ahead.
	tee := &countingTee{r: br, crc: crc}

	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(tee, magic); err != nil {
		return nil, nil, fmt.Errorf("raftkv: snapshot header: %w", noEOF(err))
	}
	if string(magic) != snapshotMagic {
		return nil, nil, errors.New("raftkv: snapshot has an unknown format")
	}
	data, members = map[string]string{}, map[string]string{}
	var count uint64
	for {
		kind, err := tee.ReadByte()
		if err != nil {
			return nil, nil, fmt.Errorf("raftkv: snapshot record %d: %w", count, noEOF(err))
		}
		if kind == recordEnd {
			break
		}
		if kind != recordKV && kind != recordMember {
			return nil, nil, fmt.Errorf("raftkv: snapshot record %d has unknown kind %d", count, kind)
		}
		key, err := readField(tee)
		if err != nil {
			return nil, nil, fmt.Errorf("raftkv: snapshot record %d key: %w", count, err)
		}
		value, err := readField(tee)
		if err != nil {
			return nil, nil, fmt.Errorf("raftkv: snapshot record %d value: %w", count, err)
		}
		if kind == recordKV {
			data[key] = value
		} else {
			members[key] = value
		}
		count++
	}
	// The checksum covers everything before the end record's kind byte.
	sum := tee.sumBeforeLast
	var end [8 + 4]byte
	if _, err := io.ReadFull(br, end[:]); err != nil {
		return nil, nil, fmt.Errorf("raftkv: snapshot end record: %w", noEOF(err))
	}
	if got := binary.LittleEndian.Uint64(end[:]); got != count {
		return nil, nil, fmt.Errorf("raftkv: snapshot holds %d records, its end record says %d", count, got)
	}
	if want := binary.LittleEndian.Uint32(end[8:]); want != sum {
		return nil, nil, fmt.Errorf("raftkv: snapshot checksum mismatch: computed %08x, stored %08x", sum, want)
	}
	return data, members, nil
}

// countingTee reads bytes from r and feeds them to crc, remembering the
// checksum as it was before the latest byte read by ReadByte.
type countingTee struct {
	r             *bufio.Reader
	crc           hash.Hash32
	sumBeforeLast uint32
}

func (t *countingTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.crc.Write(p[:n])
	return n, err
}

func (t *countingTee) ReadByte() (byte, error) {
	t.sumBeforeLast = t.crc.Sum32()
	b, err := t.r.ReadByte()
	if err == nil {
		t.crc.Write([]byte{b})
	}
	return b, err
}

// readField reads a uvarint length and that many bytes.
func readField(t *countingTee) (string, error) {
	n, err := binary.ReadUvarint(t)
	if err != nil {
		return "", noEOF(err)
	}
	if n > maxRecordField {
		return "", fmt.Errorf("length %d is over the %d-byte limit", n, maxRecordField)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(t, buf); err != nil {
		return "", noEOF(err)
	}
	return string(buf), nil
}

// noEOF turns a clean EOF in the middle of a snapshot into ErrUnexpectedEOF:
// the stream must end with its end record.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
