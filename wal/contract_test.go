//go:build go1.25

package wal

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/rafttest/storetest"
	"github.com/stretchr/testify/require"
)

// These run on real files in t.TempDir() with real syncs: the contract is
// checked against the store as it runs in production.

func TestStoreLogStoreContract(t *testing.T) {
	for _, o := range []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"with a cache", Options{CacheSize: 1 << 20}},
		{"tiny cache", Options{CacheSize: 256}},
		{"tiny segments, no cache", Options{SegmentSize: 512, CacheSize: -1}},
	} {
		t.Run(o.name, func(t *testing.T) {
			storetest.TestLogStore(t, func(t *testing.T) raft.LogStore { return openTestStore(t, t.TempDir(), o.opts) })
		})
	}
}

func TestStoreStableStoreContract(t *testing.T) {
	storetest.TestStableStore(t, func(t *testing.T) raft.StableStore { return openTestStore(t, t.TempDir(), Options{}) })
}

// openTestStore opens a store in dir that logs to the test and is closed
// when the test ends (unless the test closed it itself).
func openTestStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "wal", Output: hclog.DefaultOutput, Level: hclog.Warn})
	}
	s, err := Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}
