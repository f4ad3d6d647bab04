//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// TestRepeatedInstallSnapshotKeepsTheEntriesAfterIt: a follower that holds
// an installed snapshot, and has acknowledged entries after it, answers a
// repeat of that snapshot's InstallSnapshot (a retry whose first attempt
// it served) without touching its log or its FSM: its log matches at the
// snapshot's last entry, so the entries after it stay (§7). Emptying the
// log there would drop entries the leader has counted towards commitment.
func TestRepeatedInstallSnapshotKeepsTheEntriesAfterIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		transports := newSnapshotTransports()
		c := newTestCluster(t, 3, clusterOptions{tweak: snapshotOften, wrapTransport: transports.wrap})
		defer c.close()
		leader, lagging, fsm, _ := catchUpByInstallSnapshot(t, c, transports, 300)

		// Entries after the installed snapshot, acknowledged by the follower.
		applyN(t, leader.raft, "after", 10)
		c.waitApplied(330, lagging)
		snapshotIndex, snapshotTerm := lagging.raft.getLastSnapshot()
		lastIndex := lagging.raft.getLastIndex()
		require.Greater(t, lastIndex, snapshotIndex)
		restores := fsm.restores.Load()

		// The same snapshot again, from the follower's own copy of it.
		metas, err := lagging.snaps.List()
		require.NoError(t, err)
		var meta *SnapshotMeta
		for _, m := range metas {
			if m.Index == snapshotIndex && m.Term == snapshotTerm {
				meta = m
			}
		}
		require.NotNil(t, meta, "the follower keeps the snapshot it installed")
		_, data, err := lagging.snaps.Open(meta.ID)
		require.NoError(t, err)
		defer data.Close()
		req := &InstallSnapshotRequest{
			RPCHeader:          leader.raft.header(),
			SnapshotVersion:    meta.Version,
			Term:               leader.raft.getCurrentTerm(),
			Leader:             []byte(leader.addr),
			LastLogIndex:       meta.Index,
			LastLogTerm:        meta.Term,
			Configuration:      EncodeConfiguration(meta.Configuration),
			ConfigurationIndex: meta.ConfigurationIndex,
			Size:               meta.Size,
		}
		var resp InstallSnapshotResponse
		require.NoError(t, leader.trans.InstallSnapshot(lagging.id, lagging.addr, req, &resp, data))
		require.True(t, resp.Success)

		require.Equal(t, lastIndex, lagging.raft.getLastIndex(), "the entries after the snapshot are gone")
		for index := snapshotIndex + 1; index <= lastIndex; index++ {
			_, err := lagging.raft.getEntry(index)
			require.NoError(t, err, "entry %d", index)
		}
		require.Equal(t, restores, fsm.restores.Load(), "the FSM was rolled back to the snapshot")
		c.requireSameFSMs(leader, lagging)
	})
}
