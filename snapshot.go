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
	if err := r.log.moveSnapshot(index, term); err != nil {
		return err
	}
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
	if err := r.log.snapshotTaken(req.index, req.term); err != nil {
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

// installSnapshot handles an InstallSnapshot request: store the snapshot,
// restore the FSM from it, adopt its configuration, and drop the log it
// replaces.
func (r *Raft) installSnapshot(rpc RPC, req *InstallSnapshotRequest) {
	defer measureSince([]string{"raft", "rpc", "installSnapshot"}, time.Now())
	resp := &InstallSnapshotResponse{RPCHeader: r.header(), Term: r.getCurrentTerm()}
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
	if snapshotIndex, _ := r.getLastSnapshot(); req.LastLogIndex < snapshotIndex {
		// A stale request (a retry of one we already served, say): our
		// state is newer than the snapshot it carries.
		rpcErr = fmt.Errorf("install snapshot: snapshot through %d is older than ours through %d", req.LastLogIndex, snapshotIndex)
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
	if index, term := r.getLastSnapshot(); req.LastLogIndex == index && req.LastLogTerm == term {
		// We hold this very snapshot already (a retry of one we served):
		// our log matches at its last entry, so the entries after it stay
		// (§7), and the FSM, at or past it, is not rolled back.
		resp.Success = true
		r.lastContact.store(r.clock.now())
		return
	}
	if rpc.Reader == nil || req.Size < 0 {
		rpcErr = errors.New("install snapshot: no snapshot data")
		return
	}

	sinkID, configuration, configurationIndex, err := r.receiveSnapshot(rpc, req)
	if err != nil {
		rpcErr = err
		return
	}

	restore := &restoreFuture{ID: sinkID}
	r.initFuture(&restore.deferError)
	select {
	case r.fsmMutateCh <- restore:
	case <-r.shutdownCh:
		rpcErr = ErrRaftShutdown
		return
	}
	if err := restore.Error(); err != nil {
		r.logger.Error("failed to restore snapshot", "id", sinkID, "error", err)
		rpcErr = err
		return
	}
	r.dispatchedIndex = req.LastLogIndex
	if err := r.adoptSnapshotMeta(SnapshotVersionMax, req.LastLogIndex, req.LastLogTerm, configuration, configurationIndex, nil); err != nil {
		rpcErr = err
		return
	}
	if err := r.log.installSnapshot(req.LastLogIndex, req.LastLogTerm, r.isMonotonic()); err != nil {
		r.logger.Error("failed to drop the log the snapshot replaces", "error", err)
		rpcErr = err
		return
	}
	r.logger.Info("installed remote snapshot", "index", req.LastLogIndex, "term", req.LastLogTerm)
	resp.Success = true
	r.lastContact.store(r.clock.now())
}

// receiveSnapshot stores the snapshot an InstallSnapshot request carries in
// the snapshot store: its configuration, then exactly req.Size bytes of
// data. It returns the new snapshot's ID and configuration.
func (r *Raft) receiveSnapshot(rpc RPC, req *InstallSnapshotRequest) (id string, configuration Configuration, configurationIndex uint64, err error) {
	configurationIndex = req.ConfigurationIndex
	if req.SnapshotVersion > 0 {
		configuration, err = decodeConfiguration(req.Configuration)
	} else {
		configuration, err = decodePeers(req.Peers, r.trans)
		configurationIndex = req.LastLogIndex
	}
	if err != nil {
		return "", Configuration{}, 0, fmt.Errorf("install snapshot: corrupt configuration: %w", err)
	}

	sink, err := r.snapshots.Create(SnapshotVersionMax, req.LastLogIndex, req.LastLogTerm, configuration, configurationIndex, r.trans)
	if err != nil {
		return "", Configuration{}, 0, fmt.Errorf("failed to create snapshot to install: %w", err)
	}
	n, err := io.Copy(sink, io.LimitReader(rpc.Reader, req.Size))
	if err != nil {
		_ = sink.Cancel()
		return "", Configuration{}, 0, fmt.Errorf("failed to copy snapshot: %w", err)
	}
	if n != req.Size {
		_ = sink.Cancel()
		r.logger.Error("failed to receive whole snapshot", "received", n, "expected", req.Size)
		return "", Configuration{}, 0, errShortRead
	}
	if err := sink.Close(); err != nil {
		return "", Configuration{}, 0, fmt.Errorf("failed to finalize snapshot: %w", err)
	}
	return sink.ID(), configuration, configurationIndex, nil
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
	s.lastContact.store(r.clock.now())
	if !resp.Success {
		return false, fmt.Errorf("peer %s refused snapshot %s", peer.ID, meta.ID)
	}
	s.failures = 0
	s.nextIndex = meta.Index + 1
	s.commitment.match(peer.ID, meta.Index)
	r.logger.Info("snapshot sent to peer", "peer", peer.ID, "index", meta.Index)
	return false, nil
}
