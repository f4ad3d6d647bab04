package wal

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("wal: store is closed")

// ErrKeyNotFound is returned by Get and GetUint64 for a key that was never
// set. Its text is exactly "not found", which is how Raft recognises a
// missing key (docs/COMPATIBILITY.md §4).
var ErrKeyNotFound = errors.New("not found")

// Store is a durable raft.LogStore and raft.StableStore kept in one
// directory. It is safe for one writer (StoreLogs, DeleteRange) and any
// number of concurrent readers; see the package documentation for the
// on-disk layout and the crash-safety argument.
type Store struct {
	dir    string
	opts   Options
	logger hclog.Logger
	lock   *os.File // holds the directory lock until Close

	// writeMu serialises the log writers: StoreLogs and DeleteRange. The
	// fields marked "writer" below change only under writeMu (and mu when
	// readers can see them), so the writer may read them without mu.
	writeMu  sync.Mutex
	nextSeq  uint64 // writer: sequence number for the next new segment
	writeBuf []byte // writer: frame buffer reused for frames the cache does not take

	// metaMu serialises metadata file writes and guards meta, which always
	// equals the durable content of the metadata file.
	metaMu sync.Mutex
	meta   metaState

	// mu guards the index. Readers hold it for reading while they read a
	// segment file, so a segment is never closed under a reader.
	mu         sync.RWMutex
	segments   []*segment // writer; oldest first, only the last may be empty
	firstIndex uint64     // writer; 0 when the log is empty
	lastIndex  uint64     // writer; 0 when the log is empty
	cache      entryCache // writer

	closed atomic.Bool
	// failed holds the first write-path I/O error. After it, every write
	// fails: a failed fsync may have dropped data the kernel had accepted,
	// and retrying could report success for it.
	failed atomic.Pointer[error]

	// sync makes a file (or with dir, a directory) durable. Tests replace
	// it to inject failures.
	sync func(f *os.File, dir bool) error
	// crashHook, when set by tests, is called at each named crash point of
	// every multi-step operation; a non-nil return stops the operation
	// there, as a crash would.
	crashHook func(point string) error
}

// Keys of the metrics every append reports, made once: a key built per
// call is an allocation per call. go-metrics copies a key before adding a
// prefix to it, so sharing them is safe.
var (
	metricSync          = []string{"raft", "wal", "sync"}
	metricSyncs         = []string{"raft", "wal", "syncs"}
	metricAppend        = []string{"raft", "wal", "append"}
	metricAppendEntries = []string{"raft", "wal", "appendEntries"}
	metricAppendBytes   = []string{"raft", "wal", "appendBytes"}
)

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// Open opens the store in dir, creating the directory and an empty store if
// needed, and recovers it after a crash: a torn write at the end of the
// newest segment is cut off (and logged); any other damage makes Open fail
// with an error naming the file and offset. Only one Store may have a
// directory open at a time.
func Open(dir string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: create directory: %w", err)
	}
	lock, err := lockDir(dir + string(os.PathSeparator) + lockName)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:    dir,
		opts:   opts,
		logger: opts.Logger,
		lock:   lock,
		cache:  entryCache{limit: opts.CacheSize},
	}
	s.sync = s.defaultSync
	if err := s.recover(); err != nil {
		for _, g := range s.segments {
			g.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) defaultSync(f *os.File, dir bool) error {
	switch {
	case s.opts.Sync == SyncNever:
		return nil
	case dir || s.opts.Sync == SyncFull:
		return f.Sync()
	default:
		return syncData(f)
	}
}

// syncFile flushes f and counts the sync in the metrics.
func (s *Store) syncFile(f *os.File) error {
	start := time.Now()
	err := s.sync(f, false)
	measureSince(metricSync, start)
	incrCounter(metricSyncs, 1)
	return err
}

func (s *Store) syncDir() error {
	return syncDir(s.dir, func(f *os.File) error { return s.sync(f, true) })
}

// hit runs the test crash hook for point.
func (s *Store) hit(point string) error {
	if s.crashHook == nil {
		return nil
	}
	return s.crashHook(point)
}

// fail records err as the store's fatal error and returns it.
func (s *Store) fail(err error) error {
	if s.failed.CompareAndSwap(nil, &err) {
		s.logger.Error("write failed; the store refuses further writes until it is reopened", "error", err)
		incrCounter([]string{"raft", "wal", "failed"}, 1)
	}
	return err
}

// writable returns why a write cannot proceed, or nil.
func (s *Store) writable() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if p := s.failed.Load(); p != nil {
		return fmt.Errorf("wal: store is unusable after an earlier write failure (reopen it to recover): %w", *p)
	}
	return nil
}

// Close releases the files and the directory lock. Every later call,
// including a second Close, returns ErrClosed.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return ErrClosed
	}
	var errs []error
	for _, g := range s.segments {
		errs = append(errs, g.f.Close())
	}
	s.segments = nil
	s.cache.release()
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// IsMonotonic reports true: the store refuses gaps, so Raft deletes the whole
// log after installing a snapshot instead of leaving one.
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex returns the index of the oldest entry, or 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.firstIndex, nil
}

// LastIndex returns the index of the newest entry, or 0 for an empty log.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.lastIndex, nil
}

// GetLog reads the entry at index into out, or returns raft.ErrLogNotFound.
// Recent entries come from memory; older ones are read from their segment
// and their checksum verified. out's Data and Extensions are never shared
// with the store or with other calls.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	if out == nil {
		return errors.New("wal: GetLog: nil *raft.Log")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if s.lastIndex == 0 || index < s.firstIndex || index > s.lastIndex {
		return raft.ErrLogNotFound
	}
	if b, ok := s.cache.get(index); ok {
		// The arena is reused: the entry's bytes are copied out.
		return decodeEntry(b, index, out, false, true)
	}
	g := s.segmentHolding(index)
	loc := g.locs[index-g.first]
	buf := make([]byte, loc.n)
	if _, err := g.f.ReadAt(buf, int64(loc.off)); err != nil {
		return fmt.Errorf("wal: read entry %d from %s at offset %d: %w", index, g.path, loc.off, err)
	}
	incrCounter([]string{"raft", "wal", "readDisk"}, 1)
	if err := decodeEntry(buf, index, out, true, false); err != nil {
		return fmt.Errorf("wal: entry %d in %s at offset %d: %w", index, g.path, loc.off, err)
	}
	return nil
}

// segmentHolding returns the segment whose entries include index, which
// must be within [firstIndex, lastIndex]. Callers hold mu.
func (s *Store) segmentHolding(index uint64) *segment {
	// Only the last segment can be empty, and its first is then above
	// lastIndex, so the last segment starting at or below index holds it.
	i := sort.Search(len(s.segments), func(i int) bool { return s.segments[i].first > index })
	return s.segments[i-1]
}

// StoreLog stores one entry; see StoreLogs.
func (s *Store) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends a batch with one write and one sync, and returns only
// once the batch is durable (per Options.Sync). Indexes must be contiguous
// and follow LastIndex; into an empty log the first batch may start
// anywhere above 0. A refused batch changes nothing; an I/O error makes the
// store refuse all later writes.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if len(logs) == 0 {
		return nil
	}
	start := time.Now()
	size := frameHeaderSize
	for i, l := range logs {
		switch {
		case l == nil:
			return fmt.Errorf("wal: StoreLogs: entry %d of the batch is nil", i)
		case l.Index == 0:
			return errors.New("wal: StoreLogs: index 0 is not a valid log index")
		case i > 0 && l.Index != logs[i-1].Index+1:
			return fmt.Errorf("wal: StoreLogs: batch is not contiguous: index %d follows %d", l.Index, logs[i-1].Index)
		case len(l.Data) > MaxBatchBytes || len(l.Extensions) > MaxBatchBytes:
			return fmt.Errorf("wal: StoreLogs: entry %d is larger than the %d byte batch limit", l.Index, MaxBatchBytes)
		}
		size += encodedEntrySize(l)
		if size > MaxBatchBytes {
			return fmt.Errorf("wal: StoreLogs: batch is larger than the %d byte limit", MaxBatchBytes)
		}
	}
	first := logs[0].Index
	if s.lastIndex != 0 && first != s.lastIndex+1 {
		return fmt.Errorf("wal: StoreLogs: batch starts at index %d but the log ends at %d (gaps and overwrites are refused; delete the tail first)", first, s.lastIndex)
	}

	// The frame is encoded once, into the cache's arena when it fits
	// there (it is then cached without a copy), else into a reused buffer.
	var frame []byte
	var framePos uint64
	cached := s.cache.enabled(size)
	if cached {
		s.mu.Lock()
		frame, framePos = s.cache.reserve(size)
		s.mu.Unlock()
	} else {
		if cap(s.writeBuf) < size {
			s.writeBuf = make([]byte, size)
		}
		frame = s.writeBuf[:size]
	}
	off := frameHeaderSize
	for _, l := range logs {
		n := encodedEntrySize(l)
		putEntry(frame[off:off+n], l)
		off += n
	}
	putFrameHeader(frame, uint32(len(logs)), first)

	g, err := s.segmentFor(first, len(frame))
	if err != nil {
		return err
	}
	if _, err := g.f.WriteAt(frame, g.size); err != nil {
		return s.fail(fmt.Errorf("wal: write %s at offset %d: %w", g.path, g.size, err))
	}
	if err := s.zeroAhead(g, g.size+int64(len(frame))); err != nil {
		return s.fail(err)
	}
	if err := s.hit("append.written"); err != nil {
		return s.fail(err)
	}
	if err := s.syncFile(g.f); err != nil {
		return s.fail(fmt.Errorf("wal: sync %s: %w", g.path, err))
	}

	s.mu.Lock()
	if g.empty() {
		g.first = first
	}
	off = frameHeaderSize
	for _, l := range logs {
		n := encodedEntrySize(l)
		g.locs = append(g.locs, entryLoc{off: uint32(g.size) + uint32(off), n: uint32(n)})
		if cached {
			s.cache.add(l.Index, framePos+uint64(off), n)
		}
		off += n
	}
	g.size += int64(len(frame))
	if s.firstIndex == 0 {
		s.firstIndex = first
	}
	s.lastIndex = logs[len(logs)-1].Index
	s.mu.Unlock()

	measureSince(metricAppend, start)
	incrCounter(metricAppendEntries, float32(len(logs)))
	incrCounter(metricAppendBytes, float32(len(frame)))
	return nil
}

// segmentFor returns the segment the next frame goes to, starting the log or
// a new segment when needed. Called by the writer.
func (s *Store) segmentFor(first uint64, frameLen int) (*segment, error) {
	var active *segment
	if n := len(s.segments); n > 0 {
		active = s.segments[n-1]
	}
	if s.lastIndex == 0 {
		if active != nil && active.empty() && active.base == first && len(s.segments) == 1 {
			return active, nil
		}
		return s.startLog(first)
	}
	if active.size > segmentHeaderSize && active.size+int64(frameLen) > int64(s.opts.SegmentSize) {
		return s.rotate(first)
	}
	return active, nil
}

// createSegment makes a new, empty, durable segment file: header written to
// a temporary name, synced, renamed into place, directory synced. A crash
// leaves either no file, a temporary file (removed on Open), or a complete
// empty segment that the metadata does not name yet (removed on Open).
func (s *Store) createSegment(seq, base uint64) (*segment, error) {
	path := segmentPath(s.dir, seq)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: create segment: %w", err)
	}
	g := &segment{seq: seq, base: base, first: base, path: path, f: f, size: segmentHeaderSize}
	s.preallocate(g)
	if _, err := f.WriteAt(encodeSegmentHeader(segmentHeader{seq: seq, base: base}), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: write segment header %s: %w", tmp, err)
	}
	if err := s.syncFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: sync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: rename %s: %w", tmp, err)
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: sync directory %s: %w", s.dir, err)
	}
	s.nextSeq = seq + 1
	return g, nil
}

// rotate starts a new segment at index first. The segment is named in the
// metadata before any entry goes into it, so an unnamed segment found on
// Open never holds an acknowledged entry.
func (s *Store) rotate(first uint64) (*segment, error) {
	g, err := s.createSegment(s.nextSeq, first)
	if err != nil {
		return nil, s.fail(err)
	}
	if err := s.hit("rotate.created"); err != nil {
		g.f.Close()
		return nil, s.fail(err)
	}
	if err := s.updateMeta(func(m *metaState) { m.activeSeq = g.seq }); err != nil {
		g.f.Close()
		return nil, err
	}
	s.mu.Lock()
	old := s.segments[len(s.segments)-1]
	s.segments = append(s.segments, g)
	s.mu.Unlock()
	// The old segment keeps no reserved space: its file ends at its last
	// frame, as recovery expects of older segments. Nothing depends on
	// this being durable (a zero tail also reads as the end of the frames).
	if err := old.f.Truncate(old.size); err != nil {
		s.logger.Warn("could not release the reserved space of a full segment", "segment", old.path, "error", err)
	}
	incrCounter([]string{"raft", "wal", "segmentRotations"}, 1)
	s.logger.Debug("started a new segment", "segment", g.path, "first_index", first)
	return g, s.hit("rotate.named")
}

// startLog begins an empty log at index first: a new segment, then the
// metadata naming it and recording first as the head, then removal of any
// empty segment left from before.
func (s *Store) startLog(first uint64) (*segment, error) {
	g, err := s.createSegment(s.nextSeq, first)
	if err != nil {
		return nil, s.fail(err)
	}
	if err := s.hit("start.created"); err != nil {
		g.f.Close()
		return nil, s.fail(err)
	}
	if err := s.updateMeta(func(m *metaState) { m.head, m.activeSeq = first, g.seq }); err != nil {
		g.f.Close()
		return nil, err
	}
	s.mu.Lock()
	old := s.segments
	s.segments = []*segment{g}
	s.mu.Unlock()
	if err := s.removeSegments(old, "start.removed"); err != nil {
		return nil, err
	}
	return g, nil
}
