package main

// End-to-end tests: three processes of the built binary talking real TCP
// (Raft) and HTTP on 127.0.0.1, with real disks. They run in real time; every
// wait polls with a bound and fails with what it last saw.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// raftkvBinary is the binary built once by TestMain.
var raftkvBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftkv-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	raftkvBinary = filepath.Join(dir, "raftkv")
	build := exec.Command("go", "build", "-o", raftkvBinary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build raftkv: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// proc is one raftkv process and what is needed to restart it.
type proc struct {
	t        *testing.T
	id       string
	httpAddr string
	args     []string
	logPath  string
	cmd      *exec.Cmd
	exited   chan error // receives the process's exit once
}

func newProc(t *testing.T, id string, extra ...string) *proc {
	dir := t.TempDir()
	p := &proc{t: t, id: id, httpAddr: freeAddr(t), logPath: filepath.Join(dir, "log")}
	p.args = append([]string{"-id", id, "-http", p.httpAddr, "-raft", freeAddr(t), "-data", filepath.Join(dir, "data"), "-log-level", "debug"}, extra...)
	t.Cleanup(func() {
		if p.cmd != nil && p.exited != nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			logs, _ := os.ReadFile(p.logPath)
			t.Logf("---- log of %s ----\n%s", id, logs)
		}
	})
	return p
}

// start runs the process, appending its log to p.logPath.
func (p *proc) start() {
	p.t.Helper()
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(p.t, err)
	p.cmd = exec.Command(raftkvBinary, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	require.NoError(p.t, p.cmd.Start())
	p.exited = make(chan error, 1)
	go func() {
		p.exited <- p.cmd.Wait()
		logFile.Close()
	}()
}

// kill stops the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Kill())
	<-p.exited
	p.exited = nil
}

// terminate sends SIGTERM and requires a clean exit within a bound.
func (p *proc) terminate() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.exited:
		p.exited = nil
		require.NoError(p.t, err, "%s should exit cleanly on SIGTERM", p.id)
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not exit within 30s of SIGTERM", p.id)
	}
}

var httpClient = &http.Client{Timeout: 20 * time.Second}

// do sends one request to p and returns the status and body; a transport
// error is returned as status 0 and the error text.
func (p *proc) do(method, path, body string) (int, string) {
	req, err := http.NewRequest(method, "http://"+p.httpAddr+path, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(raw)
}

// eventually retries f every 50ms until it returns nil, failing the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func expectStatus(status int, body string, want int) error {
	if status != want {
		return fmt.Errorf("status %d, want %d: %s", status, want, body)
	}
	return nil
}

// put writes key=value through p, retrying while the cluster has no leader.
func (p *proc) put(t *testing.T, key, value string) {
	t.Helper()
	eventually(t, 20*time.Second, "PUT "+key+" via "+p.id, func() error {
		status, body := p.do(http.MethodPut, "/v1/kv/"+key, value)
		return expectStatus(status, body, http.StatusOK)
	})
}

// get reads key from p with the given consistency, without retrying.
func (p *proc) get(key, consistency string) (string, error) {
	status, body := p.do(http.MethodGet, "/v1/kv/"+key+"?consistency="+consistency, "")
	if err := expectStatus(status, body, http.StatusOK); err != nil {
		return "", err
	}
	var kv kvResponse
	if err := json.Unmarshal([]byte(body), &kv); err != nil {
		return "", err
	}
	return kv.Value, nil
}

// cluster returns p's view of the cluster.
func (p *proc) cluster() (clusterInfo, error) {
	var info clusterInfo
	status, body := p.do(http.MethodGet, "/v1/cluster", "")
	if err := expectStatus(status, body, http.StatusOK); err != nil {
		return info, err
	}
	return info, json.Unmarshal([]byte(body), &info)
}

// waitForMembers waits until p sees a leader and exactly the given members
// (ids in sorted order).
func (p *proc) waitForMembers(t *testing.T, ids ...string) clusterInfo {
	t.Helper()
	var info clusterInfo
	eventually(t, 30*time.Second, p.id+" sees members "+strings.Join(ids, ","), func() error {
		var err error
		if info, err = p.cluster(); err != nil {
			return err
		}
		var got []string
		for _, m := range info.Members {
			got = append(got, m.ID)
		}
		// Members are listed in the order they joined, which races.
		slices.Sort(got)
		if info.Leader == nil || !slices.Equal(got, ids) {
			return fmt.Errorf("leader %+v, members %v", info.Leader, got)
		}
		return nil
	})
	return info
}

func TestClusterOfThreeProcessesSurvivesLeaderCrashAndMembershipChanges(t *testing.T) {
	n1 := newProc(t, "n1")
	n1.start()
	n1.waitForMembers(t, "n1")
	n2 := newProc(t, "n2", "-join", n1.httpAddr)
	n3 := newProc(t, "n3", "-join", n1.httpAddr)
	n2.start()
	n3.start()
	procs := []*proc{n1, n2, n3}
	for _, p := range procs {
		p.waitForMembers(t, "n1", "n2", "n3")
	}

	// Writes on any node; a linearizable read on any node right after a
	// write acknowledged by another sees it.
	for i, writer := range procs {
		for j, reader := range procs {
			key, value := fmt.Sprintf("k-%d-%d", i, j), fmt.Sprintf("v-%d-%d", i, j)
			writer.put(t, key, value)
			got, err := reader.get(key, "linearizable")
			require.NoError(t, err, "linearizable read of %s on %s after a write on %s", key, reader.id, writer.id)
			require.Equal(t, value, got)
		}
	}

	// Crash the leader.
	info, err := n1.cluster()
	require.NoError(t, err)
	var leader *proc
	var survivors []*proc
	for _, p := range procs {
		if p.id == info.Leader.ID {
			leader = p
		} else {
			survivors = append(survivors, p)
		}
	}
	require.NotNil(t, leader, "leader %q is not one of the processes", info.Leader.ID)
	leader.kill()

	// Writes continue on the survivors once they elect a new leader.
	for i, p := range survivors {
		p.put(t, fmt.Sprintf("after-crash-%d", i), "still here")
	}
	for _, p := range survivors {
		for i := range survivors {
			got, err := p.get(fmt.Sprintf("after-crash-%d", i), "linearizable")
			require.NoError(t, err)
			require.Equal(t, "still here", got)
		}
		got, err := p.get("k-2-2", "linearizable")
		require.NoError(t, err, "a write from before the crash is lost on %s", p.id)
		require.Equal(t, "v-2-2", got)
	}

	// The crashed node restarts from its data directory and catches up: a
	// stale read of its own state eventually shows the writes it missed.
	leader.start()
	eventually(t, 30*time.Second, leader.id+" catches up", func() error {
		for i := range survivors {
			got, err := leader.get(fmt.Sprintf("after-crash-%d", i), "stale")
			if err != nil {
				return err
			}
			if got != "still here" {
				return fmt.Errorf("got %q", got)
			}
		}
		return nil
	})

	// Remove a node through a node that may not lead (the request is
	// forwarded); the other two carry on.
	removed, via, other := survivors[0], survivors[1], leader
	status, body := via.do(http.MethodDelete, "/v1/cluster/"+removed.id, "")
	require.Equal(t, http.StatusOK, status, body)
	remaining := []string{"n1", "n2", "n3"}
	remaining = append(remaining[:0:0], without(remaining, removed.id)...)
	via.waitForMembers(t, remaining...)
	other.waitForMembers(t, remaining...)
	via.put(t, "after-removal", "two nodes")
	got, err := other.get("after-removal", "linearizable")
	require.NoError(t, err)
	require.Equal(t, "two nodes", got)
	status, body = via.do(http.MethodDelete, "/v1/cluster/"+removed.id, "")
	require.Equal(t, http.StatusNotFound, status, "removing a server twice: %s", body)

	// Every process shuts down cleanly on SIGTERM, the leader handing over
	// leadership first.
	for _, p := range []*proc{removed, via, other} {
		p.terminate()
	}
}

func without(ids []string, drop string) []string {
	var kept []string
	for _, id := range ids {
		if id != drop {
			kept = append(kept, id)
		}
	}
	return kept
}

func TestBinaryRejectsBadFlags(t *testing.T) {
	dirs := func() []string { return []string{"-http", freeAddr(t), "-raft", freeAddr(t), "-data", t.TempDir()} }
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"unknown log level", append(dirs(), "-log-level", "loud"), `unknown log level "loud"`},
		{"partial TLS flags", append(dirs(), "-tls-cert", "cert.pem"), "must be given together"},
		{"missing TLS files", append(dirs(), "-tls-cert", "no.pem", "-tls-key", "no.key", "-tls-ca", "ca.pem"), "load TLS key pair"},
		{"wildcard raft addr", []string{"-raft", "0.0.0.0:12000", "-http", freeAddr(t), "-data", t.TempDir()}, "not a wildcard"},
		{"non-positive max value", append(dirs(), "-max-value", "0"), "-max-value must be positive"},
		{"demo with no keys", []string{"demo", "-keys", "0"}, "-keys and -writers must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(raftkvBinary, tc.args...).CombinedOutput()
			var exitErr *exec.ExitError
			require.True(t, errors.As(err, &exitErr), "want a non-zero exit, got %v; output:\n%s", err, out)
			require.Contains(t, string(out), tc.want)
		})
	}
}
