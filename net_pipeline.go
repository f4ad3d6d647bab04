package raft

import (
	"sync"
	"time"
)

// netPipeline sends AppendEntries requests on a dedicated connection without
// waiting for earlier answers (docs/WIRE.md §7). A receiver goroutine reads the
// answers, which the server writes in request order, and resolves the
// futures in that same order.
//
// The window: the receiver holds one future while it waits for its answer,
// inprogressCh holds maxInFlight-2, and the sender holds one it has already
// written while it waits for room, so at most maxInFlight requests are
// unanswered.
type netPipeline struct {
	trans *NetworkTransport
	conn  *netConn

	// sendMu serialises senders; Close takes it to know no sender is
	// between writing a request and queueing its future.
	sendMu sync.Mutex

	inprogressCh chan *netAppendFuture
	doneCh       chan AppendFuture

	shutdownCh chan struct{}
	closeOnce  sync.Once
	receiving  sync.WaitGroup
}

func newNetPipeline(trans *NetworkTransport, conn *netConn) *netPipeline {
	window := trans.maxInFlight - 2
	p := &netPipeline{
		trans:        trans,
		conn:         conn,
		inprogressCh: make(chan *netAppendFuture, window),
		doneCh:       make(chan AppendFuture, window),
		shutdownCh:   make(chan struct{}),
	}
	p.receiving.Add(1)
	go p.receive()
	return p
}

// AppendEntries writes one request and queues its future. It blocks while
// the window is full. After a send error the connection is closed, since the
// stream may hold half a request: requests in flight and later ones fail.
func (p *netPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if p.isShutdown() {
		return nil, ErrPipelineShutdown
	}

	future := &netAppendFuture{start: time.Now(), args: args, resp: resp, done: make(chan struct{})}
	if err := p.conn.conn.SetWriteDeadline(future.start.Add(p.trans.timeout)); err != nil {
		p.conn.Close()
		return nil, err
	}
	if err := p.trans.send(p.conn, rpcAppendEntries, args); err != nil {
		p.conn.Close()
		return nil, err
	}
	select {
	case p.inprogressCh <- future:
		return future, nil
	case <-p.shutdownCh:
		return nil, ErrPipelineShutdown
	}
}

// Consumer yields the futures, resolved, in request order.
func (p *netPipeline) Consumer() <-chan AppendFuture { return p.doneCh }

// Close closes the connection and fails every request still in flight with
// ErrPipelineShutdown. It waits for the receiver goroutine to exit.
func (p *netPipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		p.conn.Close()
		p.receiving.Wait()
		// A sender blocked on a full window has left by now (shutdownCh),
		// and later ones see shutdownCh before writing: what is queued now
		// is all that will ever be.
		p.sendMu.Lock()
		p.failQueued()
		p.sendMu.Unlock()
		p.trans.forgetPipeline(p)
	})
	return nil
}

func (p *netPipeline) isShutdown() bool {
	select {
	case <-p.shutdownCh:
		return true
	default:
		return false
	}
}

// receive reads one answer per queued future, in order.
func (p *netPipeline) receive() {
	defer p.receiving.Done()
	for {
		var future *netAppendFuture
		select {
		case future = <-p.inprogressCh:
		case <-p.shutdownCh:
			return
		}

		err := p.conn.conn.SetReadDeadline(time.Now().Add(p.trans.timeout))
		if err == nil {
			var rpcErr error
			rpcErr, err = p.conn.readResponse(future.resp)
			if err == nil {
				err = rpcErr
			} else {
				// The stream is lost; make the requests behind this one
				// fail at once rather than each waiting for its deadline.
				p.conn.Close()
			}
		}
		future.resolve(err)

		select {
		case p.doneCh <- future:
		case <-p.shutdownCh:
			return
		}
	}
}

// failQueued resolves the futures nobody will read an answer for.
func (p *netPipeline) failQueued() {
	for {
		select {
		case future := <-p.inprogressCh:
			future.resolve(ErrPipelineShutdown)
		default:
			return
		}
	}
}

// netAppendFuture is the AppendFuture of one pipelined request.
type netAppendFuture struct {
	start time.Time
	args  *AppendEntriesRequest
	resp  *AppendEntriesResponse
	err   error
	done  chan struct{}
}

func (f *netAppendFuture) resolve(err error) {
	f.err = err
	close(f.done)
}

// Error waits for the answer and returns its error.
func (f *netAppendFuture) Error() error {
	<-f.done
	return f.err
}

// Start is when the request was written.
func (f *netAppendFuture) Start() time.Time { return f.start }

// Request is the request that was sent.
func (f *netAppendFuture) Request() *AppendEntriesRequest { return f.args }

// Response is the answer, valid once Error has returned nil.
func (f *netAppendFuture) Response() *AppendEntriesResponse { return f.resp }
