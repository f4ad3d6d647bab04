//go:build !linux

package benchload

import "os"

// syncData makes f's data durable; without fdatasync this is a full fsync.
func syncData(f *os.File) error { return f.Sync() }
