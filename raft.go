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

// Keys of the StableStore (docs/COMPATIBILITY.md §4).
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
	opsCh chan mainLoopRequest
	// configurationChangeCh carries membership changes; the leader reads
	// it only while no change is in flight.
	configurationChangeCh chan *configurationChangeFuture
	// rpcCh is the transport's consumer channel.
	rpcCh <-chan RPC
	// heartbeatCh carries heartbeats from the transport's fast path that
	// the fast path could not answer on its own.
	heartbeatCh chan RPC
	// fsmMutateCh carries committed batches and restores to the FSM runner.
	fsmMutateCh chan fsmRequest
	// fsmSnapshotCh carries snapshot requests to the FSM runner.
	fsmSnapshotCh chan *reqSnapshotFuture
	// userSnapshotCh carries user snapshot requests to the snapshot runner.
	userSnapshotCh chan *userSnapshotFuture
	// timerResetCh pokes the follower timer after a lowered timeout.
	timerResetCh chan struct{}
	// leaderCh reports leadership changes to LeaderCh readers; it holds
	// the newest value only.
	leaderCh chan bool

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

	// fsmAppliedSinceRestore is set by the FSM runner once it applies an
	// entry, and cleared by every restore: until then the FSM holds nothing
	// a new snapshot would add (ErrNothingNewToSnapshot).
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
	currentTerm, lastLog, err := loadTermAndLastLog(stable, logs)
	if err != nil {
		return nil, err
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
		opsCh:                 make(chan mainLoopRequest),
		configurationChangeCh: make(chan *configurationChangeFuture),
		rpcCh:                 trans.Consumer(),
		heartbeatCh:           make(chan RPC),
		fsmMutateCh:           make(chan fsmRequest, fsmQueueSize),
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
	if err := r.recoverState(); err != nil {
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

// loadTermAndLastLog reads the current term and the last log entry a
// starting node resumes from.
func loadTermAndLastLog(stable StableStore, logs LogStore) (uint64, Log, error) {
	var lastLog Log
	currentTerm, err := getUint64(stable, keyCurrentTerm)
	if err != nil {
		return 0, lastLog, fmt.Errorf("failed to load current term: %w", err)
	}
	lastIndex, err := logs.LastIndex()
	if err != nil {
		return 0, lastLog, fmt.Errorf("failed to find last log: %w", err)
	}
	if lastIndex > 0 {
		if err := logs.GetLog(lastIndex, &lastLog); err != nil {
			return 0, lastLog, fmt.Errorf("failed to get last log at index %d: %w", lastIndex, err)
		}
	}
	return currentTerm, lastLog, nil
}

// recoverState brings a starting node up to what its stores hold: the
// newest restorable snapshot, the committed entries when
// RestoreCommittedLogs asks for them, and the configuration pair.
func (r *Raft) recoverState() error {
	if err := r.restoreSnapshot(); err != nil {
		return err
	}
	if err := r.checkNoGapBeforeLog(); err != nil {
		return err
	}
	if r.config().RestoreCommittedLogs {
		if err := r.restoreCommittedLogs(); err != nil {
			return err
		}
	}
	return r.loadConfigurationsFromLog()
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
