package raft

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// FileSnapshotSink receives the data of one snapshot of a FileSnapshotStore.
// Its methods may be called from several goroutines.
type FileSnapshotSink struct {
	store  *FileSnapshotStore
	logger hclog.Logger
	// tmpDir is where the snapshot is written; dir is where Close moves it.
	tmpDir string
	dir    string

	// mu guards everything below.
	mu sync.Mutex
	// meta is written to meta.json; Close fills in Size and CRC.
	meta fileSnapshotMeta
	// state is state.bin, written through buffered, which also feeds hash.
	state    *os.File
	buffered *bufio.Writer
	hash     hash.Hash64
	// size counts the bytes accepted by Write.
	size int64
	// done is set by the first Close or Cancel; closeErr is what that Close
	// returned, and cancelled says Cancel came first.
	done      bool
	cancelled bool
	closeErr  error
	// renamed is set once Close has moved tmpDir to dir.
	renamed bool
}

// errFileSnapshotSinkDone is returned by Write after Close or Cancel.
var errFileSnapshotSinkDone = errors.New("snapshot: write to a closed or cancelled sink")

// ID returns the ID the snapshot will have once it is closed.
func (s *FileSnapshotSink) ID() string {
	return s.meta.ID
}

// Write appends p to the snapshot's data.
func (s *FileSnapshotSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, errFileSnapshotSinkDone
	}
	n, err := s.buffered.Write(p)
	s.size += int64(n)
	return n, err
}

// Close makes the snapshot durable and visible: it flushes and fsyncs
// state.bin, records its size and CRC in meta.json (fsynced too), renames
// the directory into place and fsyncs the parent, then reaps old snapshots.
// On failure the partial snapshot is removed and an error returned. Calling
// Close again returns the first call's result; Close after Cancel fails,
// since nothing was saved.
func (s *FileSnapshotSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		if s.cancelled {
			return errors.New("snapshot: close of a cancelled sink")
		}
		return s.closeErr
	}
	s.done = true

	if err := s.persist(); err != nil {
		s.closeErr = err
		s.logger.Error("failed to finish snapshot", "id", s.meta.ID, "error", err)
		// Only a directory this sink renamed into place is its own to
		// remove; if the rename failed, the final name is someone else's.
		dir := s.tmpDir
		if s.renamed {
			dir = s.dir
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			s.logger.Error("failed to remove partial snapshot", "path", dir, "error", rmErr)
		}
		s.store.finishWriting(s.tmpDir)
		return err
	}
	s.store.finishWriting(s.tmpDir)

	// The snapshot is durable; failing to delete old ones does not undo
	// that, so it is logged rather than returned.
	if err := s.store.ReapSnapshots(); err != nil {
		s.logger.Error("failed to reap old snapshots", "error", err)
	}
	return nil
}

// persist runs the durable part of Close.
func (s *FileSnapshotSink) persist() error {
	if err := s.buffered.Flush(); err != nil {
		s.state.Close()
		return fmt.Errorf("snapshot: write %s: %w", fileSnapshotStateFile, err)
	}
	if err := s.state.Sync(); err != nil {
		s.state.Close()
		return fmt.Errorf("snapshot: sync %s: %w", fileSnapshotStateFile, err)
	}
	if err := s.state.Close(); err != nil {
		return fmt.Errorf("snapshot: close %s: %w", fileSnapshotStateFile, err)
	}

	s.meta.Size = s.size
	s.meta.CRC = s.hash.Sum(nil)
	if err := writeFileSnapshotMeta(filepath.Join(s.tmpDir, fileSnapshotMetaFile), &s.meta, true); err != nil {
		return err
	}
	// The directory's own entries (state.bin, meta.json) must be durable
	// before the rename publishes it.
	if err := syncFileSnapshotDir(s.tmpDir); err != nil {
		return err
	}
	if err := os.Rename(s.tmpDir, s.dir); err != nil {
		return fmt.Errorf("snapshot: rename %s: %w", s.tmpDir, err)
	}
	s.renamed = true
	return syncFileSnapshotDir(filepath.Dir(s.dir))
}

// Cancel abandons the snapshot and removes its directory. It does nothing
// after Close or an earlier Cancel, so it is safe to defer.
func (s *FileSnapshotSink) Cancel() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	s.cancelled = true

	closeErr := s.state.Close()
	err := os.RemoveAll(s.tmpDir)
	s.store.finishWriting(s.tmpDir)
	if err != nil {
		return fmt.Errorf("snapshot: remove %s: %w", s.tmpDir, err)
	}
	if closeErr != nil && !errors.Is(closeErr, os.ErrClosed) {
		return fmt.Errorf("snapshot: close %s: %w", fileSnapshotStateFile, closeErr)
	}
	return nil
}

// writeFileSnapshotMeta (re)writes meta.json as one line of JSON, fsyncing it
// when sync is set.
func writeFileSnapshotMeta(name string, meta *fileSnapshotMeta, sync bool) error {
	encoded, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("snapshot: encode metadata: %w", err)
	}
	encoded = append(encoded, '\n')
	file, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("snapshot: create %s: %w", fileSnapshotMetaFile, err)
	}
	if _, err := file.Write(encoded); err != nil {
		file.Close()
		return fmt.Errorf("snapshot: write %s: %w", fileSnapshotMetaFile, err)
	}
	if sync {
		if err := file.Sync(); err != nil {
			file.Close()
			return fmt.Errorf("snapshot: sync %s: %w", fileSnapshotMetaFile, err)
		}
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("snapshot: close %s: %w", fileSnapshotMetaFile, err)
	}
	return nil
}

// syncFileSnapshotDir fsyncs a directory so that entries created, removed or renamed in
// it survive a crash. Windows cannot open a directory for syncing and does
// not need it, so there it does nothing.
func syncFileSnapshotDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("snapshot: open directory %s for sync: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("snapshot: sync directory %s: %w", dir, err)
	}
	return d.Close()
}
