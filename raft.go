package raft

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Keys of the StableStore (API.md §3.1).
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

const (
	// fsmQueueSize is how many batches of committed entries may wait for
	// the FSM runner before the main loop waits for it.
	fsmQueueSize = 128
	// tailEntries is how many recent entries every node keeps in memory.
	tailEntries = 8192
	// minCheckInterval bounds how often the leader re-checks its lease.
	minCheckInterval = 10 * time.Millisecond
)

// Raft is one node of a Raft cluster. Create it with NewRaft; all methods
// are safe for concurrent use.
type Raft struct {
	raftState

	// RestoreCommittedLogs is a copy of Config.RestoreCommittedLogs.
	RestoreCommittedLogs bool

	// conf is the current configuration; ReloadConfig replaces it.
	conf         atomic.Pointer[Config]
	confReloadMu sync.Mutex

	localID   ServerID
	localAddr ServerAddress
	logger    hclog.Logger

	fsm FSM
	// logs is the LogStore, for reading only: every write goes through
	// log, its one writer.
	logs      LogStore
	stable    StableStore
	snapshots SnapshotStore
	trans     Transport
	// log owns the log: the store's writes, the in-memory tail, and the
	// last-log and last-snapshot pairs.
	log *raftLog

	// mainSaturation and fsmSaturation measure how busy the main loop and
	// the FSM runner are; each is used by its own goroutine only.
	mainSaturation *saturation
	fsmSaturation  *saturation
	// rpcHeader is the header of every RPC this node sends.
	rpcHeader RPCHeader

	// preVote is set when prevote is on and the transport carries it.
	preVote bool

	// applyCh carries Apply, Barrier and similar entries to the leader.
	applyCh chan *logFuture
	// readCh carries ReadIndex calls; the leader takes all waiting at once
	// and confirms them with one round.
	readCh chan *readIndexFuture
	// opsCh carries every other request for the main loop: verify,
	// configuration reads, bootstrap, transfer, restore.
	opsCh chan interface{}
	// configurationChangeCh carries membership changes; the leader reads
	// it only while no change is in flight.
	configurationChangeCh chan *configurationChangeFuture
	// rpcCh is the transport's consumer channel.
	rpcCh <-chan RPC
	// heartbeatCh carries heartbeats from the transport's fast path that
	// the fast path could not answer on its own.
	heartbeatCh chan RPC
	// fsmMutateCh carries committed batches and restores to the FSM runner.
	fsmMutateCh chan interface{}
	// fsmSnapshotCh carries snapshot requests to the FSM runner.
	fsmSnapshotCh chan *reqSnapshotFuture
	// userSnapshotCh carries user snapshot requests to the snapshot runner.
	userSnapshotCh chan *userSnapshotFuture
	// timerResetCh pokes the follower timer after a lowered timeout.
	timerResetCh chan struct{}
	// leaderCh reports leadership changes to LeaderCh readers; it holds
	// the newest value only.
	leaderCh chan bool

	// leaderState is the leader's per-term state; main loop only.
	leaderState leaderState
	// candidateFromLeadershipTransfer is set by TimeoutNow: the next
	// election skips prevote and asks voters to ignore their leader.
	candidateFromLeadershipTransfer atomic.Bool

	// configurations is the latest and committed configuration pair;
	// main loop only.
	configurations configurations
	// latestConfiguration is a copy of configurations.latest for readers.
	latestConfiguration atomic.Pointer[indexedConfiguration]

	// dispatchedIndex is the highest index handed to the FSM runner; main
	// loop only.
	dispatchedIndex uint64

	// heartbeatMu is held by the main loop while it changes term, state or
	// leader, and by the heartbeat fast path while it answers, so that a
	// fast answer never mixes two terms.
	heartbeatMu sync.Mutex
	leaderAddr  ServerAddress
	leaderID    ServerID
	lastContact atomicTime

	// fsmRestoredAt and similar are kept by the FSM runner.
	fsmAppliedSinceRestore atomic.Bool
	// readWaiters hold confirmed ReadIndex calls until their index is
	// applied.
	readWaiters readWaiters
	// startedAt starts the lease quiet period (inLeaseQuietPeriod).
	startedAt time.Time
	// rand is the source of the node's random choices (random.go).
	rand *nodeRand
	// clock is the node's time for elections and leases (clock.go).
	clock nodeClock

	shutdownMu sync.Mutex
	shutdown   bool
	shutdownCh chan struct{}
	goroutines sync.WaitGroup
	// closedCh is closed when every goroutine has stopped and the
	// transport is closed.
	closedCh chan struct{}

	observersLock sync.RWMutex
	observers     map[uint64]*Observer
}

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

// NewRaft creates a node from its stores and starts it. If the stores hold
// state, the node resumes from it: term, vote, log, and the newest snapshot
// (restored into fsm unless NoSnapshotRestoreOnStart). A new cluster is
// started with BootstrapCluster.
func NewRaft(conf *Config, fsm FSM, logs LogStore, stable StableStore, snaps SnapshotStore, trans Transport) (*Raft, error) {
	if err := ValidateConfig(conf); err != nil {
		return nil, err
	}
	if fsm == nil || logs == nil || stable == nil || snaps == nil || trans == nil {
		return nil, errors.New("raft: fsm, log store, stable store, snapshot store and transport are all required")
	}
	logger := newLogger(conf)

	currentTerm, err := getUint64(stable, keyCurrentTerm)
	if err != nil {
		return nil, fmt.Errorf("failed to load current term: %w", err)
	}
	lastIndex, err := logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("failed to find last log: %w", err)
	}
	var lastLog Log
	if lastIndex > 0 {
		if err := logs.GetLog(lastIndex, &lastLog); err != nil {
			return nil, fmt.Errorf("failed to get last log at index %d: %w", lastIndex, err)
		}
	}

	localAddr := trans.LocalAddr()
	localID := conf.LocalID
	clock := newNodeClock(conf, trans)

	r := &Raft{
		RestoreCommittedLogs:  conf.RestoreCommittedLogs,
		localID:               localID,
		localAddr:             localAddr,
		logger:                logger,
		fsm:                   fsm,
		logs:                  logs,
		stable:                stable,
		snapshots:             snaps,
		trans:                 trans,
		opsCh:                 make(chan interface{}),
		configurationChangeCh: make(chan *configurationChangeFuture),
		rpcCh:                 trans.Consumer(),
		heartbeatCh:           make(chan RPC),
		fsmMutateCh:           make(chan interface{}, fsmQueueSize),
		fsmSnapshotCh:         make(chan *reqSnapshotFuture),
		userSnapshotCh:        make(chan *userSnapshotFuture),
		timerResetCh:          make(chan struct{}, 1),
		leaderCh:              make(chan bool, 1),
		shutdownCh:            make(chan struct{}),
		startedAt:             clock.now(),
		clock:                 clock,
		rand:                  newNodeRand(conf, trans).withClock(clock),
		observers:             map[uint64]*Observer{},
	}
	confCopy := *conf
	r.conf.Store(&confCopy)
	r.mainSaturation = newSaturation([]string{"raft", "thread", "main", "saturation"})
	r.fsmSaturation = newSaturation([]string{"raft", "thread", "fsm", "saturation"})
	r.log = newRaftLog(logs, logger, r.shutdownCh, r.getCommitIndex,
		func() uint64 { return r.config().TrailingLogs }, conf.strictInvariants)
	r.rpcHeader = RPCHeader{
		ProtocolVersion: conf.ProtocolVersion,
		ID:              []byte(localID),
		Addr:            trans.EncodePeer(localID, localAddr),
	}
	r.readCh = make(chan *readIndexFuture, 256)
	if conf.BatchApplyCh {
		r.applyCh = make(chan *logFuture, conf.MaxAppendEntries)
	} else {
		r.applyCh = make(chan *logFuture)
	}
	if _, ok := trans.(WithPreVote); ok && !conf.PreVoteDisabled {
		r.preVote = true
	} else if !conf.PreVoteDisabled {
		logger.Warn("prevote is on but the transport does not support it; running elections without it")
	}

	r.setStateValue(Follower)
	r.currentTerm.Store(currentTerm)
	r.log.setLast(lastLog.Index, lastLog.Term)
	r.publishLatestConfiguration()

	if err := r.restoreSnapshot(); err != nil {
		return nil, err
	}
	if err := r.checkNoGapBeforeLog(); err != nil {
		return nil, err
	}
	if conf.RestoreCommittedLogs {
		if err := r.restoreCommittedLogs(); err != nil {
			return nil, err
		}
	}
	if err := r.loadConfigurationsFromLog(); err != nil {
		return nil, err
	}

	if conf.skipStartup {
		return r, nil
	}
	trans.SetHeartbeatHandler(r.processHeartbeat)
	r.goFunc(r.log.writeLoop)
	r.goFunc(r.run)
	r.goFunc(r.runFSM)
	r.goFunc(r.runSnapshots)
	r.closedCh = make(chan struct{})
	go r.closeTransportAfterShutdown()
	return r, nil
}

// checkNoGapBeforeLog refuses to start when entries between the restored
// snapshot and the first entry of the log are in neither: the FSM could
// never be rebuilt (for instance the newest snapshot is corrupt and the log
// was compacted past the older one).
func (r *Raft) checkNoGapBeforeLog() error {
	first, err := r.logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("failed to read first log index: %w", err)
	}
	snapshotIndex, _ := r.getLastSnapshot()
	if first > snapshotIndex+1 {
		return fmt.Errorf("log starts at index %d but the newest restorable snapshot ends at %d: entries %d to %d are lost",
			first, snapshotIndex, snapshotIndex+1, first-1)
	}
	return nil
}

func newLogger(conf *Config) hclog.Logger {
	if conf.Logger != nil {
		return conf.Logger
	}
	output := conf.LogOutput
	if output == nil {
		output = os.Stderr
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.LevelFromString(conf.LogLevel),
		Output: output,
	})
}

// getUint64 reads a uint64 key, treating "not found" as 0.
func getUint64(stable StableStore, key []byte) (uint64, error) {
	v, err := stable.GetUint64(key)
	if err != nil {
		if err.Error() == "not found" {
			return 0, nil
		}
		return 0, err
	}
	return v, nil
}

// getBytes reads a byte key, treating "not found" as nil.
func getBytes(stable StableStore, key []byte) ([]byte, error) {
	v, err := stable.Get(key)
	if err != nil {
		if err.Error() == "not found" {
			return nil, nil
		}
		return nil, err
	}
	return v, nil
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

// goFunc runs f on a goroutine that Shutdown waits for.
func (r *Raft) goFunc(f func()) {
	r.goroutines.Add(1)
	go func() {
		defer r.goroutines.Done()
		f()
	}()
}

func (r *Raft) config() *Config { return r.conf.Load() }

// run is the main loop: it runs the loop of the current role until the
// node shuts down.
func (r *Raft) run() {
	for {
		select {
		case <-r.shutdownCh:
			r.setLeader("", "")
			return
		default:
		}
		switch r.getState() {
		case Follower:
			r.runFollower()
		case Candidate:
			r.runCandidate()
		case Leader:
			r.runLeader()
		default:
			return
		}
	}
}

// setState changes the role and tells observers. Shutdown is final: a
// node that has shut down never takes another role, whatever a goroutine
// still finishing its work decides (a vote counted during Shutdown); it
// returns false then.
func (r *Raft) setState(state RaftState) bool {
	r.heartbeatMu.Lock()
	old := r.getState()
	if old == Shutdown {
		r.heartbeatMu.Unlock()
		return false
	}
	r.setStateValue(state)
	r.heartbeatMu.Unlock()
	if old != state {
		r.observe(state)
	}
	return true
}

// setLeader records the known leader and tells observers of a change.
func (r *Raft) setLeader(addr ServerAddress, id ServerID) {
	r.heartbeatMu.Lock()
	oldAddr, oldID := r.leaderAddr, r.leaderID
	r.leaderAddr, r.leaderID = addr, id
	r.heartbeatMu.Unlock()
	if oldAddr != addr || oldID != id {
		r.observe(LeaderObservation{Leader: addr, LeaderAddr: addr, LeaderID: id})
	}
}

// setCurrentTerm makes term durable, then current. The caller must not act
// in the new term if this fails.
func (r *Raft) setCurrentTerm(term uint64) error {
	if err := r.stable.SetUint64(keyCurrentTerm, term); err != nil {
		r.logger.Error("failed to save current term", "term", term, "error", err)
		return fmt.Errorf("failed to save current term: %w", err)
	}
	r.heartbeatMu.Lock()
	r.currentTerm.Store(term)
	r.heartbeatMu.Unlock()
	return nil
}

// persistVote records our vote for candidate in term. It must be durable
// before the vote is granted.
func (r *Raft) persistVote(term uint64, candidate []byte) error {
	if err := r.stable.SetUint64(keyLastVoteTerm, term); err != nil {
		return err
	}
	return r.stable.Set(keyLastVoteCand, candidate)
}

// stepDownTo makes the node a follower of a newer term. If the term cannot
// be made durable the node still stops leading, but keeps its old term.
func (r *Raft) stepDownTo(term uint64) error {
	r.setState(Follower)
	if term > r.getCurrentTerm() {
		return r.setCurrentTerm(term)
	}
	return nil
}

// header is the RPC header this node sends. It is built once: protocol
// version, ID and address do not change while the node runs. Receivers
// treat its byte slices as read-only.
func (r *Raft) header() RPCHeader { return r.rpcHeader }

// checkRPCHeader refuses RPCs from peers speaking a protocol we do not:
// versions outside [own-1, ProtocolVersionMax].
func (r *Raft) checkRPCHeader(rpc RPC) error {
	wh, ok := rpc.Command.(WithRPCHeader)
	if !ok {
		return errUnexpectedCommand
	}
	v := wh.GetRPCHeader().ProtocolVersion
	if v < r.config().ProtocolVersion-1 || v > ProtocolVersionMax {
		return ErrUnsupportedProtocol
	}
	return nil
}

// processRPC handles an incoming RPC on the main loop, and any RPC the
// handler took off the channel after it (AppendEntries groups).
func (r *Raft) processRPC(rpc RPC) {
	for {
		next := r.processOneRPC(rpc)
		if next == nil {
			return
		}
		rpc = *next
	}
}

// processOneRPC handles one incoming RPC. It returns an RPC the handler
// took off the channel but did not handle.
func (r *Raft) processOneRPC(rpc RPC) (next *RPC) {
	if err := r.checkRPCHeader(rpc); err != nil {
		rpc.Respond(nil, err)
		return nil
	}
	switch cmd := rpc.Command.(type) {
	case *AppendEntriesRequest:
		return r.appendEntries(rpc, cmd)
	case *RequestVoteRequest:
		r.requestVote(rpc, cmd)
	case *RequestPreVoteRequest:
		r.requestPreVote(rpc, cmd)
	case *InstallSnapshotRequest:
		r.installSnapshot(rpc, cmd)
	case *TimeoutNowRequest:
		r.timeoutNow(rpc, cmd)
	default:
		r.logger.Error("got unexpected command", "command", hclog.Fmt("%#v", rpc.Command))
		rpc.Respond(nil, errUnexpectedCommand)
	}
	return nil
}

// processHeartbeat is the transport's fast path for heartbeats. A follower
// that already knows this leader in this term answers here, without waiting
// for the main loop (which may be busy with the disk); anything else goes
// to the main loop.
func (r *Raft) processHeartbeat(rpc RPC) {
	defer measureSince([]string{"raft", "rpc", "processHeartbeat"}, time.Now())
	req, ok := rpc.Command.(*AppendEntriesRequest)
	if !ok || r.checkRPCHeader(rpc) != nil || len(req.Entries) > 0 {
		r.forwardHeartbeat(rpc)
		return
	}
	r.heartbeatMu.Lock()
	known := r.getState() == Follower && req.Term == r.getCurrentTerm() &&
		r.leaderID != "" && ServerID(req.ID) == r.leaderID
	if known {
		r.lastContact.store(r.clock.now())
		lastIndex := r.getLastIndex()
		resp := &AppendEntriesResponse{
			RPCHeader: r.header(),
			Term:      req.Term,
			LastLog:   lastIndex,
			Success:   true,
		}
		r.heartbeatMu.Unlock()
		rpc.Respond(resp, nil)
		return
	}
	r.heartbeatMu.Unlock()
	r.forwardHeartbeat(rpc)
}

func (r *Raft) forwardHeartbeat(rpc RPC) {
	select {
	case r.heartbeatCh <- rpc:
	case <-r.shutdownCh:
		rpc.Respond(nil, ErrRaftShutdown)
	}
}

// timeoutNow starts an election at once, as asked by the leader handing
// over leadership. Unlike hashicorp/raft, a TimeoutNow from a server that is
// not our current leader is refused.
func (r *Raft) timeoutNow(rpc RPC, req *TimeoutNowRequest) {
	_, leaderID := r.LeaderWithID()
	if leaderID == "" || ServerID(req.ID) != leaderID {
		rpc.Respond(nil, fmt.Errorf("timeout now refused: %q is not the current leader", req.ID))
		return
	}
	r.setLeader("", "")
	r.candidateFromLeadershipTransfer.Store(true)
	r.setState(Candidate)
	rpc.Respond(&TimeoutNowResponse{RPCHeader: r.header()}, nil)
}

// Shutdown stops the node. The returned future's Error waits until every
// goroutine of the node has stopped. The transport is closed once they
// have, whether or not the caller waits. Later calls return a future that
// does nothing.
func (r *Raft) Shutdown() Future {
	r.shutdownMu.Lock()
	defer r.shutdownMu.Unlock()
	if r.shutdown {
		return &shutdownFuture{}
	}
	r.shutdown = true
	close(r.shutdownCh)
	r.setState(Shutdown)
	return &shutdownFuture{raft: r}
}

func (r *Raft) waitShutdown() {
	if r.closedCh == nil {
		return
	}
	<-r.closedCh
}

// closeTransportAfterShutdown closes the transport once the node's other
// goroutines have stopped, then marks shutdown complete.
func (r *Raft) closeTransportAfterShutdown() {
	defer close(r.closedCh)
	<-r.shutdownCh
	r.goroutines.Wait()
	if closer, ok := r.trans.(WithClose); ok {
		if err := closer.Close(); err != nil {
			r.logger.Warn("failed to close transport", "error", err)
		}
	}
}

// notifyLeadership reports a leadership change on LeaderCh and NotifyCh.
func (r *Raft) notifyLeadership(leader bool) {
	// LeaderCh keeps only the newest value.
	select {
	case r.leaderCh <- leader:
	default:
		select {
		case <-r.leaderCh:
		default:
		}
		select {
		case r.leaderCh <- leader:
		default:
		}
	}
	if ch := r.config().NotifyCh; ch != nil {
		if leader {
			select {
			case ch <- true:
			case <-r.shutdownCh:
			}
		} else {
			// Best effort when shutting down.
			select {
			case ch <- false:
			case <-r.shutdownCh:
				select {
				case ch <- false:
				default:
				}
			}
		}
	}
}
