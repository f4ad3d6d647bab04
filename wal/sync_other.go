//go:build !linux

package wal

import "os"

// syncData falls back to a full fsync where fdatasync is not available (on
// macOS, os.File.Sync issues F_FULLFSYNC, which is what durability needs).
func syncData(f *os.File) error { return f.Sync() }
