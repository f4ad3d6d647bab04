package raft

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// netPipeline sends AppendEntries requests on a dedicated connection without
// waiting for earlier answers (docs/WIRE.md §7). The server writes the answers
// in request order, so a receiver goroutine matches each answer to the
// oldest unanswered request and hands the futures, in that order, to
// Consumer or, once Raft has called HandleAnswers, to Raft's handler, which
// runs on the receiver itself.
//
// The unanswered requests are a queue under a mutex rather than a channel
// between the sender and the receiver: the receiver waits on the socket
// itself, never for the sender, so a request costs no goroutine hand-off
// until its answer is there. A request is queued before its bytes are
// written, so an answer always finds its request in the queue.
//
// The window: AppendEntries returns once its request is written while at
// most maxInFlight-1 requests are unanswered; the call that puts the
// maxInFlight-th request on the wire waits until an answer comes back.
//
// Read deadlines follow the queue: whenever a request is unanswered the
// connection's read deadline is Timeout after the last request was queued
// into an empty queue or the last answer arrived; with none unanswered there
// is no deadline, and the receiver may wait on the idle connection forever.
type netPipeline struct {
	trans *NetworkTransport
	conn  *netConn

	// sendMu serialises senders; Close takes it to know no sender is
	// between queueing a request and writing it.
	sendMu sync.Mutex

	// queueMu guards unanswered and the read deadline.
	queueMu    sync.Mutex
	unanswered futureRing
	// room gets a token after each answer, for a sender waiting for the
	// window to open; capacity 1.
	room chan struct{}

	doneCh chan AppendFuture
	// handler, once set by HandleAnswers, is called with each answer in
	// place of sending it on doneCh.
	handler atomic.Pointer[func(AppendFuture)]

	shutdownCh chan struct{}
	closeOnce  sync.Once
	receiving  sync.WaitGroup
}

// errAnswerWithoutRequest ends a pipeline whose peer answered a request we
// never sent.
var errAnswerWithoutRequest = errors.New("raft-net: pipelined answer to no request")

func newNetPipeline(trans *NetworkTransport, conn *netConn) *netPipeline {
	p := &netPipeline{
		trans:      trans,
		conn:       conn,
		unanswered: futureRing{slots: make([]*netAppendFuture, trans.maxInFlight)},
		room:       make(chan struct{}, 1),
		doneCh:     make(chan AppendFuture, trans.maxInFlight),
		shutdownCh: make(chan struct{}),
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
	if err := p.enqueue(future); err != nil {
		p.conn.Close()
		return nil, err
	}
	if err := p.trans.send(p.conn, rpcAppendEntries, args); err != nil {
		p.conn.Close()
		p.dequeueUnsent(future)
		return nil, err
	}
	if err := p.waitForRoom(); err != nil {
		return nil, err
	}
	return future, nil
}

// enqueue adds a request about to be written to the unanswered ones; the
// first one after a pause starts the read deadline.
func (p *netPipeline) enqueue(future *netAppendFuture) error {
	p.queueMu.Lock()
	defer p.queueMu.Unlock()
	p.unanswered.push(future)
	if p.unanswered.len() == 1 {
		return p.conn.conn.SetReadDeadline(future.start.Add(p.trans.timeout))
	}
	return nil
}

// dequeueUnsent takes back a request whose write failed. The connection is
// closed by then, so no answer can have matched it; if the receiver has
// already failed it, there is nothing to take back.
func (p *netPipeline) dequeueUnsent(future *netAppendFuture) {
	p.queueMu.Lock()
	defer p.queueMu.Unlock()
	p.unanswered.dropNewest(future)
}

// waitForRoom returns once fewer than maxInFlight requests are unanswered.
func (p *netPipeline) waitForRoom() error {
	for {
		p.queueMu.Lock()
		full := p.unanswered.len() >= p.trans.maxInFlight
		p.queueMu.Unlock()
		if !full {
			return nil
		}
		select {
		case <-p.room:
		case <-p.shutdownCh:
			return ErrPipelineShutdown
		}
	}
}

// Consumer yields the futures, resolved, in request order, unless
// HandleAnswers was called.
func (p *netPipeline) Consumer() <-chan AppendFuture { return p.doneCh }

// HandleAnswers makes the receiver call handle with each resolved future, in
// request order, instead of sending it on Consumer (answerHandlingPipeline).
// It is called before the first AppendEntries; the receiver reads it only
// after it has taken a request out of the queue, which that call filled.
func (p *netPipeline) HandleAnswers(handle func(AppendFuture)) {
	p.handler.Store(&handle)
}

// Close closes the connection and fails every request still in flight with
// ErrPipelineShutdown. It waits for the receiver goroutine to exit.
func (p *netPipeline) Close() error {
	p.closeOnce.Do(func() {
		close(p.shutdownCh)
		p.conn.Close()
		p.receiving.Wait()
		// A sender waiting for room has left by now (shutdownCh), and later
		// ones see shutdownCh before queueing: what is queued now is all
		// that will ever be.
		p.sendMu.Lock()
		p.failQueued(ErrPipelineShutdown)
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

// receive reads the answers and resolves the oldest unanswered request with
// each, in order, until the connection fails or the pipeline closes.
func (p *netPipeline) receive() {
	defer p.receiving.Done()
	for {
		future, err := p.receiveOne()
		if err != nil && p.isShutdown() {
			// Closed: Close fails what is left with ErrPipelineShutdown.
			return
		}
		if err != nil {
			// The stream is lost: fail the requests behind the broken
			// answer at once rather than each at its deadline, in order, as
			// answers.
			p.conn.Close()
			if future == nil {
				future = p.popOldest()
			}
			for future != nil {
				future.resolve(err)
				if !p.deliver(future) {
					return
				}
				future = p.popOldest()
			}
			// Senders after the failure fail on the closed connection and
			// take their request back; wait for Close.
			<-p.shutdownCh
			return
		}
		if !p.deliver(future) {
			return
		}
	}
}

// receiveOne waits for the next answer and reads it into the oldest
// unanswered request, which it returns resolved. On a broken stream it
// returns the error, with the request it was reading, if any, not yet
// resolved.
func (p *netPipeline) receiveOne() (*netAppendFuture, error) {
	// Wait for the answer's first byte without a request in hand: the
	// request it answers was queued before it was written.
	if _, err := p.conn.br.Peek(1); err != nil {
		return nil, err
	}
	p.queueMu.Lock()
	future := p.unanswered.oldest()
	p.queueMu.Unlock()
	if future == nil {
		return nil, errAnswerWithoutRequest
	}
	rpcErr, err := p.conn.readResponse(future.resp)
	if err != nil {
		return p.popOldest(), err
	}
	p.popOldest()
	future.resolve(rpcErr)
	return future, nil
}

// popOldest removes and returns the oldest unanswered request (nil if none),
// restarts the read deadline for the next one or lifts it, and gives a
// waiting sender room.
func (p *netPipeline) popOldest() *netAppendFuture {
	p.queueMu.Lock()
	defer p.queueMu.Unlock()
	future := p.unanswered.pop()
	if future == nil {
		return nil
	}
	if p.unanswered.len() == 0 {
		_ = p.conn.conn.SetReadDeadline(time.Time{})
	} else {
		_ = p.conn.conn.SetReadDeadline(time.Now().Add(p.trans.timeout))
	}
	select {
	case p.room <- struct{}{}:
	default:
	}
	return future
}

// deliver hands a resolved future to the handler or the consumer; false
// once the pipeline is closed.
func (p *netPipeline) deliver(future *netAppendFuture) bool {
	if handle := p.handler.Load(); handle != nil {
		if p.isShutdown() {
			return false
		}
		(*handle)(future)
		return true
	}
	select {
	case p.doneCh <- future:
		return true
	case <-p.shutdownCh:
		return false
	}
}

// failQueued resolves the futures nobody will read an answer for.
func (p *netPipeline) failQueued(err error) {
	for future := p.popOldest(); future != nil; future = p.popOldest() {
		future.resolve(err)
	}
}

// futureRing is the queue of unanswered requests, oldest first. Its
// capacity is the window, which the senders never exceed.
type futureRing struct {
	slots   []*netAppendFuture
	head, n int
}

func (q *futureRing) len() int { return q.n }

func (q *futureRing) push(f *netAppendFuture) {
	q.slots[(q.head+q.n)%len(q.slots)] = f
	q.n++
}

// oldest returns the oldest request, nil if none.
func (q *futureRing) oldest() *netAppendFuture {
	if q.n == 0 {
		return nil
	}
	return q.slots[q.head]
}

// pop removes and returns the oldest request, nil if none.
func (q *futureRing) pop() *netAppendFuture {
	if q.n == 0 {
		return nil
	}
	f := q.slots[q.head]
	q.slots[q.head] = nil
	q.head = (q.head + 1) % len(q.slots)
	q.n--
	return f
}

// dropNewest removes f if it is the newest request.
func (q *futureRing) dropNewest(f *netAppendFuture) {
	if q.n == 0 {
		return
	}
	last := (q.head + q.n - 1) % len(q.slots)
	if q.slots[last] == f {
		q.slots[last] = nil
		q.n--
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
