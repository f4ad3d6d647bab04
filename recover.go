package raft

import (
	"errors"
	"fmt"
)

// errNoStateToRecover is RecoverCluster's answer for stores that hold
// nothing: recovering an empty server would invent a cluster from thin air.
var errNoStateToRecover = errors.New("refused to recover cluster with no initial state, this is probably an operator error")

// recoveredConfigurationIndex is the ConfigurationIndex RecoverCluster
// writes into its snapshot, as hashicorp/raft does.
const recoveredConfigurationIndex = 1

// RecoverCluster is the manual way out of an outage that took a quorum away
// for good. Run it on a stopped server, with the stores it ran on, before
// NewRaft: it forces configuration on the server, so that it (and the other
// servers listed, recovered the same way) can elect a leader again.
//
// Nothing the server holds is dropped. The newest snapshot that opens is
// restored into fsm and every LogCommand entry after it is applied to fsm;
// a snapshot of the result is written at the last entry, carrying
// configuration; only once that snapshot is durable is the log deleted. The
// log may hold entries that were never committed: they are kept, because
// this server becomes the source of truth. fsm is only used to build that
// snapshot; NewRaft restores it again.
//
// Recovery breaks Raft's guarantees if servers left out of configuration
// are still running: stop every server first, and recover each survivor
// with the same configuration. It fails, leaving the stores as they were,
// if the arguments are invalid, the stores hold no state, or a snapshot or
// entry cannot be read.
func RecoverCluster(conf *Config, fsm FSM, logs LogStore, stable StableStore,
	snaps SnapshotStore, trans Transport, configuration Configuration) error {
	if err := ValidateConfig(conf); err != nil {
		return err
	}
	if fsm == nil || logs == nil || stable == nil || snaps == nil || trans == nil {
		return errors.New("raft: recover: fsm, log store, stable store, snapshot store and transport are all required")
	}
	if err := checkConfiguration(configuration); err != nil {
		return err
	}
	logger := newLogger(conf)
	if !hasVote(configuration, conf.LocalID) {
		logger.Warn("recovering with a configuration in which this server is not a voter; it will not campaign",
			"server-id", conf.LocalID)
	}

	hasState, err := HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("failed to check for existing state: %w", err)
	}
	if !hasState {
		return errNoStateToRecover
	}

	lastIndex, lastTerm, err := restoreNewestSnapshot(fsm, snaps)
	if err != nil {
		return err
	}
	snapshotIndex := lastIndex

	firstLog, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to get first log index: %w", err)
	}
	lastLog, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("failed to get last log index: %w", err)
	}
	if lastLog > snapshotIndex && firstLog > snapshotIndex+1 {
		// Entries between the snapshot and the log are gone: a snapshot
		// built now would silently drop them.
		return fmt.Errorf("raft: recover: log starts at %d but the newest snapshot ends at %d; entries in between are missing",
			firstLog, snapshotIndex)
	}
	for index := snapshotIndex + 1; index <= lastLog; index++ {
		var entry Log
		if err := logs.GetLog(index, &entry); err != nil {
			return fmt.Errorf("failed to get log at index %d: %w", index, err)
		}
		if entry.Type == LogCommand {
			fsm.Apply(&entry)
		}
		lastIndex, lastTerm = entry.Index, entry.Term
	}

	if lastIndex == 0 {
		// Only a term survives: there is nothing to snapshot. Start the
		// log over with the configuration, as bootstrap does.
		return recoverEmptyLog(logs, stable, configuration)
	}

	if err := writeRecoverySnapshot(fsm, snaps, trans, lastIndex, lastTerm, configuration); err != nil {
		return err
	}
	logger.Info("recovered cluster state", "last-index", lastIndex, "last-term", lastTerm,
		"servers", fmt.Sprintf("%+v", configuration.Servers))

	// The snapshot is durable and covers every entry: the log can go. It
	// goes entirely, so that no older configuration entry survives it.
	if lastLog > 0 {
		if err := logs.DeleteRange(firstLog, lastLog); err != nil {
			return fmt.Errorf("log compaction failed: %w", err)
		}
	}
	return nil
}

// restoreNewestSnapshot restores into fsm the newest snapshot that opens and
// restores, and returns its index and term (0, 0 when there is none). It
// fails if snapshots exist and none restores.
func restoreNewestSnapshot(fsm FSM, snaps SnapshotStore) (index, term uint64, err error) {
	snapshots, err := snaps.List()
	if err != nil {
		return 0, 0, fmt.Errorf("failed to list snapshots: %w", err)
	}
	var errs []error
	for _, meta := range snapshots {
		_, source, err := snaps.Open(meta.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("open snapshot %s: %w", meta.ID, err))
			continue
		}
		err = fsm.Restore(newCountingReadCloser(source))
		source.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("restore snapshot %s: %w", meta.ID, err))
			continue
		}
		return meta.Index, meta.Term, nil
	}
	if len(snapshots) > 0 {
		return 0, 0, fmt.Errorf("failed to restore any of %d snapshots: %w", len(snapshots), errors.Join(errs...))
	}
	return 0, 0, nil
}

// writeRecoverySnapshot snapshots fsm at index and term with configuration,
// and returns once the snapshot store has it.
func writeRecoverySnapshot(fsm FSM, snaps SnapshotStore, trans Transport,
	index, term uint64, configuration Configuration) error {
	fsmSnapshot, err := fsm.Snapshot()
	if err != nil {
		return fmt.Errorf("failed to snapshot FSM: %w", err)
	}
	if fsmSnapshot == nil {
		return errors.New("raft: recover: FSM returned a nil snapshot")
	}
	defer fsmSnapshot.Release()
	sink, err := snaps.Create(SnapshotVersionMax, index, term, configuration, recoveredConfigurationIndex, trans)
	if err != nil {
		return fmt.Errorf("failed to create snapshot: %w", err)
	}
	tracked := &closeTrackingSink{SnapshotSink: sink}
	if err := fsmSnapshot.Persist(tracked); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("failed to persist snapshot: %w", err)
	}
	if !tracked.closed {
		tracked.closeErr = sink.Close()
	}
	if tracked.closeErr != nil {
		return fmt.Errorf("failed to finalize snapshot: %w", tracked.closeErr)
	}
	return nil
}

// recoverEmptyLog handles a server whose stores hold a term but neither a
// log nor a snapshot: the configuration becomes entry 1, in the current
// term (at least 1).
func recoverEmptyLog(logs LogStore, stable StableStore, configuration Configuration) error {
	term, err := getUint64(stable, keyCurrentTerm)
	if err != nil {
		return fmt.Errorf("failed to read current term: %w", err)
	}
	if term == 0 {
		term = 1
		if err := stable.SetUint64(keyCurrentTerm, term); err != nil {
			return fmt.Errorf("failed to save current term: %w", err)
		}
	}
	entry := &Log{Index: 1, Term: term, Type: LogConfiguration, Data: EncodeConfiguration(configuration)}
	if err := logs.StoreLog(entry); err != nil {
		return fmt.Errorf("failed to append configuration entry to log: %w", err)
	}
	return nil
}

// GetConfiguration returns the latest configuration held by a server's
// stores, without starting it. It restores the newest snapshot into fsm on
// the way, as NewRaft does. Unlike hashicorp/raft's, it leaves conf as it
// was: a later NewRaft with the same conf starts normally.
func GetConfiguration(conf *Config, fsm FSM, logs LogStore, stable StableStore,
	snaps SnapshotStore, trans Transport) (Configuration, error) {
	if err := ValidateConfig(conf); err != nil {
		return Configuration{}, err
	}
	loadOnly := *conf
	loadOnly.skipStartup = true
	r, err := NewRaft(&loadOnly, fsm, logs, stable, snaps, trans)
	if err != nil {
		return Configuration{}, err
	}
	return r.configurations.latest.Clone(), nil
}
