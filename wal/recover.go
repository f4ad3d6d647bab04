package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recover rebuilds the in-memory state from the directory; see doc.go for
// the rules it enforces. It runs before the Store is shared.
func (s *Store) recover() error {
	names, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("wal: read directory: %w", err)
	}
	var seqs []uint64
	for _, e := range names {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			// An unfinished metadata write or segment creation: never
			// renamed into place, so it holds nothing the store promised.
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return fmt.Errorf("wal: remove leftover %s: %w", name, err)
			}
			s.logger.Info("removed leftover temporary file", "file", name)
			continue
		}
		if seq, ok := parseSegmentName(name); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)

	if err := s.loadMeta(len(seqs)); err != nil {
		return err
	}
	s.nextSeq = s.meta.activeSeq + 1
	if n := len(seqs); n > 0 && seqs[n-1] >= s.nextSeq {
		s.nextSeq = seqs[n-1] + 1
	}

	// Segments above the active one were created by a rotation or a new
	// start that crashed before naming them, or were being removed by a
	// truncation: none holds an acknowledged entry.
	for len(seqs) > 0 && seqs[len(seqs)-1] > s.meta.activeSeq {
		seq := seqs[len(seqs)-1]
		seqs = seqs[:len(seqs)-1]
		if err := os.Remove(segmentPath(s.dir, seq)); err != nil {
			return fmt.Errorf("wal: remove leftover segment: %w", err)
		}
		s.logger.Warn("removed a segment left over from an interrupted operation", "segment", segmentName(seq), "active_segment", s.meta.activeSeq)
	}
	if s.meta.activeSeq == 0 {
		return nil
	}
	if len(seqs) == 0 || seqs[len(seqs)-1] != s.meta.activeSeq {
		return fmt.Errorf("wal: segment %s is missing: the metadata names it as the newest segment", segmentPath(s.dir, s.meta.activeSeq))
	}

	var buf []byte
	for i, seq := range seqs {
		g, torn, err := s.loadSegment(seq, i == len(seqs)-1, &buf)
		if err != nil {
			return err
		}
		s.segments = append(s.segments, g)
		if torn >= 0 {
			if err := s.cutTornTail(g, torn); err != nil {
				return err
			}
		}
	}
	return s.checkSegments()
}

// loadMeta reads the metadata file, or creates it for a new store.
func (s *Store) loadMeta(segments int) error {
	path := filepath.Join(s.dir, metaName)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && segments == 0:
		// A new store: make the metadata durable first, so that its absence
		// later always means damage.
		return s.writeMeta(metaState{kv: map[string][]byte{}})
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("wal: metadata file %s is missing but %d segment files exist; refusing to guess the term, vote and log head", path, segments)
	case err != nil:
		return fmt.Errorf("wal: read metadata: %w", err)
	}
	m, err := decodeMeta(b)
	if err != nil {
		return fmt.Errorf("wal: metadata file %s is corrupt at %w", path, err)
	}
	s.meta = m
	return nil
}

// loadSegment opens and scans one segment. For the newest segment torn is
// the offset of a torn tail to cut, or -1.
func (s *Store) loadSegment(seq uint64, newest bool, buf *[]byte) (*segment, int64, error) {
	path := segmentPath(s.dir, seq)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, -1, fmt.Errorf("wal: open segment: %w", err)
	}
	g, torn, err := func() (*segment, int64, error) {
		st, err := f.Stat()
		if err != nil {
			return nil, -1, fmt.Errorf("wal: stat segment: %w", err)
		}
		if st.Size() > 1<<32-1 {
			return nil, -1, fmt.Errorf("wal: segment %s is %d bytes, larger than any segment this store writes", path, st.Size())
		}
		if int64(cap(*buf)) < st.Size() {
			*buf = make([]byte, st.Size())
		}
		b := (*buf)[:st.Size()]
		if _, err := io.ReadFull(f, b); err != nil {
			return nil, -1, fmt.Errorf("wal: read segment %s: %w", path, err)
		}
		h, err := decodeSegmentHeader(b)
		if err != nil {
			return nil, -1, fmt.Errorf("wal: segment %s is corrupt at offset 0: %v", path, err)
		}
		if h.seq != seq {
			return nil, -1, fmt.Errorf("wal: segment %s is corrupt at offset 16: header says sequence %d", path, h.seq)
		}
		g := &segment{seq: seq, base: h.base, first: h.base, path: path, f: f}
		torn, err := g.scanFrames(b, newest)
		return g, torn, err
	}()
	if err != nil {
		f.Close()
		return nil, -1, err
	}
	return g, torn, nil
}

// cutTornTail removes a torn write from the end of the newest segment, so
// that the next append starts on a clean boundary.
func (s *Store) cutTornTail(g *segment, at int64) error {
	st, err := g.f.Stat()
	if err != nil {
		return fmt.Errorf("wal: stat segment: %w", err)
	}
	s.logger.Warn("cut a torn write at the end of the log", "segment", g.path, "offset", at, "file_size", st.Size())
	if err := g.f.Truncate(at); err != nil {
		return fmt.Errorf("wal: truncate torn tail of %s at offset %d: %w", g.path, at, err)
	}
	s.preallocate(g) // the cut also dropped the reserved space after it
	if err := s.sync(g.f, false); err != nil {
		return fmt.Errorf("wal: sync %s: %w", g.path, err)
	}
	return nil
}

// checkSegments applies the head from the metadata, drops segments that an
// interrupted operation left empty or wholly deleted, and checks that the
// remaining segments hold one contiguous run of entries.
func (s *Store) checkSegments() error {
	head := s.meta.head
	var keep []*segment
	for i, g := range s.segments {
		newest := i == len(s.segments)-1
		dead := !newest && (g.empty() || g.last() < head)
		if dead {
			// Empty: a new start replaced it. Below the head: a head
			// deletion was interrupted before removing it.
			g.f.Close()
			if err := os.Remove(g.path); err != nil {
				return fmt.Errorf("wal: remove leftover segment: %w", err)
			}
			s.logger.Info("removed a segment left over from an interrupted deletion", "segment", g.path)
			continue
		}
		keep = append(keep, g)
	}
	s.segments = keep
	for i := 1; i < len(keep); i++ {
		prev, g := keep[i-1], keep[i]
		if g.base != prev.last()+1 {
			return fmt.Errorf("wal: segment %s starts at index %d but the previous segment %s ends at %d: a segment is missing or damaged", g.path, g.base, prev.path, prev.last())
		}
	}
	oldest, newest := keep[0], keep[len(keep)-1]
	if oldest.empty() {
		return nil // the only segment, and empty: the log is empty
	}
	switch {
	case head == 0:
		return fmt.Errorf("wal: metadata file records no log head but segment %s holds entries from %d", oldest.path, oldest.first)
	case oldest.first > head:
		return fmt.Errorf("wal: segment %s starts at index %d but the log starts at %d: the segments holding [%d, %d] are missing", oldest.path, oldest.first, head, head, oldest.first-1)
	}
	last := newest.last()
	if newest.empty() {
		last = newest.base - 1
	}
	if last < head {
		return fmt.Errorf("wal: the log ends at index %d, below its head %d from the metadata file", last, head)
	}
	s.firstIndex, s.lastIndex = head, last
	return nil
}
