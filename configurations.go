package raft

import "fmt"

// indexedConfiguration is a configuration with the index of its entry.
type indexedConfiguration struct {
	configuration Configuration
	index         uint64
}

// configurations is the pair of configurations a server tracks: the latest
// one in its log, which it uses at once (dissertation §4.1), and the latest
// committed one, which it falls back to if the latest is truncated away.
type configurations struct {
	committed      Configuration
	committedIndex uint64
	latest         Configuration
	latestIndex    uint64
}

// Clone returns a deep copy.
func (c *configurations) Clone() configurations {
	return configurations{
		committed:      c.committed.Clone(),
		committedIndex: c.committedIndex,
		latest:         c.latest.Clone(),
		latestIndex:    c.latestIndex,
	}
}

// loadConfigurationsFromLog rebuilds the configuration pair from the
// entries after the newest snapshot.
func (r *Raft) loadConfigurationsFromLog() error {
	snapshotIndex, _ := r.getLastSnapshot()
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to read first log index: %w", err)
	}
	lastIndex, _ := r.getLastLog()
	start := max(first, snapshotIndex+1)
	if first == 0 {
		start = snapshotIndex + 1
	}
	for index := start; index > 0 && index <= lastIndex; index++ {
		var entry Log
		if err := r.logs.GetLog(index, &entry); err != nil {
			return fmt.Errorf("failed to read log entry %d: %w", index, err)
		}
		if err := r.processConfigurationLogEntry(&entry); err != nil {
			return err
		}
	}
	r.publishLatestConfiguration()
	return nil
}

// processConfigurationLogEntry takes a configuration entry into effect as
// soon as it is in the log; the previous latest configuration becomes the
// committed one (a server appends a new configuration only after the
// previous one committed).
func (r *Raft) processConfigurationLogEntry(entry *Log) error {
	if entry.Type != LogConfiguration {
		return nil
	}
	configuration, err := decodeConfiguration(entry.Data)
	if err != nil {
		return fmt.Errorf("log entry %d holds a corrupt configuration: %w", entry.Index, err)
	}
	r.setCommittedConfiguration(r.configurations.latest, r.configurations.latestIndex)
	r.setLatestConfiguration(configuration, entry.Index)
	return nil
}

func (r *Raft) setLatestConfiguration(c Configuration, i uint64) {
	r.configurations.latest = c
	r.configurations.latestIndex = i
	r.publishLatestConfiguration()
}

func (r *Raft) setCommittedConfiguration(c Configuration, i uint64) {
	r.configurations.committed = c
	r.configurations.committedIndex = i
}

func (r *Raft) publishLatestConfiguration() {
	r.latestConfiguration.Store(&indexedConfiguration{
		configuration: r.configurations.latest.Clone(),
		index:         r.configurations.latestIndex,
	})
}

func (r *Raft) getLatestConfiguration() indexedConfiguration {
	if p := r.latestConfiguration.Load(); p != nil {
		return *p
	}
	return indexedConfiguration{}
}
