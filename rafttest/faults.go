package rafttest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quorumkit/raft"
)

// LinkFault describes how a link between two nodes misbehaves.
type LinkFault struct {
	// Drop is the probability in [0, 1] that an RPC is lost: half the
	// time the request never arrives, half the time it is handled but the
	// answer is lost, so the sender cannot tell which happened.
	Drop float64
	// Delay is added to every RPC, plus a uniform random extra of up to
	// Jitter. Inside a testing/synctest bubble it is virtual time.
	Delay, Jitter time.Duration
}

// link is a direction: messages from one node to another.
type link struct{ from, to raft.ServerID }

// linkStream names the random source of one kind of message on one link.
// Each kind is sent by one goroutine of the sender (heartbeats by the
// leader's heartbeat goroutine, entries by its replication goroutine, votes
// by the candidate), so each source is drawn from in an order the seed
// decides: with one source per link, a heartbeat and an AppendEntries sent
// at the same virtual instant would take each other's delays and losses
// depending on which goroutine the scheduler ran first.
type linkStream struct {
	link
	kind string
}

// linkRand is the random source of one linkStream; its own lock, so links
// do not contend.
type linkRand struct {
	mu  sync.Mutex
	rng *rand.Rand
}

// errLinkDown is what a send over a cut link, or to or from a stopped node,
// fails with: the same as an unreachable peer.
var errLinkDown = errors.New("rafttest: link down")

// errDropped is what a send fails with when its request or answer is lost.
var errDropped = errors.New("rafttest: message dropped")

// Partition splits the cluster: nodes talk only with nodes of their own
// group. A node in no group is cut off from every other. It replaces any
// earlier partition; link faults stay.
func (c *Cluster) Partition(groups ...[]raft.ServerID) {
	group := map[raft.ServerID]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.cut)
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			ga, okA := group[a.id]
			gb, okB := group[b.id]
			if a != b && !(okA && okB && ga == gb) {
				c.cut[link{a.id, b.id}] = true
			}
		}
	}
}

// Isolate cuts every link to and from id, keeping other cuts.
func (c *Cluster) Isolate(id raft.ServerID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.nodes {
		if o.id != id {
			c.cut[link{id, o.id}] = true
			c.cut[link{o.id, id}] = true
		}
	}
}

// CutLink stops messages from one node to another, in that direction only.
func (c *Cluster) CutLink(from, to raft.ServerID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut[link{from, to}] = true
}

// Heal restores every link and clears every link fault. Crashed nodes stay
// down.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.cut)
	clear(c.faults)
}

// SetLinkFault makes messages from one node to another misbehave as f
// describes (the zero LinkFault is a healthy link).
func (c *Cluster) SetLinkFault(from, to raft.ServerID, f LinkFault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[link{from, to}] = f
}

// SetAllLinkFaults applies f to every link between the cluster's current
// nodes.
func (c *Cluster) SetAllLinkFaults(f LinkFault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				c.faults[link{a.id, b.id}] = f
			}
		}
	}
}

// verdict is what happens to one RPC.
type verdict struct {
	err          error // fail at once
	delay        time.Duration
	dropResponse bool
}

// judge decides the fate of one RPC from a node to an address.
func (c *Cluster) judge(from raft.ServerID, to raft.ServerAddress, kind string) verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	target, ok := c.byAddr[to]
	if !ok {
		return verdict{} // not ours: the transport reports it
	}
	sender := c.nodeLocked(from)
	l := link{from, target.id}
	if sender == nil || !sender.live || !target.live || c.cut[l] {
		return verdict{err: fmt.Errorf("%w: %s -> %s", errLinkDown, from, target.id)}
	}
	f, ok := c.faults[l]
	if !ok || (f.Drop <= 0 && f.Delay <= 0 && f.Jitter <= 0) {
		return verdict{}
	}
	ls := linkStream{l, kind}
	lr := c.linkRand[ls]
	if lr == nil {
		lr = &linkRand{rng: newRand(c.seed, stream(string(from), string(target.id), kind))}
		c.linkRand[ls] = lr
	}
	lr.mu.Lock()
	defer lr.mu.Unlock()
	v := verdict{delay: f.Delay}
	if f.Jitter > 0 {
		v.delay += time.Duration(lr.rng.Int64N(int64(f.Jitter) + 1))
	}
	if f.Drop > 0 && lr.rng.Float64() < f.Drop {
		if lr.rng.IntN(2) == 0 {
			v.err = fmt.Errorf("%w: request %s -> %s", errDropped, from, target.id)
		} else {
			v.dropResponse = true
		}
	}
	return v
}

func (c *Cluster) nodeLocked(id raft.ServerID) *Node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// faultTransport is the raft.Transport a node of the kit runs on: the
// node's InmemTransport, with every outgoing RPC first judged by the
// cluster (cut links, stopped nodes, drops, delays). Incoming RPCs are
// judged by their sender's faultTransport.
type faultTransport struct {
	c     *Cluster
	from  raft.ServerID
	inner *raft.InmemTransport
	// seed seeds every random choice of the node running on this
	// transport: raft takes it from RandomSeed.
	seed uint64
	// drift is the clock drift of the node running on this transport:
	// raft takes it from ClockDrift.
	drift float64
}

var (
	_ raft.Transport   = (*faultTransport)(nil)
	_ raft.WithPreVote = (*faultTransport)(nil)
	_ raft.WithClose   = (*faultTransport)(nil)
)

// send runs one RPC under the cluster's verdict.
func (f *faultTransport) send(target raft.ServerAddress, kind string, rpc func() error) error {
	v := f.c.judge(f.from, target, kind)
	if v.delay > 0 {
		time.Sleep(v.delay)
	}
	if v.err != nil {
		return v.err
	}
	if err := rpc(); err != nil {
		return err
	}
	if v.dropResponse {
		return fmt.Errorf("%w: response %s -> %s", errDropped, target, f.from)
	}
	return nil
}

// RandomSeed is the optional method through which raft seeds the node that
// runs on the transport, so that its timeouts are a function of the
// cluster's seed.
func (f *faultTransport) RandomSeed() uint64 { return f.seed }

// ClockDrift is the optional method through which raft makes the clock of
// the node that runs on the transport drift (Options.ClockDrift).
func (f *faultTransport) ClockDrift() float64 { return f.drift }

func (f *faultTransport) Consumer() <-chan raft.RPC                 { return f.inner.Consumer() }
func (f *faultTransport) LocalAddr() raft.ServerAddress             { return f.inner.LocalAddr() }
func (f *faultTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) { f.inner.SetHeartbeatHandler(cb) }
func (f *faultTransport) Close() error                              { return f.inner.Close() }

func (f *faultTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return f.inner.EncodePeer(id, addr)
}

func (f *faultTransport) DecodePeer(buf []byte) raft.ServerAddress { return f.inner.DecodePeer(buf) }

func (f *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return f.send(target, appendKind(args), func() error { return f.inner.AppendEntries(id, target, args, resp) })
}

func (f *faultTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return f.send(target, "vote", func() error { return f.inner.RequestVote(id, target, args, resp) })
}

func (f *faultTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return f.send(target, "prevote", func() error { return f.inner.RequestPreVote(id, target, args, resp) })
}

func (f *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return f.send(target, "snapshot", func() error { return f.inner.InstallSnapshot(id, target, args, resp, data) })
}

func (f *faultTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return f.send(target, "timeout-now", func() error { return f.inner.TimeoutNow(id, target, args, resp) })
}

// appendKind tells a leader's heartbeat (term and leader only, sent by its
// heartbeat goroutine) from the AppendEntries of its replication goroutine.
func appendKind(args *raft.AppendEntriesRequest) string {
	if len(args.Entries) == 0 && args.PrevLogEntry == 0 && args.PrevLogTerm == 0 && args.LeaderCommitIndex == 0 {
		return "heartbeat"
	}
	return "entries"
}

// AppendEntriesPipeline opens a pipeline whose sends are judged like single
// RPCs. A lost message breaks the pipeline (its send fails), as a broken
// connection would; answers are not dropped on their own.
func (f *faultTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if v := f.c.judge(f.from, target, "entries"); v.err != nil {
		return nil, v.err
	}
	p, err := f.inner.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &faultPipeline{t: f, target: target, inner: p}, nil
}

type faultPipeline struct {
	t      *faultTransport
	target raft.ServerAddress
	inner  raft.AppendPipeline
}

func (p *faultPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	v := p.t.c.judge(p.t.from, p.target, "entries")
	if v.delay > 0 {
		time.Sleep(v.delay)
	}
	if v.err != nil {
		return nil, v.err
	}
	if v.dropResponse {
		return nil, fmt.Errorf("%w: pipeline %s -> %s", errDropped, p.t.from, p.target)
	}
	return p.inner.AppendEntries(args, resp)
}

func (p *faultPipeline) Consumer() <-chan raft.AppendFuture { return p.inner.Consumer() }
func (p *faultPipeline) Close() error                       { return p.inner.Close() }
