//go:build !linux

package wal

import (
	"errors"
	"os"
)

// errNoAllocate says the platform cannot reserve file space; segments then
// grow with every write.
var errNoAllocate = errors.New("fallocate is not available on this platform")

func allocate(f *os.File, off, n int64) error { return errNoAllocate }
