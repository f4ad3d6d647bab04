package raft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the serving side of NetworkTransport. Each accepted
// connection has two goroutines:
//
//   - the reader (the connection's serve goroutine) reads requests and
//     hands each to Raft (Consumer, or the heartbeat handler) as soon as it
//     is decoded, without waiting for the answers to the earlier ones, up to
//     serverReadAhead requests (and MaxMessageSize bytes of requests) that
//     are not yet answered;
//   - the writer waits for the answers one by one, in request order, and
//     writes them, flushing whenever the next answer is not ready yet. It
//     waits on the answer channel of the next request before that request
//     is even read: each request carries, in its reply slot, the channel the
//     request after it will be answered on, made in advance. An answer thus
//     wakes the writer once, and a request that is read wakes it not at all.
//
// A pipelined connection (AppendEntriesPipeline) thus puts all the requests
// its leader has in flight in front of Raft at once, and Raft can merge the
// waiting AppendEntries into one disk write. Replies still leave in request
// order, which is all a client, hashicorp/raft's included, relies on: the
// bytes on the wire are those of a server that answers one at a time.

// serverReadAhead bounds the requests of one connection that have been read
// and not yet answered. When it is reached the reader stops reading, so the
// peer is held back by TCP flow control. 64 covers the whole window of a
// pipeline as hashicorp/raft users configure it (MaxRPCsInFlight defaults
// to 2; large settings are in the tens, the pre-1.4.1 window was 130 and is
// simply held back here), and merging more than 64 AppendEntries into one
// write would not make the write noticeably cheaper, while the memory held
// grows with every request. Memory is bounded by bytes as well: the reader
// only reads another request while those outstanding hold less than
// MaxMessageSize wire bytes, so a connection holds at most about twice what
// a single request could cost.
const serverReadAhead = 64

// consumerBuffer is the capacity of the Consumer channel: enough for the
// read-ahead of one pipelined connection to wait there in full.
const consumerBuffer = serverReadAhead

// serverWriteBufferSize is the server's write buffer (docs/WIRE.md §8: replies
// are small).
const serverWriteBufferSize = 4096

// handshaker is implemented by connections that authenticate first, such as
// *tls.Conn.
type handshaker interface {
	HandshakeContext(ctx context.Context) error
}

// errStreamClosed ends a server connection closed by CloseStreams.
var errStreamClosed = errors.New("raft-net: stream closed")

// errConnectionEnded stops one goroutine of a served connection after the
// other one has ended it; the other one has said why.
var errConnectionEnded = errors.New("raft-net: connection ended")

// serve answers the requests of one accepted connection, in order, until the
// peer hangs up, a request is malformed, or the stream is closed. It returns
// only after the connection's writer has exited.
func (n *NetworkTransport) serve(ctx context.Context, conn net.Conn) {
	defer n.serving.Done()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if hs, ok := conn.(handshaker); ok {
		hctx, cancel := context.WithTimeout(ctx, n.timeout)
		err := hs.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.logger.Error("TLS handshake failed", "remote-address", conn.RemoteAddr(), "error", err)
			}
			return
		}
	}

	s := newServedConn(n, ctx, conn)
	go s.writeReplies(s.nextRespCh)
	err := s.readRequests()
	s.ended(err, false)
	// The writer sends the replies still owed (Raft answers the requests it
	// took), then exits; on CloseStreams or Close it exits at once.
	close(s.readerDone)
	<-s.writerDone
}

// servedConn is the state of one accepted connection shared by its reader
// and its writer.
type servedConn struct {
	trans *NetworkTransport
	ctx   context.Context // cancelled by CloseStreams and Close
	c     *netConn
	read  *countingReader // the socket under c's reader

	// readDeadlineSet records that the reader left a read deadline on the
	// connection (reader only).
	readDeadlineSet bool

	window readWindow

	// replies carries the reply slots to the writer in request order. Its
	// capacity is serverReadAhead, which the window never exceeds, so the
	// reader's sends never block. The writer takes a slot only once the
	// answer on the slot's channel has come, so it never waits on replies.
	replies chan pendingReply

	// nextRespCh is the channel the next request will be answered on
	// (reader only); the writer waits on it from the moment the slot before
	// it is written.
	nextRespCh chan RPCResponse
	// dispatched counts the requests handed to Raft (reader only until
	// readerDone is closed; the writer reads it after).
	dispatched int64
	// readerDone is closed by serve when the reader has stopped.
	readerDone chan struct{}

	// writerDone is closed when the writer exits.
	writerDone chan struct{}

	// sent are the replies written since the last flush, for the
	// rpcRespond metric (writer only).
	sent []pendingReply

	// endedOnce makes the first goroutine that ends the connection the one
	// that logs why; the other one's error is a consequence.
	endedOnce atomic.Bool
}

// pendingReply is the slot of one request in the reply order.
type pendingReply struct {
	size  int64 // wire bytes of the request, returned to the window once answered
	label metricLabel
	start time.Time // when the request was handed to Raft, for rpcRespond
	// nextRespCh is the answer channel of the request after this one.
	nextRespCh <-chan RPCResponse
}

func newServedConn(n *NetworkTransport, ctx context.Context, conn net.Conn) *servedConn {
	read := &countingReader{r: conn}
	return &servedConn{
		trans: n,
		ctx:   ctx,
		read:  read,
		c: &netConn{
			conn:      conn,
			msgReader: newMsgReader(bufio.NewReaderSize(read, connBufferSize), n.decodeHandle, n.maxMessageSize),
			msgWriter: newMsgWriter(bufio.NewWriterSize(conn, serverWriteBufferSize), n.encodeHandle),
		},
		window:     readWindow{freed: make(chan struct{}, 1)},
		replies:    make(chan pendingReply, serverReadAhead),
		nextRespCh: make(chan RPCResponse, 1),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// countingReader counts the bytes read from the socket, from which the
// reader works out how many bytes each request took.
type countingReader struct {
	r io.Reader
	n int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// consumed is the number of bytes of the stream the reader has used: read
// from the socket, less what is still buffered.
func (s *servedConn) consumed() int64 { return s.read.n - int64(s.c.br.Buffered()) }

// readWindow counts the requests of a connection, and their wire bytes,
// that have been read and not yet answered.
type readWindow struct {
	mu    sync.Mutex
	count int
	bytes int64
	freed chan struct{} // a token after each release; capacity 1
}

// hasRoom reports whether the reader may read one more request: always when
// nothing is outstanding, else while both limits leave room.
func (w *readWindow) hasRoom(maxBytes int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count == 0 || (w.count < serverReadAhead && w.bytes < maxBytes)
}

func (w *readWindow) add(size int64) {
	w.mu.Lock()
	w.count++
	w.bytes += size
	w.mu.Unlock()
}

func (w *readWindow) release(size int64) {
	w.mu.Lock()
	w.count--
	w.bytes -= size
	w.mu.Unlock()
	select {
	case w.freed <- struct{}{}:
	default: // a token is already waiting; the reader checks again anyway
	}
}

// readRequests reads and dispatches requests until the connection ends,
// and returns why it ended.
func (s *servedConn) readRequests() error {
	for {
		if err := s.waitForRoom(); err != nil {
			return err
		}
		if err := s.readOne(); err != nil {
			return err
		}
	}
}

// waitForRoom blocks while the connection has as many requests outstanding
// as it may.
func (s *servedConn) waitForRoom() error {
	for !s.window.hasRoom(s.trans.maxMessageSize) {
		select {
		case <-s.window.freed:
		case <-s.ctx.Done():
			return errStreamClosed
		case <-s.trans.shutdownCh:
			return ErrTransportShutdown
		case <-s.writerDone:
			return errConnectionEnded
		}
	}
	return nil
}

// readOne reads one request, hands it to Raft, and queues its reply slot.
func (s *servedConn) readOne() error {
	c := s.c
	// The wait for a request has no deadline: pooled connections idle
	// between RPCs (dead peers are found by TCP keep-alive). Once a request
	// starts, its body must arrive within Timeout. The deadline of the
	// previous request is lifted only when the reader is about to wait on
	// the socket, which saves two deadline updates per request while
	// pipelined requests are already buffered.
	if s.readDeadlineSet && c.br.Buffered() == 0 {
		if err := c.conn.SetReadDeadline(time.Time{}); err != nil {
			return err
		}
		s.readDeadlineSet = false
	}
	getTypeStart := time.Now()
	begin := s.consumed()
	rpcType, err := c.br.ReadByte()
	if err != nil {
		return err
	}
	measureSince([]string{"raft", "net", "getRPCType"}, getTypeStart)
	if s.ctx.Err() != nil {
		return errStreamClosed
	}

	decodeStart := time.Now()
	if err := c.conn.SetReadDeadline(decodeStart.Add(s.trans.timeout)); err != nil {
		return err
	}
	s.readDeadlineSet = true
	command, err := c.decodeRequestBody(rpcType)
	if err != nil {
		return err
	}
	size := s.consumed() - begin
	label := metricLabel{Name: "rpcType", Value: rpcTypeName(rpcType, command)}
	measureSince([]string{"raft", "net", "rpcDecode"}, decodeStart, label)

	// The writer is already waiting on respCh; the slot, queued before Raft
	// sees the request, tells it the channel of the request after this one.
	respCh := s.nextRespCh
	s.nextRespCh = make(chan RPCResponse, 1)
	rpc := RPC{Command: command, RespChan: respCh}
	var snapshot *io.LimitedReader
	var snapshotResp chan RPCResponse
	if req, ok := command.(*InstallSnapshotRequest); ok {
		snapshot = &io.LimitedReader{R: c.br, N: req.Size}
		// Raft answers on a channel of the reader's, which passes the
		// answer on once the rest of the data is skipped.
		snapshotResp = make(chan RPCResponse, 1)
		rpc.Reader, rpc.RespChan = snapshot, snapshotResp
		if err := c.conn.SetReadDeadline(time.Now().Add(s.trans.snapshotTimeout(req.Size))); err != nil {
			return err
		}
	}

	s.window.add(size)
	start := time.Now()
	s.replies <- pendingReply{size: size, label: label, start: start, nextRespCh: s.nextRespCh}
	handled := false
	if req, ok := command.(*AppendEntriesRequest); ok && isHeartbeat(req) {
		if fn := s.trans.heartbeatFn.Load(); fn != nil {
			(*fn)(rpc)
			handled = true
		}
	}
	if !handled {
		select {
		case s.trans.consumeCh <- rpc:
		case <-s.ctx.Done():
			return errStreamClosed
		case <-s.trans.shutdownCh:
			return ErrTransportShutdown
		case <-s.writerDone:
			return errConnectionEnded
		}
		measureSince([]string{"raft", "net", "rpcEnqueue"}, start, label)
	}
	s.dispatched++

	if snapshot != nil {
		// The snapshot's data follows on this stream and Raft reads it from
		// the same buffered reader: nothing more may be read until Raft has
		// answered and the rest of the data is skipped.
		resp, err := s.awaitResponse(snapshotResp)
		if err != nil {
			return err
		}
		if err := drain(snapshot); err != nil {
			return fmt.Errorf("raft-net: skip unread snapshot data: %w", err)
		}
		respCh <- resp
	}
	return nil
}

// awaitResponse waits for Raft's answer on respCh.
func (s *servedConn) awaitResponse(respCh chan RPCResponse) (RPCResponse, error) {
	select {
	case resp := <-respCh:
		return resp, nil
	case <-s.ctx.Done():
		return RPCResponse{}, errStreamClosed
	case <-s.trans.shutdownCh:
		return RPCResponse{}, ErrTransportShutdown
	case <-s.writerDone:
		return RPCResponse{}, errConnectionEnded
	}
}

// writeReplies writes the replies in request order until the reader has
// queued its last one, or the connection fails. On failure it closes the
// connection, which stops the reader.
func (s *servedConn) writeReplies(firstRespCh <-chan RPCResponse) {
	defer close(s.writerDone)
	err := s.writeLoop(firstRespCh)
	if errors.Is(err, errNothingOwed) {
		err = s.flush()
	}
	if err != nil {
		s.ended(err, true)
		s.c.Close()
	}
}

func (s *servedConn) writeLoop(respCh <-chan RPCResponse) error {
	var written int64
	for {
		var resp RPCResponse
		select {
		case resp = <-respCh:
		default:
			// Raft has not answered yet, or the request is not even read:
			// do not hold back the replies written before.
			if err := s.flush(); err != nil {
				return err
			}
			var err error
			if resp, err = s.awaitReply(respCh, written); err != nil {
				return err
			}
		}
		// The slot was queued before Raft saw the request.
		next := <-s.replies

		if err := s.c.conn.SetWriteDeadline(time.Now().Add(s.trans.timeout)); err != nil {
			return err
		}
		if err := s.c.writeResponse(resp.Error, resp.Response); err != nil {
			return fmt.Errorf("raft-net: encode response: %w", err)
		}
		written++
		s.sent = append(s.sent, next)
		respCh = next.nextRespCh
		s.window.release(next.size)
	}
}

// errNothingOwed ends the writer once the reader has stopped and every
// request it handed to Raft is answered.
var errNothingOwed = errors.New("raft-net: no reply owed")

// awaitReply waits for the answer on respCh, the channel of the request
// after the written ones. Once the reader has stopped it waits only if that
// request was handed to Raft, which answers every request it takes.
func (s *servedConn) awaitReply(respCh <-chan RPCResponse, written int64) (RPCResponse, error) {
	readerDone := s.readerDone
	for {
		select {
		case resp := <-respCh:
			return resp, nil
		case <-readerDone:
			if written == s.dispatched {
				return RPCResponse{}, errNothingOwed
			}
			readerDone = nil
		case <-s.ctx.Done():
			return RPCResponse{}, errStreamClosed
		case <-s.trans.shutdownCh:
			return RPCResponse{}, ErrTransportShutdown
		}
	}
}

// flush sends the replies written so far.
func (s *servedConn) flush() error {
	if s.c.bw.Buffered() > 0 {
		if err := s.c.bw.Flush(); err != nil {
			return fmt.Errorf("raft-net: send response: %w", err)
		}
	}
	for i, reply := range s.sent {
		measureSince([]string{"raft", "net", "rpcRespond"}, reply.start, reply.label)
		s.sent[i] = pendingReply{}
	}
	s.sent = s.sent[:0]
	return nil
}

// ended logs why the connection ended, if it is the first of the two
// goroutines to end it and the reason is worth a line: a peer hanging up
// between requests, CloseStreams and Close are not.
func (s *servedConn) ended(err error, writer bool) {
	if !s.endedOnce.CompareAndSwap(false, true) {
		return
	}
	n, remote := s.trans, s.c.conn.RemoteAddr()
	switch {
	case s.ctx.Err() != nil || n.IsShutdown() || errors.Is(err, errStreamClosed) || errors.Is(err, errConnectionEnded):
		// Closed on purpose, or already explained by the other goroutine.
	case !writer && errors.Is(err, io.EOF):
		// The peer hung up between requests.
	case writer:
		n.logger.Error("failed to send response", "remote-address", remote, "error", err)
	case errors.Is(err, errUnknownRPCType):
		n.logger.Error("closing connection", "remote-address", remote, "error", err)
	default:
		n.logger.Error("failed to decode incoming command", "remote-address", remote, "error", err)
	}
}
