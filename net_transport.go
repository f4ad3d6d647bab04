package raft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// DefaultTimeoutScale is the number of snapshot bytes a NetworkTransport
// allows one Timeout for when it streams an InstallSnapshot.
const DefaultTimeoutScale = 256 * 1024

// DefaultMaxRPCsInFlight is the pipeline window used when
// NetworkTransportConfig.MaxRPCsInFlight is zero.
const DefaultMaxRPCsInFlight = 2

// defaultNetTimeout replaces a zero or negative Timeout, so that no read or
// write on a network connection can block forever.
const defaultNetTimeout = 10 * time.Second

// maxSnapshotTimeout caps the deadline of a snapshot transfer so that the
// size a peer announces cannot push it past what time.Time can represent.
const maxSnapshotTimeout = 7 * 24 * time.Hour

// StreamLayer is the connection provider under a NetworkTransport: a
// listener for incoming connections and a dialer for outgoing ones. TCP and
// TLS implementations come with this package.
type StreamLayer interface {
	net.Listener

	// Dial opens a connection to address, giving up after timeout.
	Dial(address ServerAddress, timeout time.Duration) (net.Conn, error)
}

// ServerAddressProvider looks up the current address of a server by its ID,
// for clusters whose servers change addresses.
type ServerAddressProvider interface {
	ServerAddr(id ServerID) (ServerAddress, error)
}

// NetworkTransportConfig configures a NetworkTransport.
type NetworkTransportConfig struct {
	// ServerAddressProvider, if set, is asked for a server's address before
	// each dial; the address passed by Raft is used if it fails.
	ServerAddressProvider ServerAddressProvider

	// Logger receives the transport's logs. Nil means a logger named
	// "raft-net" writing to stderr.
	Logger hclog.Logger

	// Stream provides the connections.
	Stream StreamLayer

	// MaxPool is how many idle connections are kept per peer for reuse.
	// Zero disables pooling.
	MaxPool int

	// MaxRPCsInFlight bounds the AppendEntries requests a pipeline has sent
	// and not yet had answered. Zero means DefaultMaxRPCsInFlight; a value
	// below 2 disables pipelining.
	MaxRPCsInFlight int

	// Timeout bounds each network read and write: a whole synchronous RPC,
	// one pipelined send or answer, and a request's body on the server.
	// InstallSnapshot gets Timeout per TimeoutScale bytes. Zero or negative
	// means 10s: unlike hashicorp/raft, no operation waits without a
	// deadline.
	Timeout time.Duration

	// MsgpackUseNewTimeFormat encodes Log.AppendedAt in the msgpack
	// timestamp format. Leave it false while any peer runs go-msgpack v0.5.5
	// (hashicorp/raft before v1.7); every version decodes both formats.
	MsgpackUseNewTimeFormat bool

	// MaxMessageSize is the largest request or response, in bytes, the
	// transport reads; a larger one closes the connection with a logged
	// error before it can allocate more. Zero means DefaultMaxMessageSize.
	// It must exceed the largest AppendEntries batch the leader sends.
	MaxMessageSize int
}

// NetworkTransport is a Transport over a StreamLayer (TCP or TLS) that
// speaks hashicorp/raft's NetworkTransport protocol byte for byte (docs/WIRE.md),
// so nodes of both libraries can form one cluster.
//
// Each synchronous RPC takes a pooled connection (or dials one), sends one
// request and reads one reply. AppendEntriesPipeline and InstallSnapshot use
// connections of their own. On the serving side (net_server.go), each
// accepted connection has a reader goroutine that reads requests ahead and
// hands them to Consumer, except heartbeats, which go straight to the
// heartbeat handler when one is set, and a writer goroutine that sends the
// replies in request order.
type NetworkTransport struct {
	// TimeoutScale is the number of snapshot bytes allowed one Timeout when
	// sending or receiving InstallSnapshot. Set it before first use.
	TimeoutScale int

	stream         StreamLayer
	logger         hclog.Logger
	addrProvider   ServerAddressProvider
	maxPool        int
	maxInFlight    int
	timeout        time.Duration
	maxMessageSize int64
	encodeHandle   *codec.MsgpackHandle
	decodeHandle   *codec.MsgpackHandle

	consumeCh   chan RPC
	heartbeatFn atomic.Pointer[func(RPC)]

	poolMu sync.Mutex
	pool   map[ServerAddress][]*netConn // idle client connections, used LIFO

	// streamCtx is cancelled by CloseStreams and Close; every server
	// connection accepted under it is closed then.
	streamMu     sync.Mutex
	streamCtx    context.Context
	streamCancel context.CancelFunc

	shutdownMu sync.Mutex
	shutdown   bool
	shutdownCh chan struct{}
	pipelines  map[*netPipeline]struct{} // open pipelines, closed by Close

	serving sync.WaitGroup // the accept loop and connection handlers
}

// netConn is one connection with its buffers and codec state.
type netConn struct {
	target ServerAddress
	conn   net.Conn
	*msgReader
	*msgWriter
}

func (c *netConn) Close() error { return c.conn.Close() }

// NewNetworkTransport creates a NetworkTransport over stream that logs to
// logOutput (stderr if nil).
func NewNetworkTransport(stream StreamLayer, maxPool int, timeout time.Duration, logOutput io.Writer) *NetworkTransport {
	if logOutput == nil {
		logOutput = os.Stderr
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft-net", Output: logOutput, Level: hclog.DefaultLevel})
	return NewNetworkTransportWithLogger(stream, maxPool, timeout, logger)
}

// NewNetworkTransportWithLogger creates a NetworkTransport over stream that
// logs to logger.
func NewNetworkTransportWithLogger(stream StreamLayer, maxPool int, timeout time.Duration, logger hclog.Logger) *NetworkTransport {
	return NewNetworkTransportWithConfig(&NetworkTransportConfig{Stream: stream, MaxPool: maxPool, Timeout: timeout, Logger: logger})
}

// NewNetworkTransportWithConfig creates a NetworkTransport from config and
// starts accepting connections on config.Stream.
func NewNetworkTransportWithConfig(config *NetworkTransportConfig) *NetworkTransport {
	logger := config.Logger
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "raft-net", Output: os.Stderr, Level: hclog.DefaultLevel})
	}
	maxInFlight := config.MaxRPCsInFlight
	if maxInFlight == 0 {
		maxInFlight = DefaultMaxRPCsInFlight
	}
	timeout := config.Timeout
	if timeout <= 0 {
		timeout = defaultNetTimeout
	}
	maxMessageSize := int64(config.MaxMessageSize)
	if maxMessageSize <= 0 {
		maxMessageSize = DefaultMaxMessageSize
	}
	n := &NetworkTransport{
		TimeoutScale:   DefaultTimeoutScale,
		stream:         config.Stream,
		logger:         logger,
		addrProvider:   config.ServerAddressProvider,
		maxPool:        config.MaxPool,
		maxInFlight:    maxInFlight,
		timeout:        timeout,
		maxMessageSize: maxMessageSize,
		encodeHandle:   newMsgpackHandle(config.MsgpackUseNewTimeFormat),
		// The all-default handle decodes both time formats (docs/WIRE.md §4).
		decodeHandle: &codec.MsgpackHandle{},
		consumeCh:    make(chan RPC, consumerBuffer),
		pool:         make(map[ServerAddress][]*netConn),
		shutdownCh:   make(chan struct{}),
		pipelines:    make(map[*netPipeline]struct{}),
	}
	n.streamCtx, n.streamCancel = context.WithCancel(context.Background())
	n.serving.Add(1)
	go n.acceptLoop()
	return n
}

// Consumer returns the channel on which incoming RPCs arrive. It holds up
// to consumerBuffer requests that have been read but not yet taken, so
// that Raft finds the pipelined AppendEntries of a connection already
// waiting when it takes the first (the server of docs/WIRE.md is unbuffered; nothing
// on the wire depends on it).
func (n *NetworkTransport) Consumer() <-chan RPC { return n.consumeCh }

// LocalAddr returns the address the stream layer advertises.
func (n *NetworkTransport) LocalAddr() ServerAddress { return ServerAddress(n.stream.Addr().String()) }

// SetHeartbeatHandler installs cb to answer heartbeats on the connection's
// own goroutine, bypassing Consumer. A nil cb sends heartbeats through
// Consumer again.
func (n *NetworkTransport) SetHeartbeatHandler(cb func(rpc RPC)) {
	if cb == nil {
		n.heartbeatFn.Store(nil)
		return
	}
	n.heartbeatFn.Store(&cb)
}

// EncodePeer returns the address to put in RPC headers: the provider's
// address for id if a provider is set and knows it, addr otherwise.
func (n *NetworkTransport) EncodePeer(id ServerID, addr ServerAddress) []byte {
	return []byte(n.resolve(id, addr))
}

// DecodePeer is the inverse of EncodePeer.
func (n *NetworkTransport) DecodePeer(buf []byte) ServerAddress { return ServerAddress(buf) }

// IsShutdown reports whether Close has been called.
func (n *NetworkTransport) IsShutdown() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}

// Close stops accepting connections, closes every connection the transport
// holds (pooled, pipelined and served) and waits for its goroutines to exit.
// Calls after the first return nil at once.
func (n *NetworkTransport) Close() error {
	n.shutdownMu.Lock()
	if n.shutdown {
		n.shutdownMu.Unlock()
		return nil
	}
	n.shutdown = true
	close(n.shutdownCh)
	pipelines := make([]*netPipeline, 0, len(n.pipelines))
	for p := range n.pipelines {
		pipelines = append(pipelines, p)
	}
	n.shutdownMu.Unlock()

	err := n.stream.Close()
	for _, p := range pipelines {
		p.Close()
	}
	n.CloseStreams()
	n.serving.Wait()
	return err
}

// CloseStreams closes the idle pooled connections and every connection
// being served; peers reconnect on their next RPC. The transport stays open.
func (n *NetworkTransport) CloseStreams() {
	n.poolMu.Lock()
	for target, conns := range n.pool {
		for _, c := range conns {
			c.Close()
		}
		delete(n.pool, target)
	}
	n.poolMu.Unlock()

	n.streamMu.Lock()
	n.streamCancel()
	// Once the transport is shut down the cancelled context stays, so a
	// connection the accept loop took just before Close is closed at once
	// instead of being served, unseen by Close, for as long as its peer
	// keeps it open.
	if !n.IsShutdown() {
		n.streamCtx, n.streamCancel = context.WithCancel(context.Background())
	}
	n.streamMu.Unlock()
}

func (n *NetworkTransport) currentStreamCtx() context.Context {
	n.streamMu.Lock()
	defer n.streamMu.Unlock()
	return n.streamCtx
}

// resolve picks the address to dial for a server (docs/WIRE.md §1).
func (n *NetworkTransport) resolve(id ServerID, target ServerAddress) ServerAddress {
	if n.addrProvider == nil {
		return target
	}
	addr, err := n.addrProvider.ServerAddr(id)
	if err != nil {
		n.logger.Warn("unable to get address for server, using fallback address", "id", id, "fallback", target, "error", err)
		return target
	}
	return addr
}

// newNetConn wraps a client connection with a small reader for the replies
// and a big writer for the requests (docs/WIRE.md §8). The server side of a
// connection is built by newServedConn.
func (n *NetworkTransport) newNetConn(target ServerAddress, conn net.Conn) *netConn {
	return &netConn{
		target:    target,
		conn:      conn,
		msgReader: newMsgReader(bufio.NewReaderSize(conn, 4096), n.decodeHandle, n.maxMessageSize),
		msgWriter: newMsgWriter(bufio.NewWriterSize(conn, connBufferSize), n.encodeHandle),
	}
}

// dial opens a new client connection to target.
func (n *NetworkTransport) dial(target ServerAddress) (*netConn, error) {
	conn, err := n.stream.Dial(target, n.timeout)
	if err != nil {
		return nil, err
	}
	return n.newNetConn(target, conn), nil
}

// getConn takes the most recently pooled connection to the server, or dials.
func (n *NetworkTransport) getConn(id ServerID, target ServerAddress) (*netConn, error) {
	addr := n.resolve(id, target)
	n.poolMu.Lock()
	if conns := n.pool[addr]; len(conns) > 0 {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		n.pool[addr] = conns[:len(conns)-1]
		n.poolMu.Unlock()
		return c, nil
	}
	n.poolMu.Unlock()
	return n.dial(addr)
}

// returnConn pools a healthy connection, or closes it when the pool is full
// or the transport is shut down.
func (n *NetworkTransport) returnConn(c *netConn) {
	n.poolMu.Lock()
	defer n.poolMu.Unlock()
	if n.IsShutdown() || len(n.pool[c.target]) >= n.maxPool {
		c.Close()
		return
	}
	n.pool[c.target] = append(n.pool[c.target], c)
}

// AppendEntries sends one AppendEntries request and waits for its answer.
func (n *NetworkTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	return n.genericRPC(id, target, rpcAppendEntries, args, resp)
}

// RequestVote sends one RequestVote request and waits for its answer.
func (n *NetworkTransport) RequestVote(id ServerID, target ServerAddress, args *RequestVoteRequest, resp *RequestVoteResponse) error {
	return n.genericRPC(id, target, rpcRequestVote, args, resp)
}

// RequestPreVote sends one RequestPreVote request and waits for its answer.
func (n *NetworkTransport) RequestPreVote(id ServerID, target ServerAddress, args *RequestPreVoteRequest, resp *RequestPreVoteResponse) error {
	return n.genericRPC(id, target, rpcRequestPreVote, args, resp)
}

// TimeoutNow sends one TimeoutNow request and waits for its answer.
func (n *NetworkTransport) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	return n.genericRPC(id, target, rpcTimeoutNow, args, resp)
}

// genericRPC runs one request/reply exchange on a pooled connection. The
// connection goes back to the pool only if both reply values decoded; after
// any other error its stream position is unknown, so it is closed.
func (n *NetworkTransport) genericRPC(id ServerID, target ServerAddress, rpcType uint8, args, resp interface{}) error {
	if n.IsShutdown() {
		return ErrTransportShutdown
	}
	c, err := n.getConn(id, target)
	if err != nil {
		return err
	}
	if err := c.conn.SetDeadline(time.Now().Add(n.timeout)); err != nil {
		c.Close()
		return err
	}
	if err := n.send(c, rpcType, args); err != nil {
		c.Close()
		return err
	}
	rpcErr, err := c.readResponse(resp)
	if err != nil {
		c.Close()
		return err
	}
	n.returnConn(c)
	return rpcErr
}

// send writes and flushes one request.
func (n *NetworkTransport) send(c *netConn, rpcType uint8, args interface{}) error {
	if err := c.writeRequest(rpcType, args); err != nil {
		return fmt.Errorf("raft-net: send %s: %w", rpcTypeName(rpcType, args), err)
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("raft-net: send %s: %w", rpcTypeName(rpcType, args), err)
	}
	return nil
}

// InstallSnapshot sends a snapshot on a connection of its own: the request,
// then exactly args.Size bytes of data. The deadline grows with the size
// (docs/WIRE.md §3). It fails if data ends before args.Size bytes, and sends no
// more than args.Size bytes even if data holds more.
func (n *NetworkTransport) InstallSnapshot(id ServerID, target ServerAddress, args *InstallSnapshotRequest, resp *InstallSnapshotResponse, data io.Reader) error {
	if n.IsShutdown() {
		return ErrTransportShutdown
	}
	if args.Size < 0 {
		return fmt.Errorf("raft-net: install snapshot with negative size %d", args.Size)
	}
	c, err := n.dial(n.resolve(id, target))
	if err != nil {
		return err
	}
	defer c.Close()

	if err := c.conn.SetDeadline(time.Now().Add(n.snapshotTimeout(args.Size))); err != nil {
		return err
	}
	if err := c.writeRequest(rpcInstallSnapshot, args); err != nil {
		return fmt.Errorf("raft-net: send InstallSnapshot: %w", err)
	}
	// Sending exactly Size bytes keeps the receiver's stream in step even if
	// data holds more; a short data fails here rather than leaving the
	// receiver waiting for bytes that never come.
	copied, err := io.CopyN(c.bw, data, args.Size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("raft-net: snapshot data ended after %d of %d bytes: %w", copied, args.Size, errShortRead)
		}
		return fmt.Errorf("raft-net: send snapshot data: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("raft-net: send snapshot data: %w", err)
	}
	rpcErr, err := c.readResponse(resp)
	if err != nil {
		return err
	}
	return rpcErr
}

// snapshotTimeout is Timeout per TimeoutScale bytes of snapshot, at least
// Timeout.
func (n *NetworkTransport) snapshotTimeout(size int64) time.Duration {
	scale := int64(n.TimeoutScale)
	if scale <= 0 {
		scale = DefaultTimeoutScale
	}
	units := size / scale
	if units <= 1 {
		return n.timeout
	}
	if units >= int64(maxSnapshotTimeout/n.timeout) {
		return maxSnapshotTimeout
	}
	return n.timeout * time.Duration(units)
}

// AppendEntriesPipeline opens a pipeline of AppendEntries requests to the
// server on a connection of its own.
func (n *NetworkTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	if n.maxInFlight < 2 {
		return nil, ErrPipelineReplicationNotSupported
	}
	if n.IsShutdown() {
		return nil, ErrTransportShutdown
	}
	c, err := n.dial(n.resolve(id, target))
	if err != nil {
		return nil, err
	}
	p := newNetPipeline(n, c)
	n.shutdownMu.Lock()
	if n.shutdown {
		n.shutdownMu.Unlock()
		p.Close()
		return nil, ErrTransportShutdown
	}
	n.pipelines[p] = struct{}{}
	n.shutdownMu.Unlock()
	return p, nil
}

func (n *NetworkTransport) forgetPipeline(p *netPipeline) {
	n.shutdownMu.Lock()
	delete(n.pipelines, p)
	n.shutdownMu.Unlock()
}

// acceptLoop accepts connections until Close, backing off on errors from
// 5ms doubling up to 1s.
func (n *NetworkTransport) acceptLoop() {
	defer n.serving.Done()
	const baseDelay, maxDelay = 5 * time.Millisecond, time.Second
	var delay time.Duration
	for {
		conn, err := n.stream.Accept()
		if err != nil {
			if n.IsShutdown() {
				return
			}
			if delay == 0 {
				delay = baseDelay
			} else {
				delay = min(2*delay, maxDelay)
			}
			n.logger.Error("failed to accept connection", "error", err, "retry_in", delay)
			timer := time.NewTimer(delay)
			select {
			case <-n.shutdownCh:
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		delay = 0
		n.logger.Trace("accepted connection", "local-address", n.LocalAddr(), "remote-address", conn.RemoteAddr())
		n.serving.Add(1)
		go n.serve(n.currentStreamCtx(), conn)
	}
}
