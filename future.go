package raft

import (
	"io"
	"sync"
	"time"
)

// Future is the result of an asynchronous operation.
type Future interface {
	// Error blocks until the operation finishes and returns its error, or
	// nil on success. It may be called any number of times, from any
	// goroutine; every call returns the same value.
	Error() error
}

// IndexFuture is a Future that also names a log index.
type IndexFuture interface {
	Future

	// Index is the log index of the operation's entry; valid once Error
	// has returned nil.
	Index() uint64
}

// ApplyFuture is the result of Apply: the entry's index and the value the
// leader's FSM returned for it.
type ApplyFuture interface {
	IndexFuture

	// Response is what FSM.Apply returned for the entry; valid once Error
	// has returned nil. An FSM reports its own errors through this value,
	// never through Error.
	Response() interface{}
}

// ConfigurationFuture is the result of GetConfiguration.
type ConfigurationFuture interface {
	IndexFuture

	// Configuration is the latest configuration; valid once Error has
	// returned nil.
	Configuration() Configuration
}

// SnapshotFuture is the result of a user-requested snapshot.
type SnapshotFuture interface {
	Future

	// Open opens the snapshot that was taken. The caller closes the reader.
	Open() (*SnapshotMeta, io.ReadCloser, error)
}

// LeadershipTransferFuture is the result of a leadership transfer.
type LeadershipTransferFuture interface {
	Future
}

// deferError is the completion part shared by every future: respond sets
// the outcome once, Error waits for it. If the node shuts down first, Error
// returns ErrRaftShutdown, so no caller ever waits forever.
type deferError struct {
	err        error
	done       chan struct{}
	once       sync.Once
	shutdownCh <-chan struct{}
}

func (d *deferError) init() {
	d.done = make(chan struct{})
}

// respond records the outcome. Only the first call counts.
func (d *deferError) respond(err error) {
	d.once.Do(func() {
		d.err = err
		close(d.done)
	})
}

func (d *deferError) Error() error {
	select {
	case <-d.done:
		return d.err
	case <-d.shutdownCh:
		// An outcome recorded before the shutdown wins over it.
		select {
		case <-d.done:
			return d.err
		default:
			return ErrRaftShutdown
		}
	}
}

// errorFuture is returned when an operation fails before it starts.
type errorFuture struct {
	err error
}

func (e errorFuture) Error() error          { return e.err }
func (e errorFuture) Index() uint64         { return 0 }
func (e errorFuture) Response() interface{} { return nil }

// logFuture carries one entry through the leader's pipeline: Apply,
// Barrier, configuration changes and the leader's own no-op.
type logFuture struct {
	deferError
	log      Log
	response interface{}
	// dispatch is when the leader appended the entry, for commitTime.
	dispatch time.Time
}

func (l *logFuture) Index() uint64         { return l.log.Index }
func (l *logFuture) Response() interface{} { return l.response }

// shutdownFuture waits for the node's goroutines to stop.
type shutdownFuture struct {
	raft *Raft
}

func (s *shutdownFuture) Error() error {
	if s.raft == nil {
		return nil
	}
	s.raft.waitShutdown()
	return nil
}

// verifyFuture collects heartbeat answers of one leadership check.
type verifyFuture struct {
	deferError
	mu       sync.Mutex
	notifyCh chan *verifyFuture
	stopCh   <-chan struct{}
	// tally counts the voters that confirmed us, ourselves included.
	tally    *tally
	voteDone bool
	// reads are the ReadIndex calls this check confirms, if any.
	reads []*readIndexFuture
}

// answer resolves the check and the read it confirms: a confirmed read
// then waits for the FSM to apply its index.
func (v *verifyFuture) answer(r *Raft, err error) {
	v.respond(err)
	for _, f := range v.reads {
		if err != nil {
			f.respond(err)
		} else {
			r.readWaiters.add(r, f)
		}
	}
}

// vote records one peer's answer to a heartbeat sent after the check began.
// A refusal means a newer term exists: the check fails at once.
func (v *verifyFuture) vote(peer ServerID, leader bool) {
	v.mu.Lock()
	if v.voteDone {
		v.mu.Unlock()
		return
	}
	if leader {
		v.voteDone = v.tally.grant(peer)
	} else {
		v.voteDone = true
	}
	decided := v.voteDone
	v.mu.Unlock()
	if decided {
		select {
		case v.notifyCh <- v:
		case <-v.stopCh:
			// Leadership ended; the leader answers pending checks itself.
		}
	}
}

// configurationsFuture reads the configuration pair from the main loop.
type configurationsFuture struct {
	deferError
	configurations configurations
}

// apiConfigurationFuture is what GetConfiguration returns: it never fails.
type apiConfigurationFuture struct {
	configuration Configuration
	index         uint64
}

func (c *apiConfigurationFuture) Error() error                 { return nil }
func (c *apiConfigurationFuture) Index() uint64                { return c.index }
func (c *apiConfigurationFuture) Configuration() Configuration { return c.configuration }

// bootstrapFuture asks the main loop to bootstrap the cluster.
type bootstrapFuture struct {
	deferError
	configuration Configuration
}

// configurationChangeFuture asks the leader to change the membership.
type configurationChangeFuture struct {
	logFuture
	req configurationChangeRequest
}

// leadershipTransferFuture asks the leader to hand over leadership.
type leadershipTransferFuture struct {
	deferError
	id      *ServerID
	address *ServerAddress
}

// userSnapshotFuture asks for a snapshot now.
type userSnapshotFuture struct {
	deferError
	opener func() (*SnapshotMeta, io.ReadCloser, error)
}

func (u *userSnapshotFuture) Open() (*SnapshotMeta, io.ReadCloser, error) {
	if u.opener == nil {
		return nil, nil, errNoSnapshot
	}
	return u.opener()
}

// userRestoreFuture asks the leader to restore a user snapshot.
type userRestoreFuture struct {
	deferError
	meta   *SnapshotMeta
	reader io.Reader
}

// reqSnapshotFuture asks the FSM runner for an FSM snapshot.
type reqSnapshotFuture struct {
	deferError
	index    uint64
	term     uint64
	snapshot FSMSnapshot
}

// fsmDrainFuture resolves once the FSM runner has handled everything
// queued before it.
type fsmDrainFuture struct {
	deferError
}

// restoreFuture asks the FSM runner to restore a stored snapshot.
type restoreFuture struct {
	deferError
	ID string
}
