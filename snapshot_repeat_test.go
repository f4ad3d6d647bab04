//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

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
		leader := c.leader()
		lagging := c.others(leader)[0]
		fsm := restartCounting(c, lagging)
		leader = c.leader()
		applyN(t, leader.raft, "before", 20)
		c.waitApplied(20)

		c.isolate(lagging)
		applyN(t, leader.raft, "during", 300)
		c.waitApplied(320, leader)
		next := lagging.raft.LastIndex() + 1
		c.waitFor(10*time.Second, fmt.Sprintf("the leader to compact away entry %d", next), func() bool {
			_, err := leader.raft.getEntry(next)
			return errors.Is(err, ErrLogNotFound)
		})
		c.fullyConnect()
		c.waitApplied(320, lagging)
		transports.waitInstalled(c, lagging, "the follower caught up without an InstallSnapshot")

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
