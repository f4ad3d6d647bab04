package raft

import (
	"io"
	"time"
)

// RPCResponse is what the handler of an RPC sends back: a response value,
// an error, or both (some handlers report an error beside a filled response).
type RPCResponse struct {
	Response interface{}
	Error    error
}

// RPC is one incoming request, as a transport hands it to the Raft node.
type RPC struct {
	// Command is a pointer to one of the request types of this file.
	Command interface{}
	// Reader is set for InstallSnapshot: the snapshot's bytes, exactly
	// InstallSnapshotRequest.Size of them.
	Reader io.Reader
	// RespChan receives exactly one RPCResponse.
	RespChan chan<- RPCResponse
}

// Respond answers the RPC. It must be called exactly once.
func (r *RPC) Respond(resp interface{}, err error) {
	r.RespChan <- RPCResponse{resp, err}
}

// Transport carries RPCs between Raft nodes. Implementations exist for
// memory (InmemTransport) and TCP (NetworkTransport); users may write their
// own.
//
// Contract: every method may be called concurrently from several goroutines
// (one replicator per peer, the main loop, the heartbeat senders). A call
// returns an error when the peer could not be reached or answered with an
// error; resp is only meaningful when the error is nil.
type Transport interface {
	// Consumer returns the channel on which incoming RPCs arrive.
	Consumer() <-chan RPC

	// LocalAddr returns the address peers reach this transport at.
	LocalAddr() ServerAddress

	// AppendEntriesPipeline opens a pipeline of AppendEntries requests to
	// target, or returns ErrPipelineReplicationNotSupported.
	AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error)

	// AppendEntries sends one AppendEntries request and waits for its answer.
	AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error

	// RequestVote sends one RequestVote request and waits for its answer.
	RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error

	// InstallSnapshot sends a snapshot to target: the request, then exactly
	// args.Size bytes streamed from data.
	InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error

	// EncodePeer turns a peer's identity into the bytes put in RPC headers.
	EncodePeer(id ServerID, addr ServerAddress) []byte

	// DecodePeer is the inverse of EncodePeer.
	DecodePeer([]byte) ServerAddress

	// SetHeartbeatHandler installs a callback that handles heartbeats
	// directly, so they are answered even while the main loop waits on the
	// disk. Transports without such a path may ignore it and deliver
	// heartbeats through Consumer like any other RPC.
	SetHeartbeatHandler(cb func(rpc RPC))

	// TimeoutNow tells target to start an election at once (leadership
	// transfer).
	TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error
}

// WithClose is implemented by transports that hold resources. Raft closes the
// transport when its shutdown completes.
type WithClose interface {
	// Close releases the transport for good.
	Close() error
}

// LoopbackTransport is the set of interfaces an in-process test transport
// such as InmemTransport offers.
type LoopbackTransport interface {
	Transport
	WithPeers
	WithClose
	WithPreVote
}

// WithPeers is implemented by transports whose links can be made and cut by
// hand, as test transports do.
type WithPeers interface {
	Connect(peer ServerAddress, t Transport)
	Disconnect(peer ServerAddress)
	DisconnectAll()
}

// WithPreVote is implemented by transports that can carry RequestPreVote.
// Without it, Raft runs elections without the prevote phase.
type WithPreVote interface {
	// RequestPreVote sends one RequestPreVote request and waits for its answer.
	RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error
}

// AppendPipeline sends AppendEntries requests without waiting for earlier
// answers; answers come back in request order on Consumer.
type AppendPipeline interface {
	// AppendEntries queues one more request. It blocks while the window of
	// requests in flight is full.
	AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error)

	// Consumer yields one future per request, in request order.
	Consumer() <-chan AppendFuture

	// Close ends the pipeline; requests in flight fail.
	Close() error
}

// answerHandlingPipeline is an AppendPipeline that can give each answer to a
// function, on the goroutine that read it and in request order, instead of
// sending it on Consumer. The replicator then needs no goroutine of its own
// waiting on Consumer, and an answer moves the commit index without a
// goroutine hand-off. NetworkTransport's pipelines have the method; a
// wrapper around one (a transport that counts or injects faults) keeps the
// saving by forwarding it, and without it the wrapper still works through
// Consumer.
//
// Raft calls HandleAnswers once, before the pipeline's first AppendEntries,
// and from then on reads nothing from Consumer. handle does not block. Once
// Close has returned, handle is never called again.
type answerHandlingPipeline interface {
	AppendPipeline
	HandleAnswers(handle func(AppendFuture))
}

// AppendFuture is the outcome of one pipelined AppendEntries request.
type AppendFuture interface {
	Future

	// Start is when the request was sent.
	Start() time.Time

	// Request is the request that was sent.
	Request() *AppendEntriesRequest

	// Response is the answer; valid only once Error has returned nil.
	Response() *AppendEntriesResponse
}

// WithRPCHeader is implemented by every request and response type.
type WithRPCHeader interface {
	GetRPCHeader() RPCHeader
}

// RPCHeader is carried by every message. On the wire its fields sit beside
// the message's own fields (docs/WIRE.md §4).
type RPCHeader struct {
	// ProtocolVersion the sender speaks.
	ProtocolVersion ProtocolVersion
	// ID is the sender's ServerID.
	ID []byte
	// Addr is the sender's address as its transport encodes it (EncodePeer).
	Addr []byte
}

// AppendEntriesRequest carries log entries (none for a heartbeat) from the
// leader to a follower.
type AppendEntriesRequest struct {
	RPCHeader

	// Term is the leader's term.
	Term uint64

	// Leader is the leader's encoded address, still filled for old peers.
	//
	// Deprecated: use RPCHeader.Addr.
	Leader []byte

	// PrevLogEntry and PrevLogTerm name the entry just before Entries; the
	// follower accepts Entries only if it holds that entry (§5.3).
	PrevLogEntry uint64
	PrevLogTerm  uint64

	// Entries to append, in index order.
	Entries []*Log

	// LeaderCommitIndex is the leader's commit index.
	LeaderCommitIndex uint64
}

// GetRPCHeader returns the message's header.
func (r *AppendEntriesRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// AppendEntriesResponse answers an AppendEntriesRequest.
type AppendEntriesResponse struct {
	RPCHeader

	// Term is the follower's current term.
	Term uint64

	// LastLog is the follower's last log index, so the leader can jump its
	// next index back in one step.
	LastLog uint64

	// Success reports that the entries were appended.
	Success bool

	// NoRetryBackoff marks a refusal the leader may retry at once (a log
	// mismatch rather than a failure).
	NoRetryBackoff bool
}

// GetRPCHeader returns the message's header.
func (r *AppendEntriesResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestVoteRequest asks a peer for its vote in an election.
type RequestVoteRequest struct {
	RPCHeader

	// Term is the candidate's new term.
	Term uint64

	// Candidate is the candidate's encoded address, still filled for old
	// peers.
	//
	// Deprecated: use RPCHeader.Addr.
	Candidate []byte

	// LastLogIndex and LastLogTerm describe the candidate's log, for the
	// up-to-date check of §5.4.1.
	LastLogIndex uint64
	LastLogTerm  uint64

	// LeadershipTransfer is set when the election was asked for by the
	// leader (TimeoutNow): voters then grant even though they know a leader.
	LeadershipTransfer bool
}

// GetRPCHeader returns the message's header.
func (r *RequestVoteRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestVoteResponse answers a RequestVoteRequest.
type RequestVoteResponse struct {
	RPCHeader

	// Term is the voter's current term.
	Term uint64

	// Peers is a legacy field for protocol versions below 2; left nil.
	Peers []byte

	// Granted reports the vote.
	Granted bool
}

// GetRPCHeader returns the message's header.
func (r *RequestVoteResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestPreVoteRequest asks a peer whether it would vote for us in the
// next term. Neither side changes any state for it.
type RequestPreVoteRequest struct {
	RPCHeader

	// Term is the term the candidate would campaign in (its current + 1).
	Term uint64

	// LastLogIndex and LastLogTerm describe the candidate's log.
	LastLogIndex uint64
	LastLogTerm  uint64
}

// GetRPCHeader returns the message's header.
func (r *RequestPreVoteRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// RequestPreVoteResponse answers a RequestPreVoteRequest.
type RequestPreVoteResponse struct {
	RPCHeader

	// Term is the voter's current term, or the asked term if that is higher.
	Term uint64

	// Granted reports the prevote.
	Granted bool
}

// GetRPCHeader returns the message's header.
func (r *RequestPreVoteResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// InstallSnapshotRequest sends a snapshot to a follower whose next entry the
// leader no longer has. The snapshot's Size bytes follow it on the stream.
type InstallSnapshotRequest struct {
	RPCHeader
	SnapshotVersion SnapshotVersion

	Term   uint64
	Leader []byte

	// LastLogIndex and LastLogTerm are the last entry the snapshot covers.
	LastLogIndex uint64
	LastLogTerm  uint64

	// Peers is the legacy peer list of the snapshot's configuration.
	//
	// Deprecated: use Configuration.
	Peers []byte

	// Configuration is the snapshot's configuration (EncodeConfiguration).
	Configuration []byte
	// ConfigurationIndex is the index of the entry that made Configuration.
	ConfigurationIndex uint64

	// Size is the number of snapshot bytes that follow the request.
	Size int64
}

// GetRPCHeader returns the message's header.
func (r *InstallSnapshotRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// InstallSnapshotResponse answers an InstallSnapshotRequest.
type InstallSnapshotResponse struct {
	RPCHeader

	Term    uint64
	Success bool
}

// GetRPCHeader returns the message's header.
func (r *InstallSnapshotResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }

// TimeoutNowRequest asks a server to start an election at once, skipping
// prevote; the leader sends it to hand leadership over.
type TimeoutNowRequest struct {
	RPCHeader
}

// GetRPCHeader returns the message's header.
func (r *TimeoutNowRequest) GetRPCHeader() RPCHeader { return r.RPCHeader }

// TimeoutNowResponse answers a TimeoutNowRequest.
type TimeoutNowResponse struct {
	RPCHeader
}

// GetRPCHeader returns the message's header.
func (r *TimeoutNowResponse) GetRPCHeader() RPCHeader { return r.RPCHeader }
