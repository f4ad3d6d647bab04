package raft

import (
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ProtocolVersion numbers the set of RPC fields and log entry types a node
// speaks.
//
// This library speaks version 3 only: ValidateConfig refuses other values.
// RPC headers of version 2 and 3 are accepted from peers.
type ProtocolVersion int

const (
	// ProtocolVersionMin is the lowest version number that exists.
	ProtocolVersionMin ProtocolVersion = 0
	// ProtocolVersionMax is the version this library speaks.
	ProtocolVersionMax = 3
)

// SnapshotVersion numbers the layout of SnapshotMeta (not of the FSM's data).
type SnapshotVersion int

const (
	// SnapshotVersionMin is the oldest snapshot version that can be read.
	SnapshotVersionMin SnapshotVersion = 0
	// SnapshotVersionMax is the version new snapshots are written in.
	SnapshotVersionMax = 1
)

// SuggestedMaxDataSize is the largest Data a single log entry should carry.
// Raft does not enforce it; larger entries slow replication and heartbeats.
const SuggestedMaxDataSize = 512 * 1024

// Config holds the settings of one Raft node. Start from DefaultConfig, set
// LocalID, and adjust; NewRaft validates it with ValidateConfig.
type Config struct {
	// ProtocolVersion must be 3 (the default): the only version this
	// library speaks.
	ProtocolVersion ProtocolVersion

	// HeartbeatTimeout is how long a follower waits without hearing from a
	// leader before it campaigns (randomized in [HT, 2HT)). Leaders send
	// heartbeats several times per HeartbeatTimeout.
	HeartbeatTimeout time.Duration

	// ElectionTimeout is how long a candidate waits for an election to
	// finish before it starts a new one (randomized in [ET, 2ET)).
	ElectionTimeout time.Duration

	// CommitTimeout bounds how long followers may wait to learn a new commit
	// index when no new entries flow: the leader sends AppendEntries at
	// least this often.
	CommitTimeout time.Duration

	// MaxAppendEntries caps the entries in one AppendEntries request and in
	// one batch of applies the leader writes.
	MaxAppendEntries int

	// BatchApplyCh gives the apply queue a buffer of MaxAppendEntries, so
	// callers need not wait for the main loop to take each command.
	BatchApplyCh bool

	// ShutdownOnRemove makes a leader shut down when it commits its own
	// removal from the cluster; otherwise it steps down to follower.
	ShutdownOnRemove bool

	// TrailingLogs is how many entries compaction keeps behind a snapshot,
	// so that a follower a little behind catches up from the log rather
	// than by InstallSnapshot.
	TrailingLogs uint64

	// SnapshotInterval is how often the node considers taking a snapshot
	// (randomized in [SI, 2SI) so nodes do not snapshot together).
	SnapshotInterval time.Duration

	// SnapshotThreshold is how many entries must have been appended since
	// the last snapshot before a new one is taken.
	SnapshotThreshold uint64

	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum; past it, the leader steps down (check-quorum).
	LeaderLeaseTimeout time.Duration

	// LocalID names this server, uniquely and for all time. Required.
	LocalID ServerID

	// NotifyCh, if set, receives true when this node becomes leader and
	// false when it stops. Sends block the main loop: buffer the channel or
	// read it promptly.
	NotifyCh chan<- bool

	// LogOutput is where the default logger writes (os.Stderr when nil).
	// Ignored when Logger is set.
	LogOutput io.Writer

	// LogLevel is the default logger's level by name ("DEBUG", "INFO", ...).
	LogLevel string

	// Logger, if set, receives all of the node's logging.
	Logger hclog.Logger

	// NoSnapshotRestoreOnStart skips restoring the newest snapshot into the
	// FSM at start, for FSMs that keep their own durable state. The
	// snapshot's metadata is still used.
	NoSnapshotRestoreOnStart bool

	// PreVoteDisabled turns off the prevote round before elections.
	PreVoteDisabled bool

	// NoLegacyTelemetry stops the duplicate per-peer metrics that carry the
	// peer in the metric name rather than in a label.
	NoLegacyTelemetry bool

	// LeaseReads lets the leader serve ReadIndex from its lease, without a
	// heartbeat round, while a quorum of voters accepted a request it sent
	// less than HeartbeatTimeout - MaxClockDrift ago. It relies on every
	// voter running this library with LeaseReads set and a
	// HeartbeatTimeout no shorter than the leader's: such a voter refuses
	// votes for HeartbeatTimeout after it last heard from its leader, and
	// for HeartbeatTimeout after it starts. Not safe in a cluster mixed with
	// hashicorp/raft nodes.
	LeaseReads bool

	// MaxClockDrift is how much shorter the lease is than
	// HeartbeatTimeout, to allow for clocks that run at different rates.
	// DefaultConfig sets 100ms; it must be below HeartbeatTimeout.
	MaxClockDrift time.Duration

	// RestoreCommittedLogs makes a restarted node replay the entries its
	// CommitTrackingLogStore recorded as committed into the FSM before it
	// starts, instead of waiting for a leader to tell it the commit index.
	RestoreCommittedLogs bool

	// skipStartup makes NewRaft load state without starting any goroutine
	// (the package-level GetConfiguration uses it on a private copy).
	skipStartup bool
	// strictInvariants makes a broken invariant of the log panic instead
	// of failing the operation with an error; tests turn it on.
	strictInvariants bool

	// randomSeed, when not zero, seeds the node's random choices (see
	// random.go); the package's tests set it to replay a cluster.
	randomSeed uint64
	// clockDrift, when not zero, makes the node's clock run at rate
	// 1+clockDrift (see clock.go); the package's tests set it.
	clockDrift float64
}

// ReloadableConfig holds the Config fields that (*Raft).ReloadConfig may
// change while the node runs. Each has the meaning of the Config field of
// the same name.
type ReloadableConfig struct {
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
}

// apply returns a copy of to with the reloadable fields taken from rc.
func (rc *ReloadableConfig) apply(to Config) Config {
	to.TrailingLogs = rc.TrailingLogs
	to.SnapshotInterval = rc.SnapshotInterval
	to.SnapshotThreshold = rc.SnapshotThreshold
	to.HeartbeatTimeout = rc.HeartbeatTimeout
	to.ElectionTimeout = rc.ElectionTimeout
	return to
}

// fromConfig fills rc from the reloadable fields of from.
func (rc *ReloadableConfig) fromConfig(from Config) {
	rc.TrailingLogs = from.TrailingLogs
	rc.SnapshotInterval = from.SnapshotInterval
	rc.SnapshotThreshold = from.SnapshotThreshold
	rc.HeartbeatTimeout = from.HeartbeatTimeout
	rc.ElectionTimeout = from.ElectionTimeout
}

// DefaultConfig returns the defaults of docs/COMPATIBILITY.md §3. The caller must still
// set LocalID.
func DefaultConfig() *Config {
	return &Config{
		ProtocolVersion:    ProtocolVersionMax,
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
		MaxClockDrift:      100 * time.Millisecond,
	}
}

// ValidateConfig reports the first problem with config, or nil. The checks
// and messages follow docs/COMPATIBILITY.md §3; the protocol check accepts
// version 3 only, and its message names that range.
func ValidateConfig(config *Config) error {
	if config == nil {
		return fmt.Errorf("config must not be nil")
	}
	// Version 0 is raised to 1 by hashicorp/raft; we speak only version 3.
	const protocolMin = ProtocolVersionMax
	if config.ProtocolVersion < protocolMin ||
		config.ProtocolVersion > ProtocolVersionMax {
		return fmt.Errorf("ProtocolVersion %d must be >= %d and <= %d",
			config.ProtocolVersion, protocolMin, ProtocolVersionMax)
	}
	if len(config.LocalID) == 0 {
		return fmt.Errorf("LocalID cannot be empty")
	}
	if config.HeartbeatTimeout < 5*time.Millisecond {
		return fmt.Errorf("HeartbeatTimeout is too low")
	}
	if config.ElectionTimeout < 5*time.Millisecond {
		return fmt.Errorf("ElectionTimeout is too low")
	}
	if config.CommitTimeout < time.Millisecond {
		return fmt.Errorf("CommitTimeout is too low")
	}
	if config.MaxAppendEntries <= 0 {
		return fmt.Errorf("MaxAppendEntries must be positive")
	}
	if config.MaxAppendEntries > 1024 {
		return fmt.Errorf("MaxAppendEntries is too large")
	}
	if config.SnapshotInterval < 5*time.Millisecond {
		return fmt.Errorf("SnapshotInterval is too low")
	}
	if config.LeaderLeaseTimeout < 5*time.Millisecond {
		return fmt.Errorf("LeaderLeaseTimeout is too low")
	}
	if config.LeaderLeaseTimeout > config.HeartbeatTimeout {
		return fmt.Errorf("LeaderLeaseTimeout (%s) cannot be larger than heartbeat timeout (%s)", config.LeaderLeaseTimeout, config.HeartbeatTimeout)
	}
	if config.MaxClockDrift < 0 {
		return fmt.Errorf("MaxClockDrift cannot be negative")
	}
	if config.LeaseReads && config.MaxClockDrift >= config.HeartbeatTimeout {
		return fmt.Errorf("MaxClockDrift (%s) must be less than HeartbeatTimeout (%s) for lease reads", config.MaxClockDrift, config.HeartbeatTimeout)
	}
	if config.ElectionTimeout < config.HeartbeatTimeout {
		return fmt.Errorf("ElectionTimeout (%s) must be equal or greater than Heartbeat Timeout (%s)", config.ElectionTimeout, config.HeartbeatTimeout)
	}
	return nil
}
