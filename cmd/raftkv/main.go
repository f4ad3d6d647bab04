// Command raftkv is a replicated key-value service built on
// github.com/quorumkit/raft: every node stores the same map, written through
// the Raft log and kept in a write-ahead log (the wal package) with file
// snapshots. Clients talk HTTP/JSON to any node; writes and linearizable
// reads on a follower are forwarded to the leader.
//
// Usage:
//
//	raftkv [flags]       run a node (with no flags: a single-node cluster,
//	                     HTTP on 127.0.0.1:11000, Raft on 127.0.0.1:12000,
//	                     data in ./raftkv-data)
//	raftkv demo [flags]  run a three-node cluster in one process and show
//	                     replication, failover and catching up
//
// A second node joins the first with
//
//	raftkv -id node2 -http 127.0.0.1:11001 -raft 127.0.0.1:12001 \
//	       -data ./node2 -join 127.0.0.1:11000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

func main() {
	args := os.Args[1:]
	var err error
	if len(args) > 0 && args[0] == "demo" {
		err = runDemo(args[1:], os.Stdout)
	} else {
		err = runServer(args)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "raftkv:", err)
		os.Exit(1)
	}
}

// errUsage reports bad command-line arguments (the flag package has already
// printed why).
var errUsage = errors.New("usage")

// serverFlags are the command-line settings of a node.
type serverFlags struct {
	id, httpAddr, httpAdvertise, raftAddr, dataDir, join string
	bootstrap                                            bool
	tlsCert, tlsKey, tlsCA                               string
	logLevel                                             string
	maxValue                                             int64
}

func parseServerFlags(args []string) (serverFlags, error) {
	var f serverFlags
	fs := flag.NewFlagSet("raftkv", flag.ContinueOnError)
	fs.StringVar(&f.id, "id", "node1", "this node's server ID, unique in the cluster")
	fs.StringVar(&f.httpAddr, "http", "127.0.0.1:11000", "address to serve the HTTP API on")
	fs.StringVar(&f.httpAdvertise, "http-advertise", "", "HTTP address other nodes forward requests to (default: -http)")
	fs.StringVar(&f.raftAddr, "raft", "127.0.0.1:12000", "address for Raft traffic; peers dial it, so it must not be a wildcard")
	fs.StringVar(&f.dataDir, "data", "raftkv-data", "directory for the write-ahead log and snapshots")
	fs.StringVar(&f.join, "join", "", "HTTP address of a cluster member to ask to add this node as a voter (only when the data directory is new)")
	fs.BoolVar(&f.bootstrap, "bootstrap", true, "with a new data directory and no -join, start a new single-node cluster")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate for mutual TLS on the Raft port (with -tls-key and -tls-ca)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA certificate(s) that sign every node's certificate")
	fs.StringVar(&f.logLevel, "log-level", "info", "trace, debug, info, warn, error or off")
	fs.Int64Var(&f.maxValue, "max-value", 1<<20, "largest value accepted, in bytes")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  raftkv [flags]       run a node\n  raftkv demo [flags]  run a three-node demo cluster in this process\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, err
		}
		return f, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return f, errUsage
	}
	if f.maxValue < 1 {
		return f, errors.New("-max-value must be positive")
	}
	if f.httpAdvertise == "" {
		f.httpAdvertise = f.httpAddr
	}
	return f, nil
}

// parseLogLevel accepts the hclog level names, refusing unknown ones (hclog
// would silently fall back to a default).
func parseLogLevel(s string) (hclog.Level, error) {
	level := hclog.LevelFromString(s)
	if level == hclog.NoLevel {
		return 0, fmt.Errorf("unknown log level %q (use trace, debug, info, warn, error or off)", s)
	}
	return level, nil
}

// runServer runs one node until SIGINT or SIGTERM.
func runServer(args []string) error {
	flags, err := parseServerFlags(args)
	if err != nil {
		return err
	}
	level, err := parseLogLevel(flags.logLevel)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "raftkv", Level: level, Output: os.Stderr})
	tlsConf, err := loadTLSConfig(flags.tlsCert, flags.tlsKey, flags.tlsCA)
	if err != nil {
		return err
	}
	metrics, err := installMetrics()
	if err != nil {
		return fmt.Errorf("set up metrics: %w", err)
	}

	// Take the HTTP port before starting Raft, so that a busy port fails
	// before this node can take part in elections.
	listener, err := net.Listen("tcp", flags.httpAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP: %w", err)
	}
	n, err := openNode(nodeConfig{
		ID:        flags.id,
		RaftAddr:  flags.raftAddr,
		HTTPAddr:  flags.httpAdvertise,
		DataDir:   flags.dataDir,
		Bootstrap: flags.bootstrap && flags.join == "",
		TLS:       tlsConf,
		Logger:    logger,
	})
	if err != nil {
		listener.Close()
		return err
	}
	srv := &http.Server{Handler: newAPI(n, flags.maxValue, metrics), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	logger.Info("serving", "id", flags.id, "http", listener.Addr().String(), "raft", string(n.trans.LocalAddr()), "data", flags.dataDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	joinErr := make(chan error, 1)
	if flags.join != "" && !n.hadState {
		go func() {
			joinErr <- joinCluster(ctx, logger, flags.join, joinRequest{ID: flags.id, Addr: string(n.trans.LocalAddr()), HTTP: flags.httpAdvertise})
		}()
	}

	var runErr error
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
			waiting = false
		case err := <-serveErr:
			runErr = fmt.Errorf("HTTP server: %w", err)
			waiting = false
		case err := <-joinErr:
			// A node that could not join serves no purpose: stop it.
			if err != nil {
				runErr = err
				waiting = false
			}
		}
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("HTTP shutdown", "error", err)
	}
	if err := n.close(true); err != nil {
		return errors.Join(runErr, fmt.Errorf("close node: %w", err))
	}
	return runErr
}

// joinCluster asks the node at addr to add this one as a voter, retrying
// while the cluster is unreachable or without a leader. It returns nil once
// joined, and an error when the request is refused or ctx ends.
func joinCluster(ctx context.Context, logger hclog.Logger, addr string, req joinRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 15 * time.Second}
	for attempt := 1; ; attempt++ {
		status, msg, err := postJSON(ctx, client, "http://"+addr+"/v1/cluster/join", body)
		switch {
		case err == nil && status == http.StatusOK:
			logger.Info("joined the cluster", "via", addr)
			return nil
		case err == nil && status < 500:
			return fmt.Errorf("join via %s refused (%d): %s", addr, status, msg)
		case err != nil:
			msg = err.Error()
		}
		logger.Warn("join failed, retrying", "via", addr, "attempt", attempt, "status", status, "error", msg)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join via %s: %w", addr, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// postJSON posts body and returns the status and, for an error status, the
// error message of the answer.
func postJSON(ctx context.Context, client *http.Client, url string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	var e errorBody
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error, nil
	}
	return resp.StatusCode, string(raw), nil
}
