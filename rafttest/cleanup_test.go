//go:build go1.25

package rafttest

import (
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// cleanupOrder is a testing.TB whose cleanups the test runs itself, in
// the order testing would (the last registered first), and whose TempDir
// notes, when its directory is removed, which of the cluster's nodes were
// still running.
type cleanupOrder struct {
	testing.TB
	cleanups []func()
	cluster  *Cluster
	// runningAtRemoval lists the nodes still up when the directory went.
	runningAtRemoval []raft.ServerID
	removed          bool
}

func (o *cleanupOrder) Cleanup(f func()) { o.cleanups = append(o.cleanups, f) }

func (o *cleanupOrder) TempDir() string {
	dir, err := os.MkdirTemp(o.TB.TempDir(), "cluster")
	require.NoError(o.TB, err)
	o.Cleanup(func() {
		for _, n := range o.cluster.Nodes() {
			if r := n.Raft(); r != nil && r.State() != raft.Shutdown {
				o.runningAtRemoval = append(o.runningAtRemoval, n.ID())
			}
		}
		o.removed = true
		require.NoError(o.TB, os.RemoveAll(dir))
	})
	return dir
}

func (o *cleanupOrder) runCleanups() {
	for i := len(o.cleanups) - 1; i >= 0; i-- {
		o.cleanups[i]()
	}
}

// TestClusterStopsBeforeItsDirectoriesAreRemoved: a cluster on wal stores
// closed by test cleanup must stop its nodes before the directory they
// write in is removed, or a node creating a file meanwhile makes the
// removal fail.
func TestClusterStopsBeforeItsDirectoriesAreRemoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := &cleanupOrder{TB: t}
		o.cluster = NewCluster(o, Options{Voters: 3, Store: WALStores})
		o.cluster.WaitForLeader()
		nodeDir := filepath.Dir(o.cluster.Nodes()[0].dir)
		o.runCleanups()
		require.True(t, o.removed, "the cluster made no temporary directory")
		require.Empty(t, o.runningAtRemoval, "nodes still running when their directory was removed")
		_, err := os.Stat(nodeDir)
		require.True(t, os.IsNotExist(err), "the nodes' directory is left behind: %v", err)
	})
}
