//go:build linux

package wal

import (
	"os"
	"syscall"
)

// allocate reserves [off, off+n) of f on disk, extending its size, so that
// later writes there need no new blocks.
func allocate(f *os.File, off, n int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, off, n)
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
