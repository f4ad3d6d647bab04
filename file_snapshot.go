package raft

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// On disk, a FileSnapshotStore keeps one directory per snapshot under
// <base>/snapshots, named <term>-<index>-<unix-ms>. A directory whose name
// ends in ".tmp" is still being written (or was abandoned by a crash) and is
// never listed. Each directory holds the FSM's bytes in state.bin and a
// one-line JSON document, meta.json, with the SnapshotMeta fields plus the
// CRC-64 (ECMA) of state.bin.
const (
	fileSnapshotDirName   = "snapshots"
	fileSnapshotStateFile = "state.bin"
	fileSnapshotMetaFile  = "meta.json"
	fileSnapshotTmpSuffix = ".tmp"
	fileSnapshotPermTest  = "permTest"

	// fileSnapshotMetaLimit bounds how much of a meta.json is read; a real
	// one is a few kilobytes even for large clusters, so anything near this
	// size is corrupt.
	fileSnapshotMetaLimit = 16 << 20

	// fileSnapshotBufferSize is the buffer used for state.bin in both
	// directions.
	fileSnapshotBufferSize = 64 << 10

	// fileSnapshotIDAttempts bounds the search for an unused directory name
	// in Create.
	fileSnapshotIDAttempts = 1000
)

// The store and its sink implement the interfaces raft uses.
var (
	_ SnapshotStore = (*FileSnapshotStore)(nil)
	_ SnapshotSink  = (*FileSnapshotSink)(nil)
)

// fileSnapshotCRCTable is the CRC-64 polynomial recorded in meta.json (ECMA-182).
var fileSnapshotCRCTable = crc64.MakeTable(crc64.ECMA)

// FileSnapshotStore is the durable SnapshotStore: snapshots are written to a
// temporary directory, checksummed, fsynced and renamed into place, and a
// reader verifies the checksum before any byte reaches the FSM. It keeps the
// newest retain snapshots. Create, List, Open and ReapSnapshots may be called
// from several goroutines at once.
type FileSnapshotStore struct {
	// path is <base>/snapshots; fixed at construction.
	path string
	// retain is how many complete snapshots List returns and reaping keeps;
	// fixed at construction, at least 1.
	retain int
	logger hclog.Logger

	// mu guards the fields below and serialises reaping, so two sinks
	// closing at once do not both delete (and report) the same directories.
	mu sync.Mutex
	// lastMillis is the timestamp part of the last ID handed out; new IDs
	// use a strictly larger one so that two snapshots of the same term and
	// index created in the same millisecond still get distinct names.
	lastMillis int64
	// writing holds the temporary directory names of sinks that are neither
	// closed nor cancelled; reaping never touches them.
	writing map[string]struct{}
}

// fileSnapshotMeta is the content of meta.json. The embedded SnapshotMeta
// puts its fields first, in declaration order, followed by CRC: the layout
// hashicorp/raft writes and reads.
type fileSnapshotMeta struct {
	SnapshotMeta
	// CRC is the big-endian CRC-64 (ECMA) of state.bin; JSON encodes it as
	// base64. It is null until the sink is closed.
	CRC []byte
}

// NewFileSnapshotStore creates a store under base that keeps retain
// snapshots and logs to logOutput (os.Stderr if nil).
func NewFileSnapshotStore(base string, retain int, logOutput io.Writer) (*FileSnapshotStore, error) {
	if logOutput == nil {
		logOutput = os.Stderr
	}
	return NewFileSnapshotStoreWithLogger(base, retain, hclog.New(&hclog.LoggerOptions{
		Name:   "snapshot",
		Output: logOutput,
		Level:  hclog.DefaultLevel,
	}))
}

// NewFileSnapshotStoreWithLogger creates a store under base that keeps retain
// snapshots and logs through logger (a default stderr logger if nil). It
// creates <base>/snapshots if needed and checks that files can be created
// there.
func NewFileSnapshotStoreWithLogger(base string, retain int, logger hclog.Logger) (*FileSnapshotStore, error) {
	if retain < 1 {
		return nil, errors.New("must retain at least one snapshot")
	}
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{
			Name:   "snapshot",
			Output: hclog.DefaultOutput,
			Level:  hclog.DefaultLevel,
		})
	}
	path := filepath.Join(base, fileSnapshotDirName)
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: create directory %s: %w", path, err)
	}
	if err := checkFileSnapshotDirWritable(path); err != nil {
		return nil, fmt.Errorf("permissions test failed: %w", err)
	}
	return &FileSnapshotStore{
		path:    path,
		retain:  retain,
		logger:  logger,
		writing: make(map[string]struct{}),
	}, nil
}

// checkFileSnapshotDirWritable creates and removes a file in dir, so that a read-only
// directory is reported at start-up rather than at the first snapshot.
func checkFileSnapshotDirWritable(dir string) error {
	name := filepath.Join(dir, fileSnapshotPermTest)
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Remove(name)
}

// Create starts a snapshot in a new temporary directory. Only version 1 can
// be created. The snapshot becomes visible to List and Open once the sink's
// Close returns nil.
func (f *FileSnapshotStore) Create(version SnapshotVersion, index, term uint64, configuration Configuration,
	configurationIndex uint64, trans Transport) (SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}

	// Peers is the legacy peer list old readers rebuild the configuration
	// from; it needs the transport's address encoding, so without a
	// transport it is left empty.
	var peers []byte
	if trans != nil {
		peers = encodePeers(configuration, trans)
	}

	id, tmpDir, err := f.makeSnapshotDir(term, index)
	if err != nil {
		return nil, err
	}

	sink := &FileSnapshotSink{
		store:  f,
		logger: f.logger,
		tmpDir: tmpDir,
		dir:    filepath.Join(f.path, id),
		meta: fileSnapshotMeta{SnapshotMeta: SnapshotMeta{
			Version:            version,
			ID:                 id,
			Index:              index,
			Term:               term,
			Peers:              peers,
			Configuration:      configuration.Clone(),
			ConfigurationIndex: configurationIndex,
		}},
		hash: crc64.New(fileSnapshotCRCTable),
	}

	// meta.json is written at once so that an abandoned directory still
	// says what it was meant to hold; the final version replaces it in
	// Close.
	if err := writeFileSnapshotMeta(filepath.Join(tmpDir, fileSnapshotMetaFile), &sink.meta, false); err != nil {
		f.abandon(tmpDir)
		return nil, err
	}
	state, err := os.OpenFile(filepath.Join(tmpDir, fileSnapshotStateFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		f.abandon(tmpDir)
		return nil, fmt.Errorf("snapshot: create %s: %w", fileSnapshotStateFile, err)
	}
	sink.state = state
	sink.buffered = bufio.NewWriterSize(io.MultiWriter(state, sink.hash), fileSnapshotBufferSize)

	f.logger.Info("creating new snapshot", "path", tmpDir)
	return sink, nil
}

// makeSnapshotDir creates the temporary directory of a new snapshot and
// registers it as being written. The name is <term>-<index>-<unix-ms>; the
// millisecond part is moved forward when needed so that no two snapshots,
// from this store or from an earlier run, share a name.
func (f *FileSnapshotStore) makeSnapshotDir(term, index uint64) (id, tmpDir string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()

	millis := max(time.Now().UnixMilli(), f.lastMillis+1)
	for range fileSnapshotIDAttempts {
		id = fileSnapshotName(term, index, millis)
		tmpDir = filepath.Join(f.path, id+fileSnapshotTmpSuffix)
		millis++
		if _, statErr := os.Lstat(filepath.Join(f.path, id)); statErr == nil {
			continue // a finished snapshot already has this name
		} else if !errors.Is(statErr, os.ErrNotExist) {
			return "", "", fmt.Errorf("snapshot: check %s: %w", id, statErr)
		}
		if err := os.Mkdir(tmpDir, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue // another writer took this name
			}
			return "", "", fmt.Errorf("snapshot: create directory %s: %w", tmpDir, err)
		}
		f.lastMillis = millis - 1
		f.writing[filepath.Base(tmpDir)] = struct{}{}
		return id, tmpDir, nil
	}
	return "", "", fmt.Errorf("snapshot: no free name for term %d index %d after %d attempts",
		term, index, fileSnapshotIDAttempts)
}

// fileSnapshotName formats a snapshot ID.
func fileSnapshotName(term, index uint64, millis int64) string {
	return fmt.Sprintf("%d-%d-%d", term, index, millis)
}

// parseFileSnapshotName returns the term and index encoded in a snapshot
// directory name (without any .tmp suffix).
func parseFileSnapshotName(name string) (term, index uint64, ok bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 {
		return 0, 0, false
	}
	term, err1 := strconv.ParseUint(parts[0], 10, 64)
	index, err2 := strconv.ParseUint(parts[1], 10, 64)
	_, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return term, index, true
}

// finishWriting forgets a temporary directory once its sink is closed or
// cancelled.
func (f *FileSnapshotStore) finishWriting(tmpDir string) {
	f.mu.Lock()
	delete(f.writing, filepath.Base(tmpDir))
	f.mu.Unlock()
}

// abandon removes a temporary directory whose creation failed half way.
func (f *FileSnapshotStore) abandon(tmpDir string) {
	if err := os.RemoveAll(tmpDir); err != nil {
		f.logger.Error("failed to remove abandoned snapshot directory", "path", tmpDir, "error", err)
	}
	f.finishWriting(tmpDir)
}

// List returns the metadata of the complete snapshots, newest first (by
// term, then index, then ID), at most retain of them. Directories that are
// still being written, whose metadata cannot be read, or whose version is
// not understood are left out (and logged).
func (f *FileSnapshotStore) List() ([]*SnapshotMeta, error) {
	metas, err := f.listAll()
	if err != nil {
		return nil, err
	}
	if len(metas) > f.retain {
		metas = metas[:f.retain]
	}
	out := make([]*SnapshotMeta, len(metas))
	for i, m := range metas {
		out[i] = &m.SnapshotMeta
	}
	return out, nil
}

// listAll returns every readable complete snapshot, newest first.
func (f *FileSnapshotStore) listAll() ([]*fileSnapshotMeta, error) {
	entries, err := os.ReadDir(f.path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: list %s: %w", f.path, err)
	}
	var metas []*fileSnapshotMeta
	for _, entry := range entries {
		name := entry.Name()
		if !entry.IsDir() || strings.HasSuffix(name, fileSnapshotTmpSuffix) {
			continue
		}
		meta, err := f.readMeta(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by a concurrent reap since ReadDir
			}
			f.logger.Warn("skipping snapshot with unreadable metadata", "id", name, "error", err)
			continue
		}
		if meta.Version < SnapshotVersionMin || meta.Version > SnapshotVersionMax {
			f.logger.Warn("skipping snapshot with unsupported version", "id", name, "version", meta.Version)
			continue
		}
		metas = append(metas, meta)
	}
	slices.SortFunc(metas, func(a, b *fileSnapshotMeta) int {
		return -cmp.Or(
			cmp.Compare(a.Term, b.Term),
			cmp.Compare(a.Index, b.Index),
			strings.Compare(a.ID, b.ID),
		)
	})
	return metas, nil
}

// readMeta reads and checks the meta.json of the snapshot directory name.
func (f *FileSnapshotStore) readMeta(name string) (*fileSnapshotMeta, error) {
	file, err := os.Open(filepath.Join(f.path, name, fileSnapshotMetaFile))
	if err != nil {
		return nil, err
	}
	defer file.Close()

	raw, err := io.ReadAll(io.LimitReader(file, fileSnapshotMetaLimit+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot: read metadata of %s: %w", name, err)
	}
	if len(raw) > fileSnapshotMetaLimit {
		return nil, fmt.Errorf("snapshot: metadata of %s is larger than %d bytes", name, fileSnapshotMetaLimit)
	}
	meta := new(fileSnapshotMeta)
	if err := json.Unmarshal(raw, meta); err != nil {
		return nil, fmt.Errorf("snapshot: decode metadata of %s: %w", name, err)
	}
	switch {
	case meta.ID != name:
		return nil, fmt.Errorf("snapshot: metadata of %s names snapshot %q", name, meta.ID)
	case meta.Size < 0:
		return nil, fmt.Errorf("snapshot: metadata of %s has negative size %d", name, meta.Size)
	case len(meta.CRC) != crc64.Size:
		return nil, fmt.Errorf("snapshot: metadata of %s has a %d-byte CRC, want %d", name, len(meta.CRC), crc64.Size)
	}
	return meta, nil
}

// validFileSnapshotID reports whether id can name a complete snapshot directory
// directly under the store, so that Open cannot be pointed elsewhere.
func validFileSnapshotID(id string) bool {
	return id != "" && id != "." && id != ".." &&
		!strings.ContainsAny(id, `/\`) && filepath.Base(id) == id &&
		!strings.HasSuffix(id, fileSnapshotTmpSuffix)
}

// Open returns the metadata of snapshot id and a buffered reader of its
// data, after checking that state.bin has the recorded size and CRC. The
// data is read twice (once to check, once by the caller) and never held in
// memory as a whole. The caller closes the reader.
func (f *FileSnapshotStore) Open(id string) (*SnapshotMeta, io.ReadCloser, error) {
	if !validFileSnapshotID(id) {
		return nil, nil, fmt.Errorf("snapshot: invalid snapshot id %q", id)
	}
	meta, err := f.readMeta(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("snapshot: open %s: %w", id, err)
		}
		return nil, nil, err
	}
	if meta.Version < SnapshotVersionMin || meta.Version > SnapshotVersionMax {
		return nil, nil, fmt.Errorf("snapshot: open %s: unsupported snapshot version %d", id, meta.Version)
	}

	state, err := os.Open(filepath.Join(f.path, id, fileSnapshotStateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot: open %s: %w", id, err)
	}
	if err := checkFileSnapshotState(state, meta); err != nil {
		state.Close()
		return nil, nil, fmt.Errorf("snapshot: open %s: %w", id, err)
	}
	if _, err := state.Seek(0, io.SeekStart); err != nil {
		state.Close()
		return nil, nil, fmt.Errorf("snapshot: open %s: rewind %s: %w", id, fileSnapshotStateFile, err)
	}
	return &meta.SnapshotMeta, &fileSnapshotReader{
		Reader: bufio.NewReaderSize(state, fileSnapshotBufferSize),
		file:   state,
	}, nil
}

// checkFileSnapshotState reads state from its current offset to the end and
// compares its length and CRC with the metadata.
func checkFileSnapshotState(state *os.File, meta *fileSnapshotMeta) error {
	info, err := state.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", fileSnapshotStateFile, err)
	}
	if info.Size() != meta.Size {
		return fmt.Errorf("%s is %d bytes but the metadata records %d (truncated or overwritten)",
			fileSnapshotStateFile, info.Size(), meta.Size)
	}
	hash := crc64.New(fileSnapshotCRCTable)
	n, err := io.CopyBuffer(hash, state, make([]byte, fileSnapshotBufferSize))
	if err != nil {
		return fmt.Errorf("read %s: %w", fileSnapshotStateFile, err)
	}
	if n != meta.Size {
		return fmt.Errorf("read %d bytes of %s but the metadata records %d", n, fileSnapshotStateFile, meta.Size)
	}
	if sum := hash.Sum(nil); !bytes.Equal(sum, meta.CRC) {
		return fmt.Errorf("CRC mismatch in %s: computed %x, metadata records %x", fileSnapshotStateFile, sum, meta.CRC)
	}
	return nil
}

// fileSnapshotReader is the buffered reader Open returns; Close closes the file.
type fileSnapshotReader struct {
	*bufio.Reader
	file *os.File
}

// Close closes the underlying state.bin.
func (r *fileSnapshotReader) Close() error {
	return r.file.Close()
}

// ReapSnapshots deletes the complete snapshots beyond the newest retain. It
// also deletes a temporary directory left by an interrupted write when that
// snapshot is older than every retained one (it would be reaped at once if
// it were ever finished) and no sink of this store is writing it.
// Directories with unreadable metadata are left alone for an operator to
// inspect.
func (f *FileSnapshotStore) ReapSnapshots() error {
	f.mu.Lock()
	defer f.mu.Unlock()

	metas, err := f.listAll()
	if err != nil {
		return err
	}
	if len(metas) < f.retain {
		return nil
	}
	var errs []error
	for _, meta := range metas[f.retain:] {
		dir := filepath.Join(f.path, meta.ID)
		f.logger.Info("reaping snapshot", "path", dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("snapshot: reap %s: %w", meta.ID, err))
		}
	}

	oldestKept := metas[f.retain-1]
	entries, err := os.ReadDir(f.path)
	if err != nil {
		errs = append(errs, fmt.Errorf("snapshot: list %s: %w", f.path, err))
		return errors.Join(errs...)
	}
	for _, entry := range entries {
		name := entry.Name()
		base, isTmp := strings.CutSuffix(name, fileSnapshotTmpSuffix)
		if !entry.IsDir() || !isTmp {
			continue
		}
		if _, ok := f.writing[name]; ok {
			continue
		}
		term, index, ok := parseFileSnapshotName(base)
		if !ok || cmp.Or(cmp.Compare(term, oldestKept.Term), cmp.Compare(index, oldestKept.Index)) >= 0 {
			continue
		}
		dir := filepath.Join(f.path, name)
		f.logger.Info("removing abandoned snapshot directory", "path", dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("snapshot: remove abandoned %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
