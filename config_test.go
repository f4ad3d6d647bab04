//go:build go1.25

package raft

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// validTestConfig is DefaultConfig with a LocalID: the base every case of
// the validation table breaks in one way.
func validTestConfig() *Config {
	conf := DefaultConfig()
	conf.LocalID = "node0"
	conf.Logger = testLogger("node0")
	return conf
}

// TestDefaultConfigMatchesSpec checks the defaults of docs/COMPATIBILITY.md §3.
func TestDefaultConfigMatchesSpec(t *testing.T) {
	want := Config{
		ProtocolVersion:    3,
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		MaxAppendEntries:   64,
		ShutdownOnRemove:   true,
		TrailingLogs:       10240,
		SnapshotInterval:   120 * time.Second,
		SnapshotThreshold:  8192,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		LogLevel:           "DEBUG",
		// Ours: the lease-read drift bound (off unless LeaseReads is set).
		MaxClockDrift: 100 * time.Millisecond,
	}
	require.Equal(t, want, *DefaultConfig())
	// DefaultConfig lacks only the LocalID.
	require.EqualError(t, ValidateConfig(DefaultConfig()), "LocalID cannot be empty")
	require.NoError(t, ValidateConfig(validTestConfig()))
}

// TestInvalidConfigIsRejectedWithItsMessage breaks one setting at a time and
// checks that ValidateConfig, NewRaft and BootstrapCluster all refuse it
// with the exact message of docs/COMPATIBILITY.md §3 (our protocol check
// accepts version 3 only), and that values on the boundary are accepted.
func TestInvalidConfigIsRejectedWithItsMessage(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		// err is the exact message, or "" for a valid configuration.
		err string
	}{
		{"protocol 0", func(c *Config) { c.ProtocolVersion = 0 }, "ProtocolVersion 0 must be >= 3 and <= 3"},
		{"protocol 1", func(c *Config) { c.ProtocolVersion = 1 }, "ProtocolVersion 1 must be >= 3 and <= 3"},
		{"protocol 2", func(c *Config) { c.ProtocolVersion = 2 }, "ProtocolVersion 2 must be >= 3 and <= 3"},
		{"protocol 4", func(c *Config) { c.ProtocolVersion = 4 }, "ProtocolVersion 4 must be >= 3 and <= 3"},
		{"protocol -1", func(c *Config) { c.ProtocolVersion = -1 }, "ProtocolVersion -1 must be >= 3 and <= 3"},
		{"empty LocalID", func(c *Config) { c.LocalID = "" }, "LocalID cannot be empty"},
		{"heartbeat timeout", func(c *Config) { c.HeartbeatTimeout = 5*time.Millisecond - 1 }, "HeartbeatTimeout is too low"},
		{"election timeout", func(c *Config) { c.ElectionTimeout = 5*time.Millisecond - 1 }, "ElectionTimeout is too low"},
		{"commit timeout", func(c *Config) { c.CommitTimeout = time.Millisecond - 1 }, "CommitTimeout is too low"},
		{"zero MaxAppendEntries", func(c *Config) { c.MaxAppendEntries = 0 }, "MaxAppendEntries must be positive"},
		{"negative MaxAppendEntries", func(c *Config) { c.MaxAppendEntries = -1 }, "MaxAppendEntries must be positive"},
		{"huge MaxAppendEntries", func(c *Config) { c.MaxAppendEntries = 1025 }, "MaxAppendEntries is too large"},
		{"snapshot interval", func(c *Config) { c.SnapshotInterval = 5*time.Millisecond - 1 }, "SnapshotInterval is too low"},
		{"lease timeout", func(c *Config) { c.LeaderLeaseTimeout = 5*time.Millisecond - 1 }, "LeaderLeaseTimeout is too low"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 1001 * time.Millisecond },
			"LeaderLeaseTimeout (1.001s) cannot be larger than heartbeat timeout (1s)"},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 999 * time.Millisecond },
			"ElectionTimeout (999ms) must be equal or greater than Heartbeat Timeout (1s)"},
		// With several problems, the first in the spec's order is named.
		{"first problem wins", func(c *Config) {
			c.LocalID = ""
			c.HeartbeatTimeout = 0
			c.MaxAppendEntries = 0
		}, "LocalID cannot be empty"},
		{"all timeouts at their minimum", func(c *Config) {
			c.HeartbeatTimeout = 5 * time.Millisecond
			c.ElectionTimeout = 5 * time.Millisecond
			c.LeaderLeaseTimeout = 5 * time.Millisecond
			c.CommitTimeout = time.Millisecond
			c.SnapshotInterval = 5 * time.Millisecond
		}, ""},
		{"MaxAppendEntries at its maximum", func(c *Config) { c.MaxAppendEntries = 1024 }, ""},
		{"MaxAppendEntries at its minimum", func(c *Config) { c.MaxAppendEntries = 1 }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf := validTestConfig()
			tc.change(conf)
			if tc.err == "" {
				require.NoError(t, ValidateConfig(conf))
				return
			}
			require.EqualError(t, ValidateConfig(conf), tc.err, "ValidateConfig")

			// NewRaft and BootstrapCluster validate before they touch the
			// stores or start anything; the bubble would catch a goroutine
			// left running.
			synctest.Test(t, func(t *testing.T) {
				store, snaps := NewInmemStore(), NewInmemSnapshotStore()
				_, trans := NewInmemTransport("addr0")
				configuration := Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: "addr0"}}}
				err := BootstrapCluster(conf, store, store, snaps, trans, configuration)
				require.EqualError(t, err, tc.err, "BootstrapCluster")
				hasState, err := HasExistingState(store, store, snaps)
				require.NoError(t, err)
				require.False(t, hasState, "BootstrapCluster wrote state with an invalid configuration")

				r, err := NewRaft(conf, &testFSM{}, store, store, snaps, trans)
				require.EqualError(t, err, tc.err, "NewRaft")
				require.Nil(t, r, "NewRaft returned a node with its error")
			})
		})
	}
}

// TestNilConfigIsRejectedWithoutPanic passes a nil *Config, which a caller
// can get from a failed constructor of its own: a clear error, not a nil
// pointer panic.
func TestNilConfigIsRejectedWithoutPanic(t *testing.T) {
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	_, trans := NewInmemTransport("addr0")
	configuration := Configuration{Servers: []Server{{Suffrage: Voter, ID: "node0", Address: "addr0"}}}
	calls := []struct {
		name string
		call func() error
	}{
		{"ValidateConfig", func() error { return ValidateConfig(nil) }},
		{"NewRaft", func() error {
			_, err := NewRaft(nil, &testFSM{}, store, store, snaps, trans)
			return err
		}},
		{"BootstrapCluster", func() error { return BootstrapCluster(nil, store, store, snaps, trans, configuration) }},
	}
	for _, tc := range calls {
		var err error
		require.NotPanics(t, func() { err = tc.call() }, "%s(nil config)", tc.name)
		require.Error(t, err, "%s(nil config)", tc.name)
	}
}

// TestReloadConfigRefusesInvalidValues checks that ReloadConfig validates
// the whole resulting configuration, keeps the old values when it refuses,
// and takes valid ones.
func TestReloadConfigRefusesInvalidValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newTestCluster(t, 1, clusterOptions{})
		defer c.close()
		r := c.leader().raft
		before := r.ReloadableConfig()

		bad := before
		bad.HeartbeatTimeout = time.Millisecond
		require.EqualError(t, r.ReloadConfig(bad), "HeartbeatTimeout is too low")
		require.Equal(t, before, r.ReloadableConfig(), "a refused reload changed the settings")

		// Zero values are copied too, so a partly filled struct is refused.
		require.EqualError(t, r.ReloadConfig(ReloadableConfig{TrailingLogs: 5}), "HeartbeatTimeout is too low")

		good := before
		good.TrailingLogs = 7
		good.SnapshotThreshold = 9
		good.HeartbeatTimeout = 80 * time.Millisecond
		good.ElectionTimeout = 80 * time.Millisecond
		require.NoError(t, r.ReloadConfig(good))
		require.Equal(t, good, r.ReloadableConfig())
		require.NoError(t, r.Barrier(time.Second).Error(), "node still serves after a reload")
	})
}
