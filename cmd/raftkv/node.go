package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/wal"
)

// nodeConfig says how to open one raftkv server.
type nodeConfig struct {
	ID       string
	RaftAddr string // bound and advertised; a port of 0 picks a free one
	HTTPAddr string // recorded in the FSM so that followers can forward to us
	DataDir  string // holds wal/ and snapshots/

	// Bootstrap makes a node with empty stores start a new single-node
	// cluster. A node with existing state never bootstraps again.
	Bootstrap bool
	// Peers, when set with Bootstrap, is the whole initial configuration
	// (this node included) instead of just this node.
	Peers []raft.Server

	TLS    *tls.Config // mutual TLS on the Raft port; nil means plain TCP
	Logger hclog.Logger

	// Tune, if set, adjusts the Raft configuration (tests use it for short
	// timeouts).
	Tune func(*raft.Config)
}

// node is one running raftkv server: the Raft node and the stores it owns.
type node struct {
	id       string
	httpAddr string
	raft     *raft.Raft
	fsm      *kvFSM
	store    *wal.Store
	trans    *raft.NetworkTransport
	logger   hclog.Logger
	hadState bool // the stores held Raft state when the node was opened

	stop      chan struct{} // closed by close to end background goroutines
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// openNode opens the stores, starts the transport and the Raft node, and
// bootstraps when asked to and the stores are empty. On error everything it
// opened is closed again.
func openNode(cfg nodeConfig) (n *node, err error) {
	if cfg.ID == "" {
		return nil, errors.New("raftkv: node ID must not be empty")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	walDir := filepath.Join(cfg.DataDir, "wal")
	if err := os.MkdirAll(walDir, 0o750); err != nil {
		return nil, fmt.Errorf("raftkv: create data dir: %w", err)
	}
	store, err := wal.Open(walDir, wal.Options{Logger: logger.Named("wal")})
	if err != nil {
		return nil, fmt.Errorf("raftkv: open wal: %w", err)
	}
	closers = append(closers, store.Close)

	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, logger.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raftkv: open snapshot store: %w", err)
	}

	trans, err := newTransport(cfg, logger.Named("raft-net"))
	if err != nil {
		return nil, err
	}
	closers = append(closers, trans.Close)

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.ID)
	conf.Logger = logger.Named("raft")
	if cfg.Tune != nil {
		cfg.Tune(conf)
	}

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, fmt.Errorf("raftkv: inspect stores: %w", err)
	}
	fsm := newKVFSM()
	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("raftkv: start raft: %w", err)
	}
	closers = append(closers, func() error { return r.Shutdown().Error() })

	if cfg.Bootstrap && !existing {
		servers := cfg.Peers
		if len(servers) == 0 {
			servers = []raft.Server{{Suffrage: raft.Voter, ID: conf.LocalID, Address: trans.LocalAddr()}}
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			return nil, fmt.Errorf("raftkv: bootstrap: %w", err)
		}
		logger.Info("bootstrapped a new cluster", "servers", len(servers))
	}

	n = &node{
		id:       cfg.ID,
		httpAddr: cfg.HTTPAddr,
		raft:     r,
		fsm:      fsm,
		store:    store,
		trans:    trans,
		logger:   logger,
		hadState: existing,
		stop:     make(chan struct{}),
	}
	n.wg.Add(1)
	go n.publishHTTPAddrWhileLeader()
	return n, nil
}

// newTransport starts the Raft transport on cfg.RaftAddr, over mutual TLS
// when cfg.TLS is set.
func newTransport(cfg nodeConfig, logger hclog.Logger) (*raft.NetworkTransport, error) {
	var advertise net.Addr
	tcpAddr, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("raftkv: raft address %q: %w", cfg.RaftAddr, err)
	}
	if tcpAddr.IP == nil || tcpAddr.IP.IsUnspecified() {
		return nil, fmt.Errorf("raftkv: raft address %q must name the IP peers reach this node on, not a wildcard", cfg.RaftAddr)
	}
	if tcpAddr.Port != 0 {
		advertise = tcpAddr
	}
	tconf := &raft.NetworkTransportConfig{MaxPool: 3, Timeout: 10 * time.Second, Logger: logger}
	var trans *raft.NetworkTransport
	if cfg.TLS != nil {
		trans, err = raft.NewTLSTransportWithConfig(cfg.RaftAddr, advertise, cfg.TLS, tconf)
	} else {
		trans, err = raft.NewTCPTransportWithConfig(cfg.RaftAddr, advertise, tconf)
	}
	if err != nil {
		return nil, fmt.Errorf("raftkv: listen for raft on %s: %w", cfg.RaftAddr, err)
	}
	return trans, nil
}

// loadTLSConfig builds the mutual-TLS configuration for the Raft port: this
// node presents certFile/keyFile, and both accepts and dials only peers whose
// certificates caFile signed. All three files are needed, or none.
func loadTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("raftkv: -tls-cert, -tls-key and -tls-ca must be given together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("raftkv: load TLS key pair: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("raftkv: read TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("raftkv: %s holds no PEM certificate", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// publishHTTPAddrWhileLeader records this node's HTTP address in the FSM
// each time it becomes leader, so that followers learn where to forward.
func (n *node) publishHTTPAddrWhileLeader() {
	defer n.wg.Done()
	if n.httpAddr == "" {
		return
	}
	for {
		select {
		case <-n.stop:
			return
		case isLeader := <-n.raft.LeaderCh():
			if !isLeader || n.fsm.member(n.id) == n.httpAddr {
				continue
			}
			err := n.raft.Apply(encodeCommand(opSetMember, n.id, n.httpAddr), 5*time.Second).Error()
			if err != nil {
				n.logger.Warn("could not record this node's HTTP address", "error", err)
			}
		}
	}
}

// errNoLeader is reported when the cluster has no known leader.
var errNoLeader = errors.New("no leader")

// leaderHTTPAddr returns the HTTP address of the current leader.
func (n *node) leaderHTTPAddr() (string, error) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", errNoLeader
	}
	addr := n.fsm.member(string(id))
	if addr == "" {
		return "", fmt.Errorf("%w: the HTTP address of leader %s is not known yet", errNoLeader, id)
	}
	return addr, nil
}

// isLeader reports whether this node is the leader.
func (n *node) isLeader() bool { return n.raft.State() == raft.Leader }

// apply writes one command through Raft on this node, which must lead, and
// waits at most until ctx ends for it to be applied. It returns the log
// index of the entry.
func (n *node) apply(ctx context.Context, cmd []byte) (uint64, error) {
	f := n.raft.Apply(cmd, enqueueTimeout(ctx))
	if err := waitFuture(ctx, f); err != nil {
		return 0, err
	}
	if resp, ok := f.Response().(error); ok && resp != nil {
		return 0, resp
	}
	return f.Index(), nil
}

// linearizableRead returns once reading this node's FSM observes
// every write acknowledged before the call. It must run on the leader.
//
// It uses ReadIndex: the leader confirms with one heartbeat round (shared
// by every read waiting for it) that it still leads, and waits until its FSM
// has applied the commit index of the call; no log entry is written.
func (n *node) linearizableRead(ctx context.Context) error {
	return waitFuture(ctx, n.raft.ReadIndex(enqueueTimeout(ctx)))
}

// enqueueTimeout bounds how long an operation may wait to enter the leader's
// queue by the time ctx has left.
func enqueueTimeout(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left > 0 {
			return left
		}
		return time.Millisecond
	}
	return 0
}

// waitFuture waits for f, or for ctx to end, whichever is first. When ctx
// ends first the operation may still complete later.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the node. When graceful and leader of a cluster with other
// voters, it first hands leadership over so that the cluster does not wait
// an election timeout. Then it shuts Raft down and closes the transport and
// the stores. It is safe to call more than once.
func (n *node) close(graceful bool) error {
	n.closeOnce.Do(func() {
		if graceful && n.isLeader() && n.otherVoters() > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := waitFuture(ctx, n.raft.LeadershipTransfer()); err != nil {
				n.logger.Warn("leadership transfer before shutdown failed", "error", err)
			} else {
				n.logger.Info("handed leadership over before shutdown")
			}
			cancel()
		}
		close(n.stop)
		n.wg.Wait()
		errs := []error{n.raft.Shutdown().Error(), n.trans.Close(), n.store.Close()}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// otherVoters counts the voters in the latest configuration besides this
// node.
func (n *node) otherVoters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	count := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.id {
			count++
		}
	}
	return count
}
