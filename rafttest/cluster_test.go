//go:build go1.25

package rafttest

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// put applies a KV put through the cluster and fails the test on error.
func put(t *testing.T, c *Cluster, key, value string) uint64 {
	t.Helper()
	f, err := c.Apply(EncodeKV(KVInput{Op: KVPut, Key: key, Value: value}), time.Second)
	require.NoError(t, err, "put %s=%s", key, value)
	require.Equal(t, KVOutput{OK: true}, f.Response())
	return f.Index()
}

func TestClusterReplicatesToEveryNode(t *testing.T) {
	for _, kind := range []StoreKind{MemStores, WALStores} {
		t.Run(kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewCluster(t, Options{Voters: 3, Nonvoters: 1, Store: kind})
				c.WaitForLeader()
				var last uint64
				for i := range 10 {
					last = put(t, c, fmt.Sprintf("k%d", i%3), fmt.Sprint(i))
				}
				c.WaitForApplied(last)
				c.CheckConsistent()
				for _, n := range c.Nodes() {
					require.Equal(t, "9", n.FSM().(*KV).Get("k0"), "node %s", n.ID())
				}
			})
		})
	}
}
