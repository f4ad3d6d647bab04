package raft

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// inmemChannelBuffer is the buffer of the consumer channel of an
// InmemTransport and of both channels of its pipelines.
const inmemChannelBuffer = 16

// defaultInmemTimeout is the timeout of NewInmemTransport.
const defaultInmemTimeout = 500 * time.Millisecond

// inmemLongRPCFactor stretches the timeout of the RPCs that legitimately take
// long on the receiving side: InstallSnapshot (the follower restores a whole
// snapshot) and TimeoutNow (the target starts an election).
const inmemLongRPCFactor = 10

var (
	// errInmemSendTimeout: the peer did not take the RPC off its consumer
	// channel within the timeout.
	errInmemSendTimeout = errors.New("send timed out")

	// errInmemCommandTimeout: the peer took the RPC but did not answer it
	// within the timeout.
	errInmemCommandTimeout = errors.New("command timed out")

	// errInmemEnqueueTimeout: a pipeline's window of requests in flight
	// stayed full for the whole timeout.
	errInmemEnqueueTimeout = errors.New("command enqueue timeout")
)

// NewInmemAddr returns a fresh random address, a version 4 UUID string, for
// an InmemTransport.
func NewInmemAddr() ServerAddress {
	var b [16]byte
	// crypto/rand.Read never fails (it crashes the program instead when the
	// system offers no randomness), so its error needs no handling.
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return ServerAddress(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// InmemTransport is a Transport that connects Raft nodes of one process
// through channels. It is meant for tests: links between transports are made
// and cut by hand (Connect, Disconnect), which is how tests build partitions.
// It works inside a testing/synctest bubble when it is created there.
//
// Requests and responses are handed over as pointers, without copying: the
// receiver sees the very request the sender built, so neither side may change
// a message once it has been sent or answered.
//
// An RPC waits at most the transport's timeout for the peer to take it off
// its consumer channel (else "send timed out") and at most the timeout again
// for the answer (else "command timed out"); InstallSnapshot and TimeoutNow
// wait ten times as long. An RPC to a peer that is not connected, or whose
// transport is closed, fails at once with "failed to connect to peer: <addr>".
//
// Heartbeats (AppendEntries requests of the shape docs/WIRE.md §6 describes) go
// to the receiver's heartbeat handler instead of its consumer channel when
// one is set, as with the TCP transport.
//
// All methods are safe for concurrent use.
type InmemTransport struct {
	// mu guards every field below that is not marked immutable.
	mu sync.RWMutex

	// consumerCh carries incoming RPCs to the local node. Immutable; never
	// closed, since peers may still be sending on it.
	consumerCh chan RPC

	// localAddr is where peers reach this transport. Immutable.
	localAddr ServerAddress

	// timeout bounds each wait of an RPC. Immutable.
	timeout time.Duration

	// peers are the transports this one can send to, by the address the
	// caller of Connect gave.
	peers map[ServerAddress]*InmemTransport

	// pipelines are the open pipelines from this transport; a pipeline
	// removes itself when it is closed.
	pipelines []*inmemPipeline

	// closed is set by Close; closedCh is closed at the same moment so that
	// waits in progress, here and at peers, end at once.
	closed   bool
	closedCh chan struct{}

	// heartbeatFn, when set, answers incoming heartbeats in place of the
	// consumer channel (SetHeartbeatHandler).
	heartbeatFn atomic.Pointer[func(RPC)]

	// interceptor, when set, judges every request this transport sends
	// (setInterceptor); tests inject link faults through it.
	interceptor atomic.Pointer[inmemInterceptor]
}

// inmemVerdict is what an interceptor decides about one outgoing request.
// The zero value delivers it untouched. The waits come first (delay and
// gate), then fail or respond, which keep the request from the peer.
type inmemVerdict struct {
	// delay holds the request back this long before it is sent.
	delay time.Duration
	// gate, when not nil, holds the request back until it is closed.
	gate <-chan struct{}
	// fail, when set, fails the send with this error; nothing is delivered.
	fail error
	// respond, when set, is the answer the sender gets in place of the
	// peer's; nothing is delivered. It must be a pointer to the response
	// type of the request (*AppendEntriesResponse for AppendEntries).
	respond interface{}
	// answered, when set, sees the peer's answer to a delivered request
	// before the sender does: resp is the sender's response (filled in when
	// err is nil), which answered may change, and the error answered
	// returns is the one the sender gets (err to keep the outcome, another
	// error to lose the answer).
	answered func(resp interface{}, err error) error
}

// inmemInterceptor judges one request a transport sends, plain RPCs and
// pipelined AppendEntries alike, by sender, target and request. It runs on
// the sender's goroutine and must not block.
type inmemInterceptor func(from, to ServerAddress, req interface{}) inmemVerdict

// setInterceptor makes f judge every later request from this transport;
// nil removes it. It is how in-package tests inject link faults without
// wrapping the transport, so that pipelines and the heartbeat fast path stay
// in use.
func (i *InmemTransport) setInterceptor(f inmemInterceptor) {
	if f == nil {
		i.interceptor.Store(nil)
		return
	}
	i.interceptor.Store(&f)
}

// judge returns the verdict on one request to target.
func (i *InmemTransport) judge(target ServerAddress, req interface{}) inmemVerdict {
	if f := i.interceptor.Load(); f != nil {
		return (*f)(i.localAddr, target, req)
	}
	return inmemVerdict{}
}

// hold waits out v's delay and gate (both at once, which ends when the
// later of the two does, as waiting for one after the other would). The
// wait ends early with an error when this transport closes, or when stop
// (nil for none) closes.
func (i *InmemTransport) hold(v inmemVerdict, stop <-chan struct{}) error {
	var delay <-chan time.Time
	if v.delay > 0 {
		timer := time.NewTimer(v.delay)
		defer timer.Stop()
		delay = timer.C
	}
	gate := v.gate
	for delay != nil || gate != nil {
		select {
		case <-delay:
			delay = nil
		case <-gate:
			gate = nil
		case <-i.closedCh:
			return ErrTransportShutdown
		case <-stop:
			return ErrPipelineShutdown
		}
	}
	return nil
}

// NewInmemTransport returns a transport at addr (a fresh NewInmemAddr when
// addr is empty) whose RPCs time out after 500ms, and its address.
func NewInmemTransport(addr ServerAddress) (ServerAddress, *InmemTransport) {
	return NewInmemTransportWithTimeout(addr, defaultInmemTimeout)
}

// NewInmemTransportWithTimeout is NewInmemTransport with a chosen timeout.
// A timeout that is not positive means the default of 500ms: an RPC without
// any bound could hang a node forever on a silent peer.
func NewInmemTransportWithTimeout(addr ServerAddress, timeout time.Duration) (ServerAddress, *InmemTransport) {
	if addr == "" {
		addr = NewInmemAddr()
	}
	if timeout <= 0 {
		timeout = defaultInmemTimeout
	}
	trans := &InmemTransport{
		consumerCh: make(chan RPC, inmemChannelBuffer),
		localAddr:  addr,
		timeout:    timeout,
		peers:      make(map[ServerAddress]*InmemTransport),
		closedCh:   make(chan struct{}),
	}
	return addr, trans
}

// Consumer returns the channel on which RPCs from peers arrive.
func (i *InmemTransport) Consumer() <-chan RPC {
	return i.consumerCh
}

// LocalAddr returns the transport's address.
func (i *InmemTransport) LocalAddr() ServerAddress {
	return i.localAddr
}

// SetHeartbeatHandler installs cb to answer heartbeats, bypassing Consumer:
// each runs on a goroutine of its own, so a busy receiver makes its sender
// time out as over TCP. A nil cb sends heartbeats through Consumer again.
func (i *InmemTransport) SetHeartbeatHandler(cb func(rpc RPC)) {
	if cb == nil {
		i.heartbeatFn.Store(nil)
		return
	}
	i.heartbeatFn.Store(&cb)
}

// handleHeartbeat gives rpc to the heartbeat handler if it is a heartbeat
// and a handler is set, and reports whether it did.
func (i *InmemTransport) handleHeartbeat(rpc RPC) bool {
	req, ok := rpc.Command.(*AppendEntriesRequest)
	if !ok || !isHeartbeat(req) {
		return false
	}
	fn := i.heartbeatFn.Load()
	if fn == nil {
		return false
	}
	go (*fn)(rpc)
	return true
}

// EncodePeer returns addr as bytes.
func (i *InmemTransport) EncodePeer(id ServerID, addr ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer returns buf as an address.
func (i *InmemTransport) DecodePeer(buf []byte) ServerAddress {
	return ServerAddress(buf)
}

// Connect makes peer reachable from this transport through t. Only another
// *InmemTransport can be connected; any other t (or nil) is ignored, and RPCs
// to peer then fail with "failed to connect to peer". Connect on a closed
// transport does nothing.
func (i *InmemTransport) Connect(peer ServerAddress, t Transport) {
	other, ok := t.(*InmemTransport)
	if !ok || other == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return
	}
	i.peers[peer] = other
}

// Disconnect cuts the link to peer and closes the pipelines to it. RPCs
// already handed to peer are still waited for.
func (i *InmemTransport) Disconnect(peer ServerAddress) {
	i.mu.Lock()
	delete(i.peers, peer)
	var toClose []*inmemPipeline
	for _, p := range i.pipelines {
		if p.peerAddr == peer {
			toClose = append(toClose, p)
		}
	}
	i.mu.Unlock()

	// Outside the lock: a pipeline's Close takes it to unregister itself.
	for _, p := range toClose {
		_ = p.Close()
	}
}

// DisconnectAll cuts every link and closes every pipeline.
func (i *InmemTransport) DisconnectAll() {
	i.mu.Lock()
	clear(i.peers)
	toClose := append([]*inmemPipeline(nil), i.pipelines...)
	i.mu.Unlock()

	for _, p := range toClose {
		_ = p.Close()
	}
}

// Close disconnects everything and closes the transport for good: later RPCs
// and pipelines from it fail with ErrTransportShutdown, RPCs it is waiting on
// end at once with that error, and RPCs that peers send to it fail with
// "failed to connect to peer". Close may be called more than once.
func (i *InmemTransport) Close() error {
	i.mu.Lock()
	if !i.closed {
		i.closed = true
		close(i.closedCh)
	}
	i.mu.Unlock()
	i.DisconnectAll()
	return nil
}

// AppendEntries sends one AppendEntries request to target and waits for
// its answer.
func (i *InmemTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	return inmemCall(i, target, args, nil, i.timeout, resp)
}

// RequestVote sends one RequestVote request to target and waits for its
// answer.
func (i *InmemTransport) RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error {
	return inmemCall(i, target, args, nil, i.timeout, resp)
}

// RequestPreVote sends one RequestPreVote request to target and waits for
// its answer.
func (i *InmemTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	return inmemCall(i, target, args, nil, i.timeout, resp)
}

// InstallSnapshot sends a snapshot to target: the receiver gets data as the
// RPC's Reader and reads it while handling the request. It waits ten times
// the timeout.
func (i *InmemTransport) InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error {
	return inmemCall(i, target, args, data, inmemLongRPCFactor*i.timeout, resp)
}

// TimeoutNow asks target to start an election at once. It waits ten times
// the timeout.
func (i *InmemTransport) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	return inmemCall(i, target, args, nil, inmemLongRPCFactor*i.timeout, resp)
}

// inmemCall runs one synchronous RPC and copies the answer into resp. It is
// generic over the response type so that a responder that answers with the
// wrong type gets a clear error instead of a panic.
func inmemCall[R any](i *InmemTransport, target ServerAddress, args interface{}, data io.Reader, timeout time.Duration, resp *R) error {
	answer, answered, err := i.makeRPC(target, args, data, timeout)
	if err == nil {
		out, ok := answer.Response.(*R)
		if !ok || out == nil {
			err = fmt.Errorf("inmem transport: peer %v answered %T with %T", target, args, answer.Response)
		} else {
			*resp = *out
		}
	}
	if answered != nil {
		err = answered(resp, err)
	}
	return err
}

// peer returns the transport connected as target, or the error an RPC to it
// fails with.
func (i *InmemTransport) peer(target ServerAddress) (*InmemTransport, error) {
	i.mu.RLock()
	closed := i.closed
	peer := i.peers[target]
	i.mu.RUnlock()
	if closed {
		return nil, ErrTransportShutdown
	}
	if peer == nil || peer.isClosed() {
		return nil, fmt.Errorf("failed to connect to peer: %v", target)
	}
	return peer, nil
}

func (i *InmemTransport) isClosed() bool {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.closed
}

// makeRPC hands one request to target, after the interceptor's verdict on
// it, and waits for the answer. An error the responder reported is returned
// as is. answered is the verdict's hook on the answer, returned only when
// the peer answered.
func (i *InmemTransport) makeRPC(target ServerAddress, args interface{}, data io.Reader, timeout time.Duration) (
	answer RPCResponse, answered func(interface{}, error) error, err error) {
	verdict := i.judge(target, args)
	if err := i.hold(verdict, nil); err != nil {
		return RPCResponse{}, nil, err
	}
	if verdict.fail != nil {
		return RPCResponse{}, nil, verdict.fail
	}
	if verdict.respond != nil {
		return RPCResponse{Response: verdict.respond}, nil, nil
	}

	peer, err := i.peer(target)
	if err != nil {
		return RPCResponse{}, nil, err
	}

	// Buffered so that a responder never blocks on a caller that gave up.
	respCh := make(chan RPCResponse, 1)
	if err := i.send(peer, target, RPC{Command: args, Reader: data, RespChan: respCh}, timeout); err != nil {
		return RPCResponse{}, nil, err
	}

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case answer := <-respCh:
		return answer, verdict.answered, answer.Error
	case <-timer.C:
		return RPCResponse{}, nil, errInmemCommandTimeout
	case <-i.closedCh:
		return RPCResponse{}, nil, ErrTransportShutdown
	case <-peer.closedCh:
		return RPCResponse{}, nil, fmt.Errorf("failed to connect to peer: %v", target)
	}
}

// send puts rpc on peer's consumer channel, waiting at most timeout, or
// gives it to peer's heartbeat handler.
func (i *InmemTransport) send(peer *InmemTransport, target ServerAddress, rpc RPC, timeout time.Duration) error {
	if peer.handleHeartbeat(rpc) {
		return nil
	}
	// Fast path: no timer when the channel has room.
	select {
	case peer.consumerCh <- rpc:
		return nil
	default:
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case peer.consumerCh <- rpc:
		return nil
	case <-timer.C:
		return errInmemSendTimeout
	case <-i.closedCh:
		return ErrTransportShutdown
	case <-peer.closedCh:
		return fmt.Errorf("failed to connect to peer: %v", target)
	}
}
