package raft

import (
	"sync/atomic"
	"time"
)

// Observation is sent along the given channel to observers when an event
// occurs.
type Observation struct {
	// Raft is the node that produced the observation.
	Raft *Raft
	// Data is one of the observation types of this file, a RaftState, or
	// a RequestVoteRequest / RequestPreVoteRequest value.
	Data interface{}
}

// LeaderObservation is sent when the known leader changes, including to
// no leader ("").
type LeaderObservation struct {
	// Leader is the leader's address.
	//
	// Deprecated: use LeaderAddr.
	Leader     ServerAddress
	LeaderAddr ServerAddress
	LeaderID   ServerID
}

// PeerObservation is sent when the leader starts or stops replicating to a
// peer.
type PeerObservation struct {
	Removed bool
	Peer    Server
}

// FailedHeartbeatObservation is sent when the leader's heartbeats to a peer
// start failing.
type FailedHeartbeatObservation struct {
	PeerID      ServerID
	LastContact time.Time
}

// ResumedHeartbeatObservation is sent when heartbeats to a peer succeed
// again after failures.
type ResumedHeartbeatObservation struct {
	PeerID ServerID
}

// FilterFn decides whether an observation is sent to an observer.
type FilterFn func(o *Observation) bool

// Observer receives observations from a node it is registered with.
type Observer struct {
	numObserved atomic.Uint64
	numDropped  atomic.Uint64

	// channel receives the observations.
	channel chan Observation

	// blocking makes the node wait for room in channel rather than drop the
	// observation. A blocking observer that is not read stalls the node.
	blocking bool

	// filter, if set, selects the observations to send.
	filter FilterFn

	// id tells observers apart for Deregister.
	id uint64
}

var nextObserverID atomic.Uint64

// NewObserver creates an observer that sends observations to channel,
// waiting for room when blocking is set and dropping them otherwise, for the
// observations filter accepts (all when filter is nil).
func NewObserver(channel chan Observation, blocking bool, filter FilterFn) *Observer {
	return &Observer{
		channel:  channel,
		blocking: blocking,
		filter:   filter,
		id:       nextObserverID.Add(1),
	}
}

// GetNumObserved returns how many observations were sent to the observer.
func (or *Observer) GetNumObserved() uint64 { return or.numObserved.Load() }

// GetNumDropped returns how many observations a non-blocking observer lost
// because its channel was full.
func (or *Observer) GetNumDropped() uint64 { return or.numDropped.Load() }

// RegisterObserver registers a new observer.
func (r *Raft) RegisterObserver(or *Observer) {
	r.observersLock.Lock()
	defer r.observersLock.Unlock()
	r.observers[or.id] = or
}

// DeregisterObserver deregisters an observer.
func (r *Raft) DeregisterObserver(or *Observer) {
	r.observersLock.Lock()
	defer r.observersLock.Unlock()
	delete(r.observers, or.id)
}

// observe sends an observation to every registered observer that wants it.
func (r *Raft) observe(o interface{}) {
	ob := Observation{Raft: r, Data: o}
	r.observersLock.RLock()
	defer r.observersLock.RUnlock()
	for _, or := range r.observers {
		if or.filter != nil && !or.filter(&ob) {
			continue
		}
		if or.channel == nil {
			continue
		}
		if or.blocking {
			select {
			case or.channel <- ob:
				or.numObserved.Add(1)
			case <-r.shutdownCh:
			}
			continue
		}
		select {
		case or.channel <- ob:
			or.numObserved.Add(1)
		default:
			or.numDropped.Add(1)
		}
	}
}
