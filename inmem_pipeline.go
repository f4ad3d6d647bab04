package raft

import (
	"fmt"
	"sync"
	"time"
)

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
