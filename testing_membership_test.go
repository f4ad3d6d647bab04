//go:build go1.25

package raft

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Helpers for the membership, transfer and recovery cluster tests: a
// cluster where only some nodes start as voters, clients that write through
// whichever node leads and remember every acknowledged write, and a
// transport that can hold back entries to chosen peers.

// newMembershipCluster starts voters+spares nodes, all connected. The first
// voters nodes are bootstrapped as the voters of a new cluster; the spares
// start empty, to be added later.
func newMembershipCluster(t testing.TB, voters, spares int, opts clusterOptions) *testCluster {
	t.Helper()
	opts.noBootstrap = true
	c := newTestCluster(t, voters+spares, opts)
	var configuration Configuration
	for _, node := range c.nodes[:voters] {
		configuration.Servers = append(configuration.Servers, Server{Suffrage: Voter, ID: node.id, Address: node.addr})
	}
	for _, node := range c.nodes[:voters] {
		require.NoError(t, node.raft.BootstrapCluster(configuration).Error())
	}
	return c
}

// servers returns the configuration's servers sorted by ID, for comparing
// configurations whatever order the changes built them in.
func servers(configuration Configuration) []Server {
	out := append([]Server(nil), configuration.Servers...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// configurationOf lists nodes as servers of the given suffrage.
func configurationOf(suffrage ServerSuffrage, nodes ...*testNode) []Server {
	var c Configuration
	for _, node := range nodes {
		c.Servers = append(c.Servers, Server{Suffrage: suffrage, ID: node.id, Address: node.addr})
	}
	return servers(c)
}

// requireConfigurationsAgree waits until every given node's latest
// configuration holds exactly want (sorted by ID).
func (c *testCluster) requireConfigurationsAgree(want []Server, nodes ...*testNode) {
	c.t.Helper()
	c.waitFor(10*time.Second, fmt.Sprintf("configurations to agree on %+v", want), func() bool {
		for _, node := range nodes {
			got := servers(node.raft.GetConfiguration().Configuration())
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return false
			}
		}
		return true
	})
}

// clientLoad is a set of clients that apply commands to whichever node
// leads, one command at a time each, and remember which ones were
// acknowledged. A command that fails is never retried, so an acknowledged
// command must appear exactly once in every FSM.
type clientLoad struct {
	c     *testCluster
	nodes []*testNode
	stop  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	acked []string
	// errors counts the failures by message.
	errors map[string]int
	// attempts counts every apply tried.
	attempts int
}

// startLoad starts clients that write "<prefix>-<client>-<n>" through the
// leader among nodes. Nodes must not be restarted while the load runs.
func startLoad(c *testCluster, prefix string, clients int, nodes ...*testNode) *clientLoad {
	l := &clientLoad{c: c, nodes: nodes, stop: make(chan struct{}), errors: map[string]int{}}
	for client := range clients {
		l.wg.Add(1)
		go l.run(fmt.Sprintf("%s-%d", prefix, client))
	}
	return l
}

func (l *clientLoad) leader() *Raft {
	for _, node := range l.nodes {
		if node.raft.State() == Leader {
			return node.raft
		}
	}
	return nil
}

func (l *clientLoad) run(prefix string) {
	defer l.wg.Done()
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		r := l.leader()
		if r == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		cmd := fmt.Sprintf("%s-%d", prefix, n)
		err := r.Apply([]byte(cmd), 20*time.Millisecond).Error()
		l.mu.Lock()
		l.attempts++
		if err == nil {
			l.acked = append(l.acked, cmd)
		} else {
			l.errors[err.Error()]++
		}
		l.mu.Unlock()
		// A short pause keeps the load steady rather than a flood.
		time.Sleep(time.Millisecond)
	}
}

// halt stops the clients and waits for them; it returns the acknowledged
// commands.
func (l *clientLoad) halt() []string {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

// ackedCount returns how many writes were acknowledged so far.
func (l *clientLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until at least n more writes than now were acknowledged.
func (l *clientLoad) waitAcked(n int) {
	l.c.t.Helper()
	target := l.ackedCount() + n
	l.c.waitFor(10*time.Second, fmt.Sprintf("%d acknowledged writes", target), func() bool {
		return l.ackedCount() >= target
	})
}

func (l *clientLoad) errorCounts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.errors))
	for k, v := range l.errors {
		out[k] = v
	}
	return out
}

// requireAckedEverywhere waits until every acknowledged command is in every
// given node's FSM, and checks that no command was applied twice.
func (c *testCluster) requireAckedEverywhere(acked []string, nodes ...*testNode) {
	c.t.Helper()
	require.NotEmpty(c.t, acked, "the load acknowledged no write at all")
	missing := func(node *testNode) []string {
		have := map[string]bool{}
		for _, cmd := range node.fsm.commands() {
			have[string(cmd)] = true
		}
		var out []string
		for _, cmd := range acked {
			if !have[cmd] {
				out = append(out, cmd)
			}
		}
		return out
	}
	c.waitFor(10*time.Second, "every acknowledged write on every node", func() bool {
		for _, node := range nodes {
			if len(missing(node)) > 0 {
				return false
			}
		}
		return true
	})
	for _, node := range nodes {
		seen := map[string]bool{}
		for _, cmd := range node.fsm.commands() {
			require.False(c.t, seen[string(cmd)], "%s applied %q twice", node.id, cmd)
			seen[string(cmd)] = true
		}
	}
}

// configurationEntries returns the indexes of the LogConfiguration entries
// in node's log.
func configurationEntries(t testing.TB, node *testNode) []uint64 {
	t.Helper()
	var out []uint64
	log := readLog(t, node)
	for index := log.first; index > 0 && index <= log.last; index++ {
		if entry, ok := log.at(index); ok && entry.Type == LogConfiguration {
			out = append(out, index)
		}
	}
	return out
}

// configGuardStore is a node's store that checks, whenever the node writes a
// configuration entry as leader, that the previous configuration entry was
// already committed: one change in flight at a time means a leader never
// holds two uncommitted configuration entries. (A follower may learn of the
// commit only after it stores the next change, so it is not checked.)
// Violations are recorded, not panicked on, so the test reports them.
type configGuardStore struct {
	*InmemStore
	raft *atomic.Pointer[Raft]

	mu         sync.Mutex
	lastConfig uint64
	violations []string
}

func (s *configGuardStore) check(entries []*Log) {
	r := s.raft.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, entry := range entries {
		if entry.Type != LogConfiguration {
			continue
		}
		if r != nil && r.State() == Leader && s.lastConfig > 0 && entry.Index > s.lastConfig && r.CommitIndex() < s.lastConfig {
			s.violations = append(s.violations, fmt.Sprintf(
				"configuration entry %d written while the one at %d was uncommitted (commit index %d)",
				entry.Index, s.lastConfig, r.CommitIndex()))
		}
		s.lastConfig = max(s.lastConfig, entry.Index)
	}
}

func (s *configGuardStore) StoreLog(entry *Log) error {
	s.check([]*Log{entry})
	return s.InmemStore.StoreLog(entry)
}

func (s *configGuardStore) StoreLogs(entries []*Log) error {
	s.check(entries)
	return s.InmemStore.StoreLogs(entries)
}

func (s *configGuardStore) DeleteRange(minIndex, maxIndex uint64) error {
	s.mu.Lock()
	if s.lastConfig >= minIndex && s.lastConfig <= maxIndex {
		// A truncated configuration entry no longer counts.
		s.lastConfig = 0
	}
	s.mu.Unlock()
	return s.InmemStore.DeleteRange(minIndex, maxIndex)
}

func (s *configGuardStore) requireNoViolation(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Empty(t, s.violations)
}

// gatedTransport is an InmemTransport that can hold back AppendEntries
// requests carrying entries to chosen targets, without failing them: the
// request waits until the gate opens (or the transport, or the pipeline it
// is sent on, closes). Heartbeats pass, so the target keeps following the
// leader while it falls behind. The gate is judged inside the
// InmemTransport (its interceptor), so pipelined requests wait at it too.
type gatedTransport struct {
	*InmemTransport
	mu    sync.Mutex
	gates map[ServerAddress]chan struct{}
}

func newGatedTransport(inner *InmemTransport) *gatedTransport {
	g := &gatedTransport{InmemTransport: inner, gates: map[ServerAddress]chan struct{}{}}
	inner.setInterceptor(g.judge)
	return g
}

// hold makes later entries to target wait; release lets them through.
func (g *gatedTransport) hold(target ServerAddress) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.gates[target]; !ok {
		g.gates[target] = make(chan struct{})
	}
}

func (g *gatedTransport) release(target ServerAddress) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.openLocked(target)
}

// releaseAll opens every gate: testCluster.close calls it, so that a test
// that fails while holding entries back can still shut its nodes down (a
// leader's shutdown waits for its replicators, held at the gate).
func (g *gatedTransport) releaseAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for target := range g.gates {
		g.openLocked(target)
	}
}

// openLocked opens the gate to target, if any; g.mu is held.
func (g *gatedTransport) openLocked(target ServerAddress) {
	if gate, ok := g.gates[target]; ok {
		close(gate)
		delete(g.gates, target)
	}
}

func (g *gatedTransport) judge(_, to ServerAddress, req interface{}) inmemVerdict {
	if args, ok := req.(*AppendEntriesRequest); !ok || len(args.Entries) == 0 {
		return inmemVerdict{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if gate := g.gates[to]; gate != nil {
		return inmemVerdict{gate: gate}
	}
	return inmemVerdict{}
}

// isOneOf reports whether err is one of targets.
func isOneOf(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
