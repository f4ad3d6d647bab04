package raft

import (
	"fmt"
	"strconv"
	"time"
)

// Apply is used to apply a command to the FSM in a highly consistent
// manner. See ApplyLog.
func (r *Raft) Apply(cmd []byte, timeout time.Duration) ApplyFuture {
	return r.ApplyLog(Log{Data: cmd}, timeout)
}

// ApplyLog appends a command to the log on the leader. Only Data and
// Extensions of log are used; the entry is a LogCommand. timeout bounds only
// the hand-off to the main loop (ErrEnqueueTimeout); 0 waits for as long as
// it takes. The future resolves once the entry is committed and applied to
// this node's FSM, with the FSM's return value as Response.
func (r *Raft) ApplyLog(log Log, timeout time.Duration) ApplyFuture {
	incrCounter([]string{"raft", "apply"}, 1)
	f := r.newLogFuture(Log{Type: LogCommand, Data: log.Data, Extensions: log.Extensions})
	return r.enqueueApply(f, timeout)
}

// Barrier appends an entry that resolves only once every earlier entry has
// been applied to this node's FSM. Leader only.
func (r *Raft) Barrier(timeout time.Duration) Future {
	incrCounter([]string{"raft", "barrier"}, 1)
	f := r.newLogFuture(Log{Type: LogBarrier})
	return r.enqueueApply(f, timeout)
}

func (r *Raft) enqueueApply(f *logFuture, timeout time.Duration) ApplyFuture {
	// Most of the time the leader's queue has room: no timer needed.
	select {
	case r.applyCh <- f:
		return f
	default:
	}
	timer, stop := enqueueTimer(timeout)
	defer stop()
	select {
	case r.applyCh <- f:
		return f
	case <-timer:
		return errorFuture{ErrEnqueueTimeout}
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// enqueueTimer returns a channel that fires after timeout, or never when
// timeout is 0, and a function that releases the timer.
func enqueueTimer(timeout time.Duration) (<-chan time.Time, func()) {
	if timeout <= 0 {
		return nil, func() {}
	}
	t := time.NewTimer(timeout)
	return t.C, func() { t.Stop() }
}

// initFuture prepares a future's completion part for this node.
func (r *Raft) initFuture(d *deferError) {
	d.shutdownCh = r.shutdownCh
	d.init()
}

// VerifyLeader checks that this node is still the leader: a heartbeat round
// answered by a quorum of voters in our term. Many concurrent checks share
// one round.
func (r *Raft) VerifyLeader() Future {
	incrCounter([]string{"raft", "verify_leader"}, 1)
	v := &verifyFuture{}
	r.initFuture(&v.deferError)
	r.sendOp(v, 0)
	return v
}

// GetConfiguration returns the latest configuration, committed or not. It
// never blocks. Unlike hashicorp/raft, Index returns the index of the entry
// that made the configuration.
func (r *Raft) GetConfiguration() ConfigurationFuture {
	latest := r.getLatestConfiguration()
	return &apiConfigurationFuture{configuration: latest.configuration.Clone(), index: latest.index}
}

// getConfigurations reads the configuration pair from the main loop.
func (r *Raft) getConfigurations() (configurations, error) {
	f := &configurationsFuture{}
	r.initFuture(&f.deferError)
	if !r.sendOp(f, 0) {
		return configurations{}, f.Error()
	}
	if err := f.Error(); err != nil {
		return configurations{}, err
	}
	return f.configurations, nil
}

// BootstrapCluster writes the given configuration as the first log entry of
// a new cluster; see the package-level BootstrapCluster. It works only on a
// follower with no state and fails with ErrCantBootstrap otherwise.
func (r *Raft) BootstrapCluster(configuration Configuration) Future {
	f := &bootstrapFuture{configuration: configuration}
	r.initFuture(&f.deferError)
	r.sendOp(f, 0)
	return f
}

// liveBootstrap bootstraps from the main loop of a running follower.
func (r *Raft) liveBootstrap(configuration Configuration) error {
	if !hasVote(configuration, r.localID) {
		return ErrNotVoter
	}
	err := r.log.exec(func(logs LogStore) error {
		return BootstrapCluster(r.config(), logs, r.stable, r.snapshots, r.trans, configuration)
	})
	if err != nil {
		return err
	}
	var entry Log
	if err := r.logs.GetLog(1, &entry); err != nil {
		return err
	}
	r.currentTerm.Store(1)
	r.log.setLast(entry.Index, entry.Term)
	return r.processConfigurationLogEntry(&entry)
}

// BootstrapCluster initializes the stores of a server that will form a new
// cluster: term 1 and a first log entry holding configuration. Every
// initial voter may be bootstrapped with the same configuration. It fails
// with ErrCantBootstrap when the stores already hold state.
func BootstrapCluster(conf *Config, logs LogStore, stable StableStore,
	snaps SnapshotStore, trans Transport, configuration Configuration) error {
	if err := ValidateConfig(conf); err != nil {
		return err
	}
	if err := checkConfiguration(configuration); err != nil {
		return err
	}
	hasState, err := HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("failed to check for existing state: %w", err)
	}
	if hasState {
		return ErrCantBootstrap
	}
	if err := stable.SetUint64(keyCurrentTerm, 1); err != nil {
		return fmt.Errorf("failed to save current term: %w", err)
	}
	entry := &Log{Index: 1, Term: 1, Type: LogConfiguration, Data: EncodeConfiguration(configuration)}
	if err := logs.StoreLog(entry); err != nil {
		return fmt.Errorf("failed to append configuration entry to log: %w", err)
	}
	return nil
}

// HasExistingState reports whether the stores hold any Raft state: a term,
// a log entry or a snapshot.
func HasExistingState(logs LogStore, stable StableStore, snaps SnapshotStore) (bool, error) {
	currentTerm, err := getUint64(stable, keyCurrentTerm)
	if err != nil {
		return false, fmt.Errorf("failed to read current term: %w", err)
	}
	if currentTerm > 0 {
		return true, nil
	}
	lastIndex, err := logs.LastIndex()
	if err != nil {
		return false, fmt.Errorf("failed to read last log index: %w", err)
	}
	if lastIndex > 0 {
		return true, nil
	}
	snapshots, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("failed to list snapshots: %w", err)
	}
	return len(snapshots) > 0, nil
}

// State returns the node's role.
func (r *Raft) State() RaftState { return r.getState() }

// LeaderCh returns a channel that receives true when this node becomes
// leader and false when it stops. It holds only the newest value: a slow
// reader sees the current state, not every change.
func (r *Raft) LeaderCh() <-chan bool { return r.leaderCh }

// Leader returns the address of the current leader, or "" if unknown.
//
// Deprecated: use LeaderWithID.
func (r *Raft) Leader() ServerAddress {
	addr, _ := r.LeaderWithID()
	return addr
}

// LeaderWithID returns the address and ID of the current leader, or empty
// values if unknown.
func (r *Raft) LeaderWithID() (ServerAddress, ServerID) {
	r.heartbeatMu.Lock()
	defer r.heartbeatMu.Unlock()
	return r.leaderAddr, r.leaderID
}

// LastContact returns when this node last heard from a leader (or granted
// a vote). On the leader it is not updated.
func (r *Raft) LastContact() time.Time { return r.lastContact.load() }

// LastIndex returns the index of the last entry, in the log or in the
// newest snapshot. On the leader it includes entries still being written.
func (r *Raft) LastIndex() uint64 { return r.getLastIndex() }

// CommitIndex returns the highest index known to be committed.
func (r *Raft) CommitIndex() uint64 { return r.getCommitIndex() }

// AppliedIndex returns the index of the last entry this node's FSM has
// applied (or the newest restored snapshot's).
func (r *Raft) AppliedIndex() uint64 { return r.getLastApplied() }

// CurrentTerm returns the node's current term.
func (r *Raft) CurrentTerm() uint64 { return r.getCurrentTerm() }

// String returns "Node at <address> [<state>]".
func (r *Raft) String() string {
	return fmt.Sprintf("Node at %s [%v]", r.localAddr, r.getState())
}

// Stats returns diagnostic values, keyed as in docs/COMPATIBILITY.md §6.
func (r *Raft) Stats() map[string]string {
	toString := func(v uint64) string { return strconv.FormatUint(v, 10) }
	lastLogIndex, lastLogTerm := r.getLastLog()
	lastSnapIndex, lastSnapTerm := r.getLastSnapshot()
	s := map[string]string{
		"state":                r.getState().String(),
		"term":                 toString(r.getCurrentTerm()),
		"last_log_index":       toString(lastLogIndex),
		"last_log_term":        toString(lastLogTerm),
		"commit_index":         toString(r.getCommitIndex()),
		"applied_index":        toString(r.getLastApplied()),
		"fsm_pending":          toString(uint64(len(r.fsmMutateCh))),
		"last_snapshot_index":  toString(lastSnapIndex),
		"last_snapshot_term":   toString(lastSnapTerm),
		"protocol_version":     strconv.Itoa(int(r.config().ProtocolVersion)),
		"protocol_version_min": strconv.Itoa(int(ProtocolVersionMin)),
		"protocol_version_max": strconv.Itoa(int(ProtocolVersionMax)),
		"snapshot_version_min": strconv.Itoa(int(SnapshotVersionMin)),
		"snapshot_version_max": strconv.Itoa(int(SnapshotVersionMax)),
	}
	latest := r.getLatestConfiguration()
	s["latest_configuration_index"] = toString(latest.index)
	s["latest_configuration"] = fmt.Sprintf("%+v", latest.configuration.Servers)
	numPeers := 0
	if voters := votersOf(latest.configuration); voters.isVoter(r.localID) {
		numPeers = voters.size() - 1
	}
	s["num_peers"] = strconv.Itoa(numPeers)
	switch last := r.LastContact(); {
	case r.getState() == Leader:
		s["last_contact"] = "0"
	case last.IsZero():
		s["last_contact"] = "never"
	default:
		s["last_contact"] = fmt.Sprintf("%v", r.clock.since(last))
	}
	return s
}

// AddVoter adds id as a voter at address, or updates its address if it
// already votes. prevIndex, if not 0, must be the index of the latest
// configuration. timeout bounds the wait for the leader to take the change.
func (r *Raft) AddVoter(id ServerID, address ServerAddress, prevIndex uint64, timeout time.Duration) IndexFuture {
	return r.requestConfigChange(configurationChangeRequest{command: AddVoter, serverID: id, serverAddress: address, prevIndex: prevIndex}, timeout)
}

// AddNonvoter adds id as a nonvoter at address: it receives the log but
// does not vote. A server that votes only gets its address updated.
func (r *Raft) AddNonvoter(id ServerID, address ServerAddress, prevIndex uint64, timeout time.Duration) IndexFuture {
	return r.requestConfigChange(configurationChangeRequest{command: AddNonvoter, serverID: id, serverAddress: address, prevIndex: prevIndex}, timeout)
}

// RemoveServer removes id from the cluster. A leader that removes itself
// steps down (or shuts down with ShutdownOnRemove) once the change commits.
func (r *Raft) RemoveServer(id ServerID, prevIndex uint64, timeout time.Duration) IndexFuture {
	return r.requestConfigChange(configurationChangeRequest{command: RemoveServer, serverID: id, prevIndex: prevIndex}, timeout)
}

// DemoteVoter makes id a nonvoter.
func (r *Raft) DemoteVoter(id ServerID, prevIndex uint64, timeout time.Duration) IndexFuture {
	return r.requestConfigChange(configurationChangeRequest{command: DemoteVoter, serverID: id, prevIndex: prevIndex}, timeout)
}

// AddPeer is the membership call of protocol versions below 3.
//
// Deprecated: use AddVoter. It returns ErrUnsupportedProtocol.
func (r *Raft) AddPeer(peer ServerAddress) Future {
	return errorFuture{ErrUnsupportedProtocol}
}

// RemovePeer is the membership call of protocol versions below 3.
//
// Deprecated: use RemoveServer. It returns ErrUnsupportedProtocol.
func (r *Raft) RemovePeer(peer ServerAddress) Future {
	return errorFuture{ErrUnsupportedProtocol}
}

func (r *Raft) requestConfigChange(req configurationChangeRequest, timeout time.Duration) IndexFuture {
	timer, stop := enqueueTimer(timeout)
	defer stop()
	f := &configurationChangeFuture{req: req}
	f.logFuture = *r.newLogFuture(Log{Type: LogConfiguration})
	select {
	case r.configurationChangeCh <- f:
		return f
	case <-timer:
		return errorFuture{ErrEnqueueTimeout}
	case <-r.shutdownCh:
		return errorFuture{ErrRaftShutdown}
	}
}

// ReloadableConfig returns the current values of the reloadable settings.
func (r *Raft) ReloadableConfig() ReloadableConfig {
	var rc ReloadableConfig
	rc.fromConfig(*r.config())
	return rc
}

// ReloadConfig changes the reloadable settings at runtime. The new values
// are validated together with the rest of the configuration; if they are
// refused, the old ones stay in force. A lowered heartbeat timeout takes
// effect at once.
func (r *Raft) ReloadConfig(rc ReloadableConfig) error {
	r.confReloadMu.Lock()
	defer r.confReloadMu.Unlock()
	old := r.config()
	newConf := rc.apply(*old)
	if err := ValidateConfig(&newConf); err != nil {
		return err
	}
	r.conf.Store(&newConf)
	if rc.HeartbeatTimeout < old.HeartbeatTimeout {
		select {
		case r.timerResetCh <- struct{}{}:
		default:
		}
	}
	return nil
}
