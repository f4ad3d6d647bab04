package raft

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// restoreSnapshot restores the newest snapshot that opens and restores
// into the FSM at startup, trying older ones when the newest fails. It fails
// only when snapshots exist and none can be restored.
func (r *Raft) restoreSnapshot() error {
	snapshots, err := r.snapshots.List()
	if err != nil {
		return fmt.Errorf("failed to list snapshots: %w", err)
	}
	var errs []error
	for _, meta := range snapshots {
		if !r.config().NoSnapshotRestoreOnStart {
			_, source, err := r.snapshots.Open(meta.ID)
			if err != nil {
				r.logger.Error("failed to open snapshot", "id", meta.ID, "error", err)
				errs = append(errs, fmt.Errorf("open snapshot %s: %w", meta.ID, err))
				continue
			}
			err = r.fsm.Restore(newCountingReadCloser(source))
			source.Close()
			if err != nil {
				r.logger.Error("failed to restore snapshot", "id", meta.ID, "error", err)
				errs = append(errs, fmt.Errorf("restore snapshot %s: %w", meta.ID, err))
				continue
			}
			r.logger.Info("restored from snapshot", "id", meta.ID, "last-index", meta.Index)
		}
		if err := r.adoptSnapshotMeta(meta.Version, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, meta.Peers); err != nil {
			return err
		}
		return nil
	}
	if len(snapshots) > 0 {
		return fmt.Errorf("failed to load any existing snapshots: %w", errors.Join(errs...))
	}
	return nil
}

// adoptSnapshotMeta makes a restored snapshot the node's starting point:
// its entries are committed and applied, and its configuration is both
// latest and committed.
func (r *Raft) adoptSnapshotMeta(version SnapshotVersion, index, term uint64, configuration Configuration, configurationIndex uint64, peers []byte) error {
	if version == 0 {
		c, err := decodePeers(peers, r.trans)
		if err != nil {
			return fmt.Errorf("snapshot %d holds corrupt peers: %w", index, err)
		}
		configuration, configurationIndex = c, index
	}
	r.setLastSnapshot(index, term)
	r.lastApplied.Store(index)
	r.dispatchedIndex = max(r.dispatchedIndex, index)
	if r.getCommitIndex() < index {
		r.commitIndex.Store(index)
	}
	r.setCommittedConfiguration(configuration, configurationIndex)
	r.setLatestConfiguration(configuration, configurationIndex)
	return nil
}

// restoreCommittedLogs replays the entries the log store recorded as
// committed into the FSM, before the node starts.
func (r *Raft) restoreCommittedLogs() error {
	store, ok := r.logs.(CommitTrackingLogStore)
	if !ok {
		return ErrIncompatibleLogStore
	}
	commitIndex, err := store.GetCommitIndex()
	if err != nil {
		return fmt.Errorf("failed to read commit index from log store: %w", err)
	}
	lastIndex, _ := r.getLastLog()
	commitIndex = min(commitIndex, lastIndex)
	configStore, hasConfigStore := r.fsm.(ConfigurationStore)
	for index := r.dispatchedIndex + 1; index <= commitIndex; index++ {
		var entry Log
		if err := r.logs.GetLog(index, &entry); err != nil {
			return fmt.Errorf("failed to read committed log %d: %w", index, err)
		}
		switch entry.Type {
		case LogCommand:
			r.fsm.Apply(&entry)
		case LogConfiguration:
			if hasConfigStore {
				if c, err := decodeConfiguration(entry.Data); err == nil {
					configStore.StoreConfiguration(entry.Index, c)
				}
			}
		}
		r.dispatchedIndex = index
		r.lastApplied.Store(index)
	}
	if r.getCommitIndex() < commitIndex {
		r.commitIndex.Store(commitIndex)
	}
	return nil
}

// runSnapshots is the snapshot goroutine: it takes a snapshot every
// [SnapshotInterval, 2×SnapshotInterval) when enough entries were appended
// since the last one, and whenever the user asks.
func (r *Raft) runSnapshots() {
	rng := r.rand.stream("snapshots")
	for {
		select {
		case <-rng.timeout(r.config().SnapshotInterval):
			if !r.shouldSnapshot() {
				continue
			}
			if _, err := r.takeSnapshot(); err != nil && !errors.Is(err, ErrNothingNewToSnapshot) {
				r.logger.Error("failed to take snapshot", "error", err)
			}
		case f := <-r.userSnapshotCh:
			id, err := r.takeSnapshot()
			if err != nil {
				f.respond(err)
				continue
			}
			f.opener = func() (*SnapshotMeta, io.ReadCloser, error) { return r.snapshots.Open(id) }
			f.respond(nil)
		case <-r.shutdownCh:
			return
		}
	}
}

func (r *Raft) shouldSnapshot() bool {
	snapshotIndex, _ := r.getLastSnapshot()
	lastIndex, _ := r.getLastLog()
	return lastIndex >= snapshotIndex && lastIndex-snapshotIndex >= r.config().SnapshotThreshold
}

// Snapshot takes a snapshot now. Open on the returned future reads it.
func (r *Raft) Snapshot() SnapshotFuture {
	f := &userSnapshotFuture{}
	r.initFuture(&f.deferError)
	select {
	case r.userSnapshotCh <- f:
	case <-r.shutdownCh:
		f.respond(ErrRaftShutdown)
	}
	return f
}

// takeSnapshot snapshots the FSM, persists it and compacts the log. It
// returns the snapshot's ID.
func (r *Raft) takeSnapshot() (string, error) {
	defer measureSince([]string{"raft", "snapshot", "takeSnapshot"}, time.Now())
	req := &reqSnapshotFuture{}
	r.initFuture(&req.deferError)
	select {
	case r.fsmSnapshotCh <- req:
	case <-r.shutdownCh:
		return "", ErrRaftShutdown
	}
	if err := req.Error(); err != nil {
		if errors.Is(err, ErrNothingNewToSnapshot) {
			return "", err
		}
		return "", fmt.Errorf("failed to start snapshot: %w", err)
	}
	defer req.snapshot.Release()

	configs, err := r.getConfigurations()
	if err != nil {
		return "", fmt.Errorf("failed to get configuration: %w", err)
	}
	var configuration Configuration
	var configurationIndex uint64
	switch {
	case configs.latestIndex <= req.index:
		configuration, configurationIndex = configs.latest, configs.latestIndex
	case configs.committedIndex <= req.index:
		configuration, configurationIndex = configs.committed, configs.committedIndex
	default:
		return "", fmt.Errorf("cannot take snapshot now, wait until the configuration entry at %v has been applied (have applied %v)",
			configs.committedIndex, req.index)
	}

	start := time.Now()
	sink, err := r.snapshots.Create(SnapshotVersionMax, req.index, req.term, configuration, configurationIndex, r.trans)
	if err != nil {
		return "", fmt.Errorf("failed to create snapshot: %w", err)
	}
	measureSince([]string{"raft", "snapshot", "create"}, start)
	start = time.Now()
	tracked := &closeTrackingSink{SnapshotSink: sink}
	if err := req.snapshot.Persist(tracked); err != nil {
		_ = sink.Cancel()
		return "", fmt.Errorf("failed to persist snapshot: %w", err)
	}
	measureSince([]string{"raft", "snapshot", "persist"}, start)
	// Persist normally closes the sink itself; close it if it did not.
	if !tracked.closed {
		tracked.closeErr = sink.Close()
	}
	if tracked.closeErr != nil {
		return "", fmt.Errorf("failed to close snapshot: %w", tracked.closeErr)
	}
	r.setLastSnapshot(req.index, req.term)
	if err := r.compactLogs(req.index); err != nil {
		return "", err
	}
	r.logger.Info("snapshot complete up to", "index", req.index)
	return sink.ID(), nil
}

// closeTrackingSink remembers whether FSMSnapshot.Persist closed the sink,
// so the node closes it exactly once.
type closeTrackingSink struct {
	SnapshotSink
	closed   bool
	closeErr error
}

func (s *closeTrackingSink) Close() error {
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	s.closeErr = s.SnapshotSink.Close()
	return s.closeErr
}

// compactLogs deletes the entries a snapshot at snapshotIndex covers,
// keeping TrailingLogs entries for followers that are a little behind.
func (r *Raft) compactLogs(snapshotIndex uint64) error {
	defer measureSince([]string{"raft", "compactLogs"}, time.Now())
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to get first log index: %w", err)
	}
	// The store's own last index, not the in-memory one: a leader's log
	// writer may still be writing entries the snapshot already covers
	// (they committed on followers' acknowledgements), and the log must
	// stay contiguous once it has written them.
	lastIndex, err := r.logs.LastIndex()
	if err != nil {
		return fmt.Errorf("failed to get last log index: %w", err)
	}
	trailing := r.config().TrailingLogs
	if lastIndex <= trailing {
		return nil
	}
	maxIndex := min(snapshotIndex, lastIndex-trailing)
	if first == 0 || maxIndex < first {
		return nil
	}
	r.logger.Info("compacting logs", "from", first, "to", maxIndex)
	if err := r.logs.DeleteRange(first, maxIndex); err != nil {
		return fmt.Errorf("log compaction failed: %w", err)
	}
	r.tail.dropThrough(maxIndex)
	return nil
}

// installSnapshot handles an InstallSnapshot request: store the snapshot,
// restore the FSM from it, adopt its configuration, and drop the log it
// replaces.
func (r *Raft) installSnapshot(rpc RPC, req *InstallSnapshotRequest) {
	defer measureSince([]string{"raft", "rpc", "installSnapshot"}, time.Now())
	resp := &InstallSnapshotResponse{Term: r.getCurrentTerm()}
	var rpcErr error
	defer func() {
		// Keep the stream in step even when refusing.
		if rpc.Reader != nil {
			_, _ = io.Copy(io.Discard, rpc.Reader)
		}
		rpc.Respond(resp, rpcErr)
	}()

	if req.SnapshotVersion < SnapshotVersionMin || req.SnapshotVersion > SnapshotVersionMax {
		rpcErr = fmt.Errorf("unsupported snapshot version %d", req.SnapshotVersion)
		return
	}
	if req.Term < r.getCurrentTerm() {
		return
	}
	if req.Term > r.getCurrentTerm() || r.getState() != Follower {
		if err := r.stepDownTo(req.Term); err != nil {
			rpcErr = err
			return
		}
		resp.Term = req.Term
	}
	leaderAddr := req.Addr
	if len(leaderAddr) == 0 {
		leaderAddr = req.Leader
	}
	r.setLeader(r.trans.DecodePeer(leaderAddr), ServerID(req.ID))
	if rpc.Reader == nil || req.Size < 0 {
		rpcErr = errors.New("install snapshot: no snapshot data")
		return
	}

	var configuration Configuration
	configurationIndex := req.ConfigurationIndex
	var err error
	if req.SnapshotVersion > 0 {
		configuration, err = decodeConfiguration(req.Configuration)
	} else {
		configuration, err = decodePeers(req.Peers, r.trans)
		configurationIndex = req.LastLogIndex
	}
	if err != nil {
		rpcErr = fmt.Errorf("install snapshot: corrupt configuration: %w", err)
		return
	}

	sink, err := r.snapshots.Create(SnapshotVersionMax, req.LastLogIndex, req.LastLogTerm, configuration, configurationIndex, r.trans)
	if err != nil {
		rpcErr = fmt.Errorf("failed to create snapshot to install: %w", err)
		return
	}
	n, err := io.Copy(sink, io.LimitReader(rpc.Reader, req.Size))
	if err != nil {
		_ = sink.Cancel()
		rpcErr = fmt.Errorf("failed to copy snapshot: %w", err)
		return
	}
	if n != req.Size {
		_ = sink.Cancel()
		r.logger.Error("failed to receive whole snapshot", "received", n, "expected", req.Size)
		rpcErr = errShortRead
		return
	}
	if err := sink.Close(); err != nil {
		rpcErr = fmt.Errorf("failed to finalize snapshot: %w", err)
		return
	}

	restore := &restoreFuture{ID: sink.ID()}
	r.initFuture(&restore.deferError)
	select {
	case r.fsmMutateCh <- restore:
	case <-r.shutdownCh:
		rpcErr = ErrRaftShutdown
		return
	}
	if err := restore.Error(); err != nil {
		r.logger.Error("failed to restore snapshot", "id", sink.ID(), "error", err)
		rpcErr = err
		return
	}
	r.dispatchedIndex = req.LastLogIndex
	if err := r.adoptSnapshotMeta(SnapshotVersionMax, req.LastLogIndex, req.LastLogTerm, configuration, configurationIndex, nil); err != nil {
		rpcErr = err
		return
	}
	r.trimLogAfterInstall(req.LastLogIndex, req.LastLogTerm)
	r.logger.Info("installed remote snapshot", "index", req.LastLogIndex, "term", req.LastLogTerm)
	resp.Success = true
	r.lastContact.store(time.Now())
}

// trimLogAfterInstall drops the log a snapshot replaced. §7: if our log
// holds the snapshot's last entry, the entries after it stay; otherwise the
// whole log goes. A MonotonicLogStore cannot hold a gap, so it is emptied.
func (r *Raft) trimLogAfterInstall(index, term uint64) {
	entry, err := r.getEntry(index)
	if err == nil && entry.Term == term && !r.isMonotonic() {
		if err := r.compactLogs(index); err != nil {
			r.logger.Error("failed to compact logs", "error", err)
		}
		return
	}
	r.deleteWholeLog()
	r.setLastLog(0, 0)
}

// deleteWholeLog empties the log store and the in-memory tail, for a
// snapshot that replaces the whole log.
func (r *Raft) deleteWholeLog() {
	first, err1 := r.logs.FirstIndex()
	last, err2 := r.logs.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		r.logger.Error("failed to read log bounds", "error", err)
	} else if last > 0 {
		if err := r.logs.DeleteRange(first, last); err != nil {
			r.logger.Error("failed to delete the log a snapshot replaced", "error", err)
		}
	}
	r.tail.reset()
}

// isMonotonic reports whether the log store cannot hold gaps.
func (r *Raft) isMonotonic() bool {
	m, ok := r.logs.(MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// sendLatestSnapshot sends our newest snapshot to a follower whose next
// entry was compacted away. It reports whether the follower knows a newer
// term.
func (s *followerReplication) sendLatestSnapshot() (newerTerm bool, err error) {
	r := s.r
	snapshots, err := r.snapshots.List()
	if err != nil {
		return false, fmt.Errorf("failed to list snapshots: %w", err)
	}
	if len(snapshots) == 0 {
		return false, errors.New("no snapshots found")
	}
	meta, data, err := r.snapshots.Open(snapshots[0].ID)
	if err != nil {
		return false, fmt.Errorf("failed to open snapshot %s: %w", snapshots[0].ID, err)
	}
	defer data.Close()
	peer := s.getPeer()
	req := &InstallSnapshotRequest{
		RPCHeader:          r.header(),
		SnapshotVersion:    meta.Version,
		Term:               s.term,
		Leader:             r.rpcHeader.Addr,
		LastLogIndex:       meta.Index,
		LastLogTerm:        meta.Term,
		Peers:              meta.Peers,
		Size:               meta.Size,
		Configuration:      EncodeConfiguration(meta.Configuration),
		ConfigurationIndex: meta.ConfigurationIndex,
	}
	start := time.Now()
	var resp InstallSnapshotResponse
	if err := r.trans.InstallSnapshot(peer.ID, peer.Address, req, &resp, data); err != nil {
		return false, fmt.Errorf("failed to install snapshot %s on %s: %w", meta.ID, peer.ID, err)
	}
	label := metricLabel{Name: "peer_id", Value: string(peer.ID)}
	measureSince([]string{"raft", "replication", "installSnapshot"}, start, label)
	if !r.config().NoLegacyTelemetry {
		measureSince([]string{"raft", "replication", "installSnapshot", string(peer.ID)}, start)
	}
	if resp.Term > s.term {
		s.signalStepDown(resp.Term)
		return true, nil
	}
	s.lastContact.store(time.Now())
	if !resp.Success {
		return false, fmt.Errorf("peer %s refused snapshot %s", peer.ID, meta.ID)
	}
	s.failures = 0
	s.nextIndex = meta.Index + 1
	s.commitment.match(peer.ID, meta.Index)
	r.logger.Info("snapshot sent to peer", "peer", peer.ID, "index", meta.Index)
	return false, nil
}
