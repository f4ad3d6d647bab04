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

// bootstrappedStores returns stores holding a bootstrapped single-voter
// cluster of node0: term 1 and the configuration entry at index 1.
func bootstrappedStores(t *testing.T) (*InmemStore, *InmemSnapshotStore, *InmemTransport) {
	t.Helper()
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	_, trans := NewInmemTransport("addr0")
	configuration := Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: "addr0"}}}
	require.NoError(t, BootstrapCluster(testConfig("node0"), store, store, snaps, trans, configuration))
	return store, snaps, trans
}

// TestNewRaftFailsCleanlyOnStoreErrors makes one store call fail at a time
// while NewRaft loads the node's state: NewRaft must return an error that
// names what it was doing and wraps the store's error, return no node,
// start no goroutine (the bubble checks) and never panic.
func TestNewRaftFailsCleanlyOnStoreErrors(t *testing.T) {
	cases := []struct {
		name string
		// method is the faultStore method that fails; "" for the
		// snapshot store's List.
		method  string
		failErr error
		want    string
	}{
		{name: "stable GetUint64", method: "GetUint64", failErr: errInjected, want: "failed to load current term"},
		{name: "log LastIndex", method: "LastIndex", failErr: errInjected, want: "failed to find last log"},
		{name: "log GetLog", method: "GetLog", failErr: errInjected, want: "failed to get last log at index 1"},
		{name: "log GetLog loses the last entry", method: "GetLog", failErr: ErrLogNotFound, want: "failed to get last log at index 1"},
		{name: "log FirstIndex", method: "FirstIndex", failErr: errInjected, want: "failed to read first log index"},
		{name: "snapshot List", failErr: errInjected, want: "failed to list snapshots"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inner, innerSnaps, trans := bootstrappedStores(t)
				store := newFaultStore(inner)
				snaps := &faultSnapshotStore{InmemSnapshotStore: innerSnaps}
				if tc.method == "" {
					snaps.listErr = tc.failErr
				} else {
					store.failOn(tc.method, tc.failErr)
				}
				var r *Raft
				var err error
				require.NotPanics(t, func() {
					r, err = NewRaft(testConfig("node0"), &testFSM{}, store, store, snaps, trans)
				})
				require.Nil(t, r, "NewRaft returned a node with its error")
				require.ErrorIs(t, err, tc.failErr, "NewRaft must wrap the store's error")
				require.ErrorContains(t, err, tc.want)
			})
		})
	}
}

// TestNewRaftTreatsNotFoundAsEmpty checks the convention third-party
// stores rely on: a StableStore whose GetUint64 answers a missing key with
// an error reading "not found" is a store without a term, not a failure.
func TestNewRaftTreatsNotFoundAsEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := newFaultStore(NewInmemStore())
		store.failOn("GetUint64", errors.New("not found"))
		_, trans := NewInmemTransport("addr0")
		r, err := NewRaft(testConfig("node0"), &testFSM{}, store, store, NewInmemSnapshotStore(), trans)
		require.NoError(t, err)
		require.Equal(t, uint64(0), r.CurrentTerm())
		require.NoError(t, r.Shutdown().Error())
	})
}

// TestNewRaftRejectsNilArguments passes each dependency as nil: a clear
// error, not a panic and not a node.
func TestNewRaftRejectsNilArguments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, snaps := NewInmemStore(), NewInmemSnapshotStore()
		_, trans := NewInmemTransport("addr0")
		fsm := &testFSM{}
		cases := []struct {
			name   string
			fsm    FSM
			logs   LogStore
			stable StableStore
			snaps  SnapshotStore
			trans  Transport
		}{
			{name: "fsm", logs: store, stable: store, snaps: snaps, trans: trans},
			{name: "log store", fsm: fsm, stable: store, snaps: snaps, trans: trans},
			{name: "stable store", fsm: fsm, logs: store, snaps: snaps, trans: trans},
			{name: "snapshot store", fsm: fsm, logs: store, stable: store, trans: trans},
			{name: "transport", fsm: fsm, logs: store, stable: store, snaps: snaps},
		}
		for _, tc := range cases {
			var r *Raft
			var err error
			require.NotPanics(t, func() {
				r, err = NewRaft(testConfig("node0"), tc.fsm, tc.logs, tc.stable, tc.snaps, tc.trans)
			}, "NewRaft with a nil %s", tc.name)
			require.Error(t, err, "NewRaft with a nil %s", tc.name)
			require.Nil(t, r, "NewRaft with a nil %s", tc.name)
		}
	})
}

// TestBootstrapClusterRefusesNodeWithState checks ErrCantBootstrap: from a
// running leader and follower, and from the package-level function on
// stores that hold any state at all (a term, a log entry or a snapshot).
func TestBootstrapClusterRefusesNodeWithState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		configuration := leader.raft.GetConfiguration().Configuration()
		for _, node := range c.nodes {
			err := node.raft.BootstrapCluster(configuration).Error()
			require.ErrorIs(t, err, ErrCantBootstrap, "live BootstrapCluster on %s (%v)", node.id, node.raft.State())
		}
		applyN(t, leader.raft, "cmd", 3)
		require.NoError(t, leader.raft.Snapshot().Error())

		withTerm := NewInmemStore()
		require.NoError(t, withTerm.SetUint64(keyCurrentTerm, 3))
		withLog := NewInmemStore()
		require.NoError(t, withLog.StoreLog(&Log{Index: 7, Term: 2, Type: LogNoop}))
		cases := []struct {
			name  string
			store *InmemStore
			snaps SnapshotStore
		}{
			{name: "bootstrapped node", store: leader.store, snaps: leader.snaps},
			{name: "only a term", store: withTerm, snaps: NewInmemSnapshotStore()},
			{name: "only a log entry", store: withLog, snaps: NewInmemSnapshotStore()},
			{name: "only a snapshot", store: NewInmemStore(), snaps: leader.snaps},
		}
		for _, tc := range cases {
			err := BootstrapCluster(testConfig("other"), tc.store, tc.store, tc.snaps, leader.trans, configuration)
			require.ErrorIs(t, err, ErrCantBootstrap, "BootstrapCluster on stores with %s", tc.name)
		}
	})
}

// TestNodeNeverBootstrappedStaysFollower starts nodes on empty stores: with
// no configuration they never campaign ("no known peers"), whatever the
// time, and refuse leader work. Bootstrapping them live, with a
// configuration that lists them as voters, forms the cluster.
func TestNodeNeverBootstrappedStaysFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{noBootstrap: true})
		defer c.close()
		time.Sleep(50 * c.nodes[0].conf.HeartbeatTimeout)
		for _, node := range c.nodes {
			require.Equal(t, Follower, node.raft.State(), "%s without configuration", node.id)
			require.Equal(t, uint64(0), node.raft.CurrentTerm(), "%s started an election", node.id)
			require.Equal(t, uint64(0), node.raft.GetConfiguration().Index(), node.id)
			require.Empty(t, node.raft.GetConfiguration().Configuration().Servers, node.id)
			_, leaderID := node.raft.LeaderWithID()
			require.Empty(t, leaderID, node.id)
		}
		r := c.nodes[0].raft
		require.ErrorIs(t, r.Apply([]byte("x"), time.Second).Error(), ErrNotLeader)
		require.ErrorIs(t, r.VerifyLeader().Error(), ErrNotLeader)

		var configuration Configuration
		for _, node := range c.nodes {
			configuration.Servers = append(configuration.Servers, Server{Suffrage: Voter, ID: node.id, Address: node.addr})
		}
		others := Configuration{Servers: configuration.Servers[1:]}
		require.ErrorIs(t, r.BootstrapCluster(others).Error(), ErrNotVoter, "bootstrap with a configuration that leaves the node out")
		require.Error(t, r.BootstrapCluster(Configuration{}).Error(), "bootstrap with an empty configuration")
		for _, node := range c.nodes {
			require.NoError(t, node.raft.BootstrapCluster(configuration).Error(), "live bootstrap of %s", node.id)
		}
		leader := c.leader()
		applyN(t, leader.raft, "cmd", 5)
		c.waitApplied(5)
		c.requireSameFSMs()
		for _, node := range c.nodes {
			require.Equal(t, uint64(1), node.raft.GetConfiguration().Index(), "configuration index on %s", node.id)
		}
	})
}

// TestGetConfigurationIndexIsTheEntryIndex checks our difference from
// hashicorp/raft: GetConfiguration().Index() (and the
// latest_configuration_index stat) is the index of the entry that made the
// latest configuration, on the leader, on followers, and after a restart.
func TestGetConfigurationIndexIsTheEntryIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 3, clusterOptions{})
		defer c.close()
		leader := c.leader()
		for _, node := range c.nodes {
			require.Equal(t, uint64(1), node.raft.GetConfiguration().Index(), "bootstrap configuration on %s", node.id)
		}
		applyN(t, leader.raft, "cmd", 5)

		add := leader.raft.AddNonvoter("ghost", "addr-ghost", 0, time.Second)
		require.NoError(t, add.Error())
		require.Greater(t, add.Index(), uint64(7), "AddNonvoter index after bootstrap, no-op and 5 commands")
		remove := leader.raft.RemoveServer("ghost", add.Index(), time.Second)
		require.NoError(t, remove.Error())
		require.Greater(t, remove.Index(), add.Index())

		for _, node := range c.nodes {
			c.waitFor(time.Second, fmt.Sprintf("%s to have the removal", node.id), func() bool {
				return node.raft.GetConfiguration().Index() == remove.Index()
			})
			f := node.raft.GetConfiguration()
			require.NoError(t, f.Error())
			require.Len(t, f.Configuration().Servers, 3, "configuration of %s", node.id)
			require.Equal(t, fmt.Sprint(remove.Index()), node.raft.Stats()["latest_configuration_index"], node.id)
		}

		follower := c.others(leader)[0]
		c.shutdownNode(follower)
		c.restartNode(follower)
		require.Equal(t, remove.Index(), follower.raft.GetConfiguration().Index(), "configuration index after restart")

		// A stale prevIndex is refused with the spec's message.
		err := leader.raft.AddNonvoter("ghost", "addr-ghost", add.Index(), time.Second).Error()
		require.EqualError(t, err, fmt.Sprintf("configuration changed since %d (latest is %d)", add.Index(), remove.Index()))
	})
}
