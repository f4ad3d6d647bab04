package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
)

// Set durably stores val under key: the whole key space is written to a
// temporary file, synced, renamed over the metadata file, and the directory
// synced, so a crash leaves either the old or the new value.
func (s *Store) Set(key, val []byte) error {
	if len(key) == 0 {
		return errors.New("wal: Set: empty key")
	}
	if len(key) > MaxKeySize || len(val) > MaxValueSize {
		return fmt.Errorf("wal: Set: key of %d bytes or value of %d bytes exceeds the limits (%d, %d)", len(key), len(val), MaxKeySize, MaxValueSize)
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	next := s.meta
	next.kv = maps.Clone(s.meta.kv)
	next.kv[string(key)] = append([]byte{}, val...)
	return s.writeMeta(next)
}

// Get returns a copy of the value stored under key, or ErrKeyNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if s.closed.Load() {
		return nil, ErrClosed
	}
	v, ok := s.meta.kv[string(key)]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return append([]byte{}, v...), nil
}

// SetUint64 durably stores val under key as 8 little-endian bytes.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.LittleEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value stored under key by SetUint64, or
// ErrKeyNotFound. A value of another length is an error.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("wal: GetUint64: value of key %q is %d bytes, not 8", key, len(v))
	}
	return binary.LittleEndian.Uint64(v), nil
}

// updateMeta durably applies change to the log fields of the metadata.
func (s *Store) updateMeta(change func(*metaState)) error {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	next := s.meta
	change(&next)
	return s.writeMeta(next)
}

// writeMeta replaces the metadata file with next. Callers hold metaMu. Any
// failure is fatal for the store: after a failed sync the file's state is
// unknown.
func (s *Store) writeMeta(next metaState) error {
	path := filepath.Join(s.dir, metaName)
	tmp := path + tmpSuffix
	b := encodeMeta(next)
	err := func() error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if err := s.syncFile(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := s.hit("meta.written"); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		return s.syncDir()
	}()
	if err != nil {
		return s.fail(fmt.Errorf("wal: write metadata %s: %w", path, err))
	}
	s.meta = next
	incrCounter([]string{"raft", "wal", "metaWrites"}, 1)
	return nil
}
