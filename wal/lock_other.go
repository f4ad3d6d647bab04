//go:build !unix

package wal

import (
	"fmt"
	"os"
)

// lockDir creates dir/LOCK; on platforms without flock the store relies on
// the caller to open a directory from one place only.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: open lock file: %w", err)
	}
	return f, nil
}
