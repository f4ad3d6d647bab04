package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	segmentSuffix = ".seg"
	tmpSuffix     = ".tmp"
	metaName      = "wal.meta"
	lockName      = "LOCK"
)

// entryLoc is where one encoded entry (header included) sits in its segment.
// Segments stay below 4 GiB (SegmentSize ≤ 1 GiB, a batch ≤ 1 GiB).
type entryLoc struct {
	off uint32
	n   uint32
}

// segment is one open segment file and the index of the entries it holds.
// The writer (holding Store.writeMu) changes a segment only while it also
// holds Store.mu for writing; readers hold Store.mu for reading.
type segment struct {
	seq  uint64   // sequence number, from the file name and header
	base uint64   // index the segment was created to start at
	path string   // full path of the file
	f    *os.File // open read-write for the life of the segment
	size int64    // end of the last valid frame: where the next frame goes
	// zeroed is how far the file holds written bytes (frames, then zeros
	// written ahead of them): an append that ends below it only overwrites
	// written blocks, so its fdatasync has no file metadata to flush. Known
	// to the writer only; a reopened segment starts from size.
	zeroed int64

	// first is the index of locs[0]. Head deletion does not trim locs (the
	// Store's firstIndex hides the deleted entries), so locs always starts
	// at the segment's first frame, which tail truncation relies on.
	first uint64
	locs  []entryLoc
}

func (g *segment) empty() bool { return len(g.locs) == 0 }

// last is the index of the last entry; only meaningful when !empty().
func (g *segment) last() uint64 { return g.first + uint64(len(g.locs)) - 1 }

func segmentName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segmentSuffix) }

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil && seq > 0
}

// applyFrame adds a checked frame found at file offset off to the index.
// Frames must continue the segment exactly: the first data frame starts at
// base, every later one at last+1, and a marker cuts inside the entries.
func (g *segment) applyFrame(h frameHeader, frame []byte, off int) error {
	if h.count == 0 {
		if g.empty() || h.first <= g.first || h.first > g.last() {
			return fmt.Errorf("truncation marker at index %d outside the segment's entries", h.first)
		}
		g.locs = g.locs[:h.first-g.first]
		return nil
	}
	want := g.base
	if !g.empty() {
		want = g.last() + 1
	}
	if h.first != want {
		return fmt.Errorf("frame starts at index %d, want %d", h.first, want)
	}
	if h.first+uint64(h.count) < h.first {
		return fmt.Errorf("frame index %d + count %d overflows", h.first, h.count)
	}
	return frameEntries(frame[frameHeaderSize:], h.count, func(o, n int) {
		g.locs = append(g.locs, entryLoc{off: uint32(off + frameHeaderSize + o), n: uint32(n)})
	})
}

// frameStart returns the file offset of the frame holding the entry at
// position i of locs, and that frame's header. Frames are separated by at
// least a header, so entries that touch belong to the same frame.
func (g *segment) frameStart(i int) (int64, frameHeader, error) {
	j := i
	for j > 0 && g.locs[j].off == g.locs[j-1].off+g.locs[j-1].n {
		j--
	}
	off := int64(g.locs[j].off) - frameHeaderSize
	var hdr [frameHeaderSize]byte
	if _, err := g.f.ReadAt(hdr[:], off); err != nil {
		return 0, frameHeader{}, fmt.Errorf("wal: read frame header in %s at offset %d: %w", g.path, off, err)
	}
	h := frameHeader{
		payloadLen: binary.LittleEndian.Uint32(hdr[8:]),
		count:      binary.LittleEndian.Uint32(hdr[12:]),
		first:      binary.LittleEndian.Uint64(hdr[16:]),
	}
	if binary.LittleEndian.Uint32(hdr[:]) != frameMagic || h.first != g.first+uint64(j) {
		return 0, frameHeader{}, fmt.Errorf("wal: %s: no frame header for index %d at offset %d", g.path, g.first+uint64(j), off)
	}
	return off, h, nil
}

// scanFrames walks the frames of a segment read into buf. For the newest
// segment a bad frame with nothing valid after it is a torn write from a
// crash: scanning stops there and tornAt reports the offset. Anything else
// wrong is corruption and returns an error naming the file and offset.
func (g *segment) scanFrames(buf []byte, newest bool) (tornAt int64, err error) {
	off := segmentHeaderSize
	for off < len(buf) {
		h, n, perr := parseFrame(buf[off:])
		if perr != nil {
			if allZero(buf[off:]) {
				// Reserved space never written (see preallocate): the
				// frames end here. No frame starts with a zero byte.
				break
			}
			if newest && !validFrameAfter(buf, off+1) {
				g.size = int64(off)
				return int64(off), nil
			}
			return -1, fmt.Errorf("wal: segment %s is corrupt at offset %d: %v (valid data follows, so this is not a torn write)", g.path, off, perr)
		}
		if aerr := g.applyFrame(h, buf[off:off+n], off); aerr != nil {
			return -1, fmt.Errorf("wal: segment %s is corrupt at offset %d: %v", g.path, off, aerr)
		}
		off += n
	}
	g.size = int64(off)
	return -1, nil
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	var zeros [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// validFrameAfter reports whether any complete, checksummed frame starts at
// or after from. Only the last write can be torn, so a bad frame followed by
// a good one means the bad one was damaged after it was made durable.
func validFrameAfter(buf []byte, from int) bool {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], frameMagic)
	for from < len(buf) {
		i := bytes.Index(buf[from:], magic[:])
		if i < 0 {
			return false
		}
		if _, _, err := parseFrame(buf[from+i:]); err == nil {
			return true
		}
		from += i + 1
	}
	return false
}

// syncDir makes renames and creations in dir durable.
func syncDir(dir string, sync func(*os.File) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = sync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// segmentPath returns the path of segment seq in dir.
func segmentPath(dir string, seq uint64) string { return filepath.Join(dir, segmentName(seq)) }

// preallocate reserves the segment's full size on disk, so that appends
// neither change the file size nor allocate blocks, which would make every
// fdatasync flush file metadata too. The space reads as zeros, which
// recovery takes as the end of the frames. Where the file system cannot
// reserve space the segment simply grows with each append.
func (s *Store) preallocate(g *segment) {
	if g.size >= int64(s.opts.SegmentSize) {
		return
	}
	if err := allocate(g.f, g.size, int64(s.opts.SegmentSize)-g.size); err != nil {
		s.logger.Debug("segment space not reserved; it grows with each append", "segment", g.path, "error", err)
	}
}

// zeroAheadBytes is how far ahead of the frames the writer writes zeros,
// one chunk at a time. Space reserved by fallocate is unwritten: the first
// write to a block must also record, in the file system's journal, that
// the block now holds data, which makes that fdatasync a journal commit.
// Writing a chunk of zeros ahead pays that once per chunk instead of on
// every append. (On a growing file, without fallocate, it likewise changes
// the file size once per chunk.) The chunk is small because the sync after
// it carries it to the disk: with 1 MiB chunks every such sync took
// milliseconds. On tcp + wal with 4 KiB commands (compat's versus, 3 nodes
// on one disk) our stack's p99 was 17-25 ms with 1 MiB chunks and 7-10 ms
// with 64 KiB; its throughput against our core on raft-wal varied between
// invocations either way (0.68-0.90x with 1 MiB, 0.73-1.14x with 64 KiB).
const zeroAheadBytes = 64 << 10

var zeroChunk [zeroAheadBytes]byte

// zeroAhead is called by the writer after writing frames up to end and
// before syncing them: when end has passed the zeroed part of the segment,
// it writes the next chunk of zeros after end (within the segment size),
// so that the same sync makes them durable.
func (s *Store) zeroAhead(g *segment, end int64) error {
	if end <= g.zeroed {
		return nil
	}
	to := min(end+zeroAheadBytes, int64(s.opts.SegmentSize))
	if to > end {
		if _, err := g.f.WriteAt(zeroChunk[:to-end], end); err != nil {
			return fmt.Errorf("wal: write zeros ahead in %s at offset %d: %w", g.path, end, err)
		}
	}
	g.zeroed = max(to, end)
	return nil
}
