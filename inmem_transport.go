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
// Heartbeats (AppendEntries requests of the shape WIRE.md §2.6 describes) go
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

// AppendEntriesPipeline opens a pipeline of AppendEntries requests to
// target. It fails like an RPC would when target is not connected.
func (i *InmemTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	peer, err := i.peer(target)
	if err != nil {
		return nil, err
	}
	p := &inmemPipeline{
		trans:        i,
		peer:         peer,
		peerAddr:     target,
		inprogressCh: make(chan *inmemAppendFuture, inmemChannelBuffer),
		doneCh:       make(chan AppendFuture, inmemChannelBuffer),
		shutdownCh:   make(chan struct{}),
		exitedCh:     make(chan struct{}),
	}

	i.mu.Lock()
	if i.closed {
		// Close ran since the check above and would not see this pipeline.
		i.mu.Unlock()
		return nil, ErrTransportShutdown
	}
	if i.peers[target] != peer {
		// Likewise for a Disconnect of target.
		i.mu.Unlock()
		return nil, fmt.Errorf("failed to connect to peer: %v", target)
	}
	i.pipelines = append(i.pipelines, p)
	i.mu.Unlock()

	go p.collect()
	return p, nil
}

// inmemPipeline is the AppendPipeline of InmemTransport. Requests go to the
// peer's consumer channel like synchronous ones; a collector goroutine waits
// for the answers in request order and hands the finished futures to
// doneCh. At most inmemChannelBuffer requests wait in inprogressCh, plus the
// one the collector is waiting on: that bounds the requests in flight.
type inmemPipeline struct {
	trans    *InmemTransport // the sending side; immutable
	peer     *InmemTransport // the receiving side; immutable
	peerAddr ServerAddress   // the address peer was connected under; immutable

	// inprogressCh holds the futures sent and not yet answered, in the
	// order they were sent.
	inprogressCh chan *inmemAppendFuture

	// doneCh holds the answered futures, in the order they were sent. It is
	// never closed: a consumer that waits on it must also watch its own stop
	// signal, as with any pipeline.
	doneCh chan AppendFuture

	// closeOnce guards the closing of shutdownCh, which ends every wait of
	// the pipeline; exitedCh is closed when the collector has returned.
	closeOnce  sync.Once
	shutdownCh chan struct{}
	exitedCh   chan struct{}
}

// AppendEntries sends one request down the pipeline and returns its future,
// which arrives on Consumer once answered. It blocks while the window of
// requests in flight is full, for at most the transport's timeout.
//
// The request is handed to the peer before it takes its place in the window,
// so when the window stays full ("command enqueue timeout") the peer may
// still handle the request; the caller only loses its answer, which is safe
// for AppendEntries.
func (p *inmemPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	if p.isShutdown() {
		return nil, ErrPipelineShutdown
	}
	future := &inmemAppendFuture{
		start:  time.Now(),
		args:   args,
		resp:   resp,
		respCh: make(chan RPCResponse, 1),
		done:   make(chan struct{}),
	}

	// A pipelined request is judged like a single one. One that may not
	// be delivered fails the send (the sender falls back to single
	// requests); a made-up answer takes the request's place in the window.
	verdict := p.trans.judge(p.peerAddr, args)
	if err := p.trans.hold(verdict, p.shutdownCh); err != nil {
		return nil, err
	}
	if verdict.fail != nil {
		return nil, verdict.fail
	}
	future.answered = verdict.answered

	// The timer is made only if one of the two hand-offs has to wait.
	var timer *time.Timer
	timeout := func() <-chan time.Time {
		if timer == nil {
			timer = time.NewTimer(p.trans.timeout)
		}
		return timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()

	if verdict.respond != nil {
		future.answered = nil
		future.respCh <- RPCResponse{Response: verdict.respond}
	} else if err := p.send(future, timeout); err != nil {
		return nil, err
	}

	select {
	case p.inprogressCh <- future:
	default:
		select {
		case p.inprogressCh <- future:
		case <-timeout():
			return nil, errInmemEnqueueTimeout
		case <-p.shutdownCh:
			return nil, ErrPipelineShutdown
		}
	}

	// Close may have run while the future was being queued, and its
	// collector may have drained the queue before the future got there:
	// fail the future here so that nobody waits on it forever.
	if p.isShutdown() {
		future.finish(ErrPipelineShutdown)
		return nil, ErrPipelineShutdown
	}
	return future, nil
}

// send hands future's request to the peer: to its heartbeat handler when it
// is a heartbeat and the peer has one, else to its consumer channel.
func (p *inmemPipeline) send(future *inmemAppendFuture, timeout func() <-chan time.Time) error {
	// Checked first: the select below could pick a free slot in the closed
	// peer's buffer over its closed channel.
	if p.peer.isClosed() {
		return fmt.Errorf("failed to connect to peer: %v", p.peerAddr)
	}
	rpc := RPC{Command: future.args, RespChan: future.respCh}
	if p.peer.handleHeartbeat(rpc) {
		return nil
	}
	select {
	case p.peer.consumerCh <- rpc:
		return nil
	default:
	}
	select {
	case p.peer.consumerCh <- rpc:
		return nil
	case <-timeout():
		return errInmemSendTimeout
	case <-p.shutdownCh:
		return ErrPipelineShutdown
	case <-p.peer.closedCh:
		return fmt.Errorf("failed to connect to peer: %v", p.peerAddr)
	}
}

// Consumer yields the answered futures in the order they were sent.
func (p *inmemPipeline) Consumer() <-chan AppendFuture {
	return p.doneCh
}

// Close ends the pipeline: requests still waiting for an answer fail with
// ErrPipelineShutdown, later AppendEntries calls return ErrPipelineShutdown,
// and the collector goroutine has exited when Close returns. Close may be
// called more than once.
func (p *inmemPipeline) Close() error {
	p.closeOnce.Do(func() { close(p.shutdownCh) })
	<-p.exitedCh

	t := p.trans
	t.mu.Lock()
	for n, other := range t.pipelines {
		if other == p {
			t.pipelines = append(t.pipelines[:n], t.pipelines[n+1:]...)
			break
		}
	}
	t.mu.Unlock()
	return nil
}

func (p *inmemPipeline) isShutdown() bool {
	select {
	case <-p.shutdownCh:
		return true
	default:
		return false
	}
}

// collect is the pipeline's one goroutine. It waits for each request's
// answer in turn and passes the finished future on to doneCh.
func (p *inmemPipeline) collect() {
	defer close(p.exitedCh)
	defer p.failQueued()

	for {
		var future *inmemAppendFuture
		select {
		case future = <-p.inprogressCh:
		case <-p.shutdownCh:
			return
		}

		if !p.await(future) {
			return
		}

		select {
		case p.doneCh <- future:
		case <-p.shutdownCh:
			return
		}
	}
}

// await waits for future's answer, at most the transport's timeout, and
// finishes the future. It reports false when the pipeline was closed first.
func (p *inmemPipeline) await(future *inmemAppendFuture) bool {
	timer := time.NewTimer(p.trans.timeout)
	defer timer.Stop()
	select {
	case answer := <-future.respCh:
		future.finishWith(answer)
	case <-timer.C:
		future.finish(errInmemCommandTimeout)
	case <-p.peer.closedCh:
		future.finish(fmt.Errorf("failed to connect to peer: %v", p.peerAddr))
	case <-p.shutdownCh:
		future.finish(ErrPipelineShutdown)
		return false
	}
	return true
}

// failQueued fails every future still waiting in inprogressCh once the
// pipeline is closed, so that no caller of Error waits forever.
func (p *inmemPipeline) failQueued() {
	for {
		select {
		case future := <-p.inprogressCh:
			future.finish(ErrPipelineShutdown)
		default:
			return
		}
	}
}

// inmemAppendFuture is the AppendFuture of inmemPipeline.
type inmemAppendFuture struct {
	start time.Time              // when the request was sent; immutable
	args  *AppendEntriesRequest  // the request; immutable
	resp  *AppendEntriesResponse // the caller's response, filled on success

	// respCh receives the peer's answer; buffered so the peer never blocks.
	respCh chan RPCResponse

	// answered is the interceptor's hook on the peer's answer, if any;
	// immutable once the request is sent.
	answered func(resp interface{}, err error) error

	// once makes the first outcome the only one; err is written before done
	// is closed and read only after.
	once sync.Once
	err  error
	done chan struct{}
}

// Error waits for the answer and returns nil when resp holds it.
func (f *inmemAppendFuture) Error() error {
	<-f.done
	return f.err
}

// Start is when the request was sent.
func (f *inmemAppendFuture) Start() time.Time { return f.start }

// Request is the request that was sent.
func (f *inmemAppendFuture) Request() *AppendEntriesRequest { return f.args }

// Response is the answer; meaningful only once Error has returned nil.
func (f *inmemAppendFuture) Response() *AppendEntriesResponse { return f.resp }

// finishWith records the peer's answer: its error, or its response copied
// into the caller's resp.
func (f *inmemAppendFuture) finishWith(answer RPCResponse) {
	f.once.Do(func() {
		switch out, ok := answer.Response.(*AppendEntriesResponse); {
		case answer.Error != nil:
			f.err = answer.Error
		case !ok || out == nil:
			f.err = fmt.Errorf("inmem transport: peer answered %T with %T", f.args, answer.Response)
		default:
			*f.resp = *out
		}
		if f.answered != nil {
			f.err = f.answered(f.resp, f.err)
		}
		close(f.done)
	})
}

// finish fails the future with err.
func (f *inmemAppendFuture) finish(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.done)
	})
}

// InmemTransport offers everything a test cluster needs from a transport.
var _ LoopbackTransport = (*InmemTransport)(nil)
