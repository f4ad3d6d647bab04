package wal

import (
	"fmt"
	"os"
)

// How the log shrinks: DeleteRange cuts a prefix (after a snapshot), a suffix
// (a follower's conflicting tail) or everything, and removeSegments deletes
// the segment files the metadata no longer owns.

// removeSegments closes and deletes segments that are already out of the
// index and disowned by the metadata, newest first. A failure is fatal: a
// stale file left behind could later be mistaken for part of the log.
func (s *Store) removeSegments(old []*segment, point string) error {
	for i := len(old) - 1; i >= 0; i-- {
		g := old[i]
		g.f.Close()
		if err := os.Remove(g.path); err != nil && !os.IsNotExist(err) {
			return s.fail(fmt.Errorf("wal: remove segment: %w", err))
		}
		if err := s.hit(point); err != nil {
			return s.fail(err)
		}
	}
	return nil
}

// DeleteRange deletes the entries in [min, max]. Only a prefix (from the
// head) or a suffix (from the tail) may be deleted, or everything; a range
// that would leave a hole is refused. Parts of the range outside the log,
// and an empty range (min > max), are ignored. The deletion is durable when
// DeleteRange returns.
func (s *Store) DeleteRange(min, max uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if min > max || s.lastIndex == 0 || max < s.firstIndex || min > s.lastIndex {
		return nil
	}
	switch {
	case min <= s.firstIndex && max >= s.lastIndex:
		return s.deleteAll()
	case min <= s.firstIndex:
		return s.deleteHead(max)
	case max >= s.lastIndex:
		return s.deleteTail(min)
	default:
		return fmt.Errorf("wal: DeleteRange(%d, %d) would leave a hole in the log [%d, %d]; only a prefix or a suffix can be deleted", min, max, s.firstIndex, s.lastIndex)
	}
}

// deleteAll empties the log: the metadata first disowns every segment, then
// the files go. A crash in between leaves files that Open removes.
func (s *Store) deleteAll() error {
	if err := s.updateMeta(func(m *metaState) { m.head, m.activeSeq = 0, 0 }); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.segments
	s.segments = nil
	s.firstIndex, s.lastIndex = 0, 0
	s.cache.reset()
	s.mu.Unlock()
	incrCounter([]string{"raft", "wal", "truncateAll"}, 1)
	return s.removeSegments(old, "all.removed")
}

// deleteHead deletes [firstIndex, upTo]: the new head is recorded in the
// metadata, then whole segments below it are removed. Nothing is rewritten;
// deleted entries in the oldest remaining segment stay on disk, hidden.
func (s *Store) deleteHead(upTo uint64) error {
	head := upTo + 1
	if err := s.updateMeta(func(m *metaState) { m.head = head }); err != nil {
		return err
	}
	s.mu.Lock()
	keep := 0
	for keep < len(s.segments)-1 && !s.segments[keep].empty() && s.segments[keep].last() < head {
		keep++
	}
	old := s.segments[:keep:keep]
	s.segments = s.segments[keep:]
	s.firstIndex = head
	s.cache.dropBefore(head)
	s.mu.Unlock()
	incrCounter([]string{"raft", "wal", "truncateHead"}, 1)
	return s.removeSegments(old, "head.removed")
}

// deleteTail deletes [from, lastIndex] (from > firstIndex). Newer segments
// are first disowned in the metadata and removed; then, in the segment
// holding from, the file is cut at the start of the frame holding from, or,
// when from is inside a frame, cut after that frame and ended with a
// truncation marker. Each step is synced before the next, so a crash at any
// point leaves a log that is a prefix of the old one and at least [first,
// from-1].
func (s *Store) deleteTail(from uint64) error {
	si := len(s.segments) - 1
	for s.segments[si].empty() || s.segments[si].first > from {
		si--
	}
	g := s.segments[si]
	newer := s.segments[si+1:]
	frameOff, fh, err := g.frameStart(int(from - g.first))
	if err != nil {
		return s.fail(err)
	}
	if len(newer) > 0 {
		if err := s.updateMeta(func(m *metaState) { m.activeSeq = g.seq }); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.segments = s.segments[:si+1]
	g.locs = g.locs[:from-g.first]
	s.lastIndex = from - 1
	s.cache.truncateFrom(from)
	s.mu.Unlock()
	incrCounter([]string{"raft", "wal", "truncateTail"}, 1)
	if err := s.removeSegments(newer, "tail.removed"); err != nil {
		return err
	}

	cut := frameOff // the whole frame goes
	if fh.first < from {
		cut = frameOff + frameHeaderSize + int64(fh.payloadLen) // keep the frame, mark the cut
	}
	if cut < g.size {
		// Truncating, not just moving the write offset back, erases the
		// deleted frames: left in place, they could read as a valid
		// continuation of later appends. Space is then reserved again.
		if err := g.f.Truncate(cut); err != nil {
			return s.fail(fmt.Errorf("wal: truncate %s at offset %d: %w", g.path, cut, err))
		}
		g.size, g.zeroed = cut, cut
		s.preallocate(g)
		if err := s.syncFile(g.f); err != nil {
			return s.fail(fmt.Errorf("wal: sync %s: %w", g.path, err))
		}
	}
	if err := s.hit("tail.cut"); err != nil {
		return s.fail(err)
	}
	if fh.first < from {
		if _, err := g.f.WriteAt(encodeMarker(from), g.size); err != nil {
			return s.fail(fmt.Errorf("wal: write truncation marker to %s at offset %d: %w", g.path, g.size, err))
		}
		if err := s.hit("tail.marked"); err != nil {
			return s.fail(err)
		}
		if err := s.syncFile(g.f); err != nil {
			return s.fail(fmt.Errorf("wal: sync %s: %w", g.path, err))
		}
		g.size += frameHeaderSize
	}
	return nil
}
