#!/usr/bin/env bash
# Plays an application that switches from hashicorp/raft to this checkout.
#
# It writes a scratch module in a temporary directory that requires
# github.com/hashicorp/raft and the stores users plug into it (raft-boltdb v1
# and v2, raft-wal), adds
#
#   replace github.com/hashicorp/raft => <this checkout>
#
# and runs what a user runs: go mod tidy (without -e), go build ./...,
# go vet ./... and go test ./..., where the test starts a 3-node cluster on
# the in-memory transport with one node on each store, in t.TempDir(). Then
# the same build, vet and test with -tags hashicorpmetrics. Any failing step
# fails the script.
#
#   .ci/consumer.sh                      # against this checkout
#   .ci/consumer.sh --against-hashicorp  # same app, no replace (the baseline)
#
# Real time and real disk: the cluster test runs outside synctest because
# the stores write files; it polls with deadlines and takes a few seconds.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
against=ours
case "${1:-}" in
  "") ;;
  --against-hashicorp) against=hashicorp ;;
  *) echo "usage: $0 [--against-hashicorp]" >&2; exit 2 ;;
esac

# The versions an application of today pins; raft-boltdb v1 has no tags.
hashicorp_raft=v1.7.3
raft_boltdb=v0.0.0-20230125174641-2a8082862702
raft_boltdb_v2=v2.3.1
raft_wal=v0.4.0

# The machine's own Go, never one downloaded because a go line asked for it:
# a go line above it is a failure to see, not to paper over.
export GOTOOLCHAIN=local

app=$(mktemp -d "${TMPDIR:-/tmp}/raft-consumer.XXXXXX")
if [ -z "${CONSUMER_KEEP:-}" ]; then trap 'rm -rf "$app"' EXIT; fi  # CONSUMER_KEEP=1 keeps it to look at
cd "$app"

cat >go.mod <<EOF
module example.com/raftapp

go 1.20

require (
	github.com/hashicorp/raft $hashicorp_raft
	github.com/hashicorp/raft-boltdb $raft_boltdb
	github.com/hashicorp/raft-boltdb/v2 $raft_boltdb_v2
	github.com/hashicorp/raft-wal $raft_wal
)
EOF
if [ "$against" = ours ]; then
  printf '\nreplace github.com/hashicorp/raft => %s\n' "$repo" >>go.mod
fi

cat >node.go <<'EOF'
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
	raftboltdbv2 "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
)

// storeKinds are the third-party stores a node can run on.
var storeKinds = []string{"raft-boltdb", "raft-boltdb-v2", "raft-wal"}

// openStore opens the LogStore and StableStore of the given kind in dir.
func openStore(kind, dir string) (raft.LogStore, raft.StableStore, io.Closer, error) {
	switch kind {
	case "raft-boltdb":
		s, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
		return s, s, s, err
	case "raft-boltdb-v2":
		s, err := raftboltdbv2.NewBoltStore(filepath.Join(dir, "raft.db"))
		return s, s, s, err
	case "raft-wal":
		s, err := raftwal.Open(dir)
		return s, s, s, err
	}
	return nil, nil, nil, fmt.Errorf("unknown store kind %q", kind)
}

// recorder is the FSM: it records the uint64 commands it applies, in order.
type recorder struct {
	mu   sync.Mutex
	cmds []uint64
}

func (r *recorder) Apply(l *raft.Log) interface{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, binary.BigEndian.Uint64(l.Data))
	return len(r.cmds)
}

// applied returns a copy of the commands applied so far, in order.
func (r *recorder) applied() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.cmds...)
}

func (r *recorder) Snapshot() (raft.FSMSnapshot, error) {
	return recorderSnapshot(r.applied()), nil
}

func (r *recorder) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if len(data)%8 != 0 {
		return fmt.Errorf("snapshot of %d bytes is not a list of uint64", len(data))
	}
	cmds := make([]uint64, 0, len(data)/8)
	for i := 0; i < len(data); i += 8 {
		cmds = append(cmds, binary.BigEndian.Uint64(data[i:]))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = cmds
	return nil
}

type recorderSnapshot []uint64

func (s recorderSnapshot) Persist(sink raft.SnapshotSink) error {
	data := make([]byte, 0, 8*len(s))
	for _, cmd := range s {
		data = binary.BigEndian.AppendUint64(data, cmd)
	}
	if _, err := sink.Write(data); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (recorderSnapshot) Release() {}

// node is one server: its Raft, FSM, stores and transport.
type node struct {
	id    raft.ServerID
	kind  string
	dir   string
	fsm   *recorder
	raft  *raft.Raft
	store io.Closer
	trans *raft.InmemTransport
}

// start opens the node's stores in its directory and starts Raft on them,
// on a new in-memory transport (Shutdown closes the old one); connect
// links it to the others.
func (n *node) start() error {
	_, n.trans = raft.NewInmemTransport(raft.ServerAddress(n.id))
	logs, stable, closer, err := openStore(n.kind, n.dir)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", n.id, n.kind, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.dir, 2, hclog.NewNullLogger())
	if err != nil {
		closer.Close()
		return err
	}
	conf := raft.DefaultConfig()
	conf.LocalID = n.id
	conf.Logger = hclog.NewNullLogger()
	conf.HeartbeatTimeout = 300 * time.Millisecond
	conf.ElectionTimeout = 300 * time.Millisecond
	conf.LeaderLeaseTimeout = 300 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	n.fsm = &recorder{}
	r, err := raft.NewRaft(conf, n.fsm, logs, stable, snaps, n.trans)
	if err != nil {
		closer.Close()
		return fmt.Errorf("%s: NewRaft on %s: %w", n.id, n.kind, err)
	}
	n.raft, n.store = r, closer
	return nil
}

// stop shuts Raft down, then closes the stores.
func (n *node) stop() error {
	err := n.raft.Shutdown().Error()
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// connect links the transports of every running node to each other.
func connect(nodes []*node) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b && a.raft != nil && b.raft != nil {
				a.trans.Connect(b.trans.LocalAddr(), b.trans)
			}
		}
	}
}

// newCluster creates one node per store kind under root, connects their
// in-memory transports and starts them; every node bootstraps the same
// configuration.
func newCluster(root string) ([]*node, error) {
	var nodes []*node
	var servers []raft.Server
	for i, kind := range storeKinds {
		id := raft.ServerID(fmt.Sprintf("node%d", i+1))
		nodes = append(nodes, &node{id: id, kind: kind, dir: filepath.Join(root, string(id))})
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: id, Address: raft.ServerAddress(id)})
	}
	for _, n := range nodes {
		if err := makeDir(n.dir); err != nil {
			return nil, err
		}
		if err := n.start(); err != nil {
			return nil, err
		}
	}
	connect(nodes)
	// One node is bootstrapped, as hashicorp/raft's documentation shows:
	// the others vote for it without a configuration of their own.
	if err := nodes[0].raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", nodes[0].id, err)
	}
	return nodes, nil
}
EOF

cat >main.go <<'EOF'
// Command raftapp runs a 3-node cluster in one process, one node on each
// of raft-boltdb, raft-boltdb/v2 and raft-wal, and applies a few commands.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/raft"
)

func makeDir(dir string) error { return os.MkdirAll(dir, 0o755) }

func main() {
	root, err := os.MkdirTemp("", "raftapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(root)
	nodes, err := newCluster(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer func() {
		for _, n := range nodes {
			_ = n.stop()
		}
	}()
	leader := nodes[0].raft
	deadline := time.Now().Add(10 * time.Second)
	for leader.State() != raft.Leader && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for i := uint64(1); i <= 10; i++ {
		var cmd [8]byte
		binary.BigEndian.PutUint64(cmd[:], i)
		f := leader.Apply(cmd[:], time.Second)
		if err := f.Error(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("applied", f.Response(), "commands")
	}
}
EOF

cat >cluster_test.go <<'EOF'
package main

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// waitFor polls cond until it holds or the deadline passes (real time: the
// stores write real files).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// copyDir copies the files under dir to a new directory and returns it.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", dir, err)
	}
	return to
}

func leaderOf(t *testing.T, nodes []*node) *node {
	t.Helper()
	var leader *node
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.raft.State() == raft.Leader {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// applyRange applies the commands from..to on the leader. A failed Apply
// is retried, on whichever node leads by then, until the deadline: its
// outcome may be unknown, so a command can be applied twice, and the
// checks below allow that.
func applyRange(t *testing.T, nodes []*node, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var cmd [8]byte
		binary.BigEndian.PutUint64(cmd[:], i)
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := leaderOf(t, nodes).raft.Apply(cmd[:], 2*time.Second).Error()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("apply %d: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitConverged waits until every running node has applied the same
// commands in the same order as the leader, after a barrier, and checks
// that they include every command 1..last.
func waitConverged(t *testing.T, nodes []*node, last uint64) {
	t.Helper()
	var want []uint64
	waitFor(t, "a barrier on the leader", func() bool {
		leader := leaderOf(t, nodes)
		if leader.raft.Barrier(2*time.Second).Error() != nil {
			return false
		}
		want = leader.fsm.applied()
		return true
	})
	seen := map[uint64]bool{}
	for _, cmd := range want {
		seen[cmd] = true
	}
	for cmd := uint64(1); cmd <= last; cmd++ {
		if !seen[cmd] {
			t.Fatalf("the leader never applied command %d; it applied %v", cmd, want)
		}
	}
	for _, n := range nodes {
		n := n
		waitFor(t, string(n.id)+" ("+n.kind+") to apply every command", func() bool {
			got := n.fsm.applied()
			if len(got) > len(want) || !equal(got, want[:len(got)]) {
				t.Fatalf("%s (%s) applied %v, not a prefix of the leader's %v", n.id, n.kind, got, want)
			}
			return len(got) == len(want)
		})
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestClusterOnThirdPartyStores(t *testing.T) {
	nodes, err := newCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range nodes {
			if n.raft != nil {
				if err := n.stop(); err != nil {
					t.Errorf("stop %s: %v", n.id, err)
				}
			}
		}
	}()

	applyRange(t, nodes, 1, 50)
	waitConverged(t, nodes, 50)

	// A user snapshot on every node goes through FileSnapshotStore and
	// compacts each store's log.
	for _, n := range nodes {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s (%s): %v", n.id, n.kind, err)
		}
	}

	// Restart each node in turn from its own files: it must come back
	// with its term, vote, log and snapshot, and catch up.
	last := uint64(50)
	for _, n := range nodes {
		if err := n.stop(); err != nil {
			t.Fatalf("stop %s (%s): %v", n.id, n.kind, err)
		}
		n.raft = nil
		if n.kind == "raft-wal" {
			// raft-wal v0.4.0's Close leaves its bolt metadata file open
			// and locked, so this process cannot open the directory again;
			// restart from a copy, as a new process would find the files.
			n.dir = copyDir(t, n.dir)
		}
		var others []*node
		for _, o := range nodes {
			if o != n {
				others = append(others, o)
			}
		}
		applyRange(t, others, last+1, last+10)
		last += 10
		if err := n.start(); err != nil {
			t.Fatalf("restart %s (%s): %v", n.id, n.kind, err)
		}
		connect(nodes)
		waitConverged(t, nodes, last)
	}
}
EOF

step() {
  echo "-- $*"
  if ! "$@"; then
    echo "consumer check ($against): FAILED at: $*" >&2
    exit 1
  fi
}

echo "== consumer check against $against in $app"
step go mod tidy
app_go=$(sed -n 's/^go //p' go.mod)
echo "go line after tidy: go $app_go"
if [ "$against" = ours ]; then
  # The application started at go 1.20 (hashicorp/raft v1.7.3's line); tidy
  # may raise it to ours and no further, or a dependency of ours has
  # raised every switching application's go line behind our back.
  ours_go=$(sed -n 's/^go //p' "$repo/go.mod")
  if [ "$app_go" != "$ours_go" ]; then
    echo "consumer check: go mod tidy set the application's go line to $app_go, want $ours_go (this module's); a dependency asks for a newer Go" >&2
    exit 1
  fi
fi
step go build ./...
step go vet ./...
step go test -count=1 ./...
step go build -tags hashicorpmetrics ./...
step go vet -tags hashicorpmetrics ./...
step go test -count=1 -tags hashicorpmetrics ./...
echo "consumer check ($against): ok"
