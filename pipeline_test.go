//go:build go1.25

package raft

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// pipelineRecorder counts, per target, the AppendEntries with entries sent
// one at a time and through pipelines, and can turn the answer to the next
// pipelined request into a rejection.
type pipelineRecorder struct {
	*InmemTransport
	mu         sync.Mutex
	single     map[ServerAddress]int
	pipelined  map[ServerAddress]int
	opened     map[ServerAddress]int
	rejectNext map[ServerAddress]bool
	delay      map[ServerAddress]time.Duration
	// handlers makes its pipelines take Raft's answer handler
	// (answerHandlingPipeline), as NetworkTransport's do, instead of
	// handing answers over on Consumer.
	handlers bool
}

func newPipelineRecorder(inner *InmemTransport) *pipelineRecorder {
	return &pipelineRecorder{
		InmemTransport: inner,
		single:         map[ServerAddress]int{},
		pipelined:      map[ServerAddress]int{},
		opened:         map[ServerAddress]int{},
		rejectNext:     map[ServerAddress]bool{},
		delay:          map[ServerAddress]time.Duration{},
	}
}

func (p *pipelineRecorder) counts(target ServerAddress) (single, pipelined, opened int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.single[target], p.pipelined[target], p.opened[target]
}

// slowTo makes every answer from target take d longer.
func (p *pipelineRecorder) slowTo(target ServerAddress, d time.Duration) {
	p.mu.Lock()
	p.delay[target] = d
	p.mu.Unlock()
}

func (p *pipelineRecorder) delayTo(target ServerAddress) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay[target]
}

func (p *pipelineRecorder) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	if len(args.Entries) > 0 {
		p.mu.Lock()
		p.single[target]++
		p.mu.Unlock()
	}
	err := p.InmemTransport.AppendEntries(id, target, args, resp)
	time.Sleep(p.delayTo(target))
	return err
}

func (p *pipelineRecorder) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	inner, err := p.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.opened[target]++
	p.mu.Unlock()
	rp := &recordedPipeline{AppendPipeline: inner, rec: p, target: target,
		out: make(chan AppendFuture, 128), stop: make(chan struct{}), done: make(chan struct{})}
	go rp.forward()
	if p.handlers {
		return &handlingRecordedPipeline{rp}, nil
	}
	return rp, nil
}

// recordedPipeline passes futures through, delayed or turned into a
// rejection on request.
type recordedPipeline struct {
	AppendPipeline
	rec    *pipelineRecorder
	target ServerAddress
	out    chan AppendFuture
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	handle atomic.Pointer[func(AppendFuture)]
}

// handlingRecordedPipeline is a recordedPipeline that gives its answers to
// Raft's handler, on its forwarding goroutine.
type handlingRecordedPipeline struct{ *recordedPipeline }

func (hp *handlingRecordedPipeline) HandleAnswers(handle func(AppendFuture)) {
	hp.handle.Store(&handle)
}

func (rp *recordedPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	if len(args.Entries) > 0 {
		rp.rec.mu.Lock()
		rp.rec.pipelined[rp.target]++
		rp.rec.mu.Unlock()
	}
	return rp.AppendPipeline.AppendEntries(args, resp)
}

func (rp *recordedPipeline) Consumer() <-chan AppendFuture { return rp.out }

func (rp *recordedPipeline) forward() {
	defer close(rp.done)
	for {
		var f AppendFuture
		select {
		case f = <-rp.AppendPipeline.Consumer():
		case <-rp.stop:
			return
		}
		time.Sleep(rp.rec.delayTo(rp.target))
		rp.rec.mu.Lock()
		reject := rp.rec.rejectNext[rp.target] && len(f.Request().Entries) > 0
		if reject {
			rp.rec.rejectNext[rp.target] = false
		}
		rp.rec.mu.Unlock()
		if reject && f.Error() == nil {
			f.Response().Success = false
		}
		if handle := rp.handle.Load(); handle != nil {
			(*handle)(f)
			continue
		}
		select {
		case rp.out <- f:
		case <-rp.stop:
			return
		}
	}
}

func (rp *recordedPipeline) Close() error {
	err := rp.AppendPipeline.Close()
	rp.once.Do(func() { close(rp.stop) })
	<-rp.done
	return err
}

// In steady state entries go to followers through pipelines; a rejection
// sends the replicator back to one request at a time, and once the follower
// is in step again it pipelines again, losing nothing.
// Both ways of taking answers are run: from Consumer, and through the
// handler that NetworkTransport's pipelines take.
func TestPipelineFallsBackToSingleRequestsAfterARejectionAndResumes(t *testing.T) {
	for _, handlers := range []bool{false, true} {
		t.Run(fmt.Sprintf("handlers=%v", handlers), func(t *testing.T) {
			testPipelineFallsBackAndResumes(t, handlers)
		})
	}
}

func testPipelineFallsBackAndResumes(t *testing.T, handlers bool) {
	synctest.Test(t, func(t *testing.T) {
		recorders, wrap := wrapEach(func(inner *InmemTransport) *pipelineRecorder {
			rec := newPipelineRecorder(inner)
			rec.handlers = handlers
			return rec
		})
		c := newTestCluster(t, 3, clusterOptions{wrapTransport: wrap})
		defer c.close()
		l := settledLeader(c)
		rec := recorders[l.id]
		follower := c.others(l)[0]

		// The writes may commit with the other follower alone: wait until this one
		// has them too before reading what was sent to it.
		applyN(t, l.raft, "a", 50)
		c.waitApplied(50)
		_, pipelined, opened := rec.counts(follower.addr)
		require.Positive(t, pipelined, "steady-state entries should be pipelined")
		require.Equal(t, 1, opened)

		rec.mu.Lock()
		rec.rejectNext[follower.addr] = true
		rec.mu.Unlock()
		singleBefore, _, _ := rec.counts(follower.addr)
		applyN(t, l.raft, "b", 50)
		c.waitApplied(100)
		c.requireSameFSMs()
		// The follower may converge on requests pipelined before the
		// rejection was read, ahead of the replicator's fallback: wait for
		// it rather than read the counts at once.
		c.waitFor(time.Second, "single requests after the rejection, then a new pipeline", func() bool {
			single, _, opened := rec.counts(follower.addr)
			return single > singleBefore && opened >= 2
		})
		_, pipelinedAfter, openedAfter := rec.counts(follower.addr)
		require.Equal(t, 2, openedAfter, "once in step again, it opens one new pipeline")

		applyN(t, l.raft, "c", 20)
		c.waitApplied(120)
		_, pipelinedEnd, _ := rec.counts(follower.addr)
		require.Greater(t, pipelinedEnd, pipelinedAfter, "entries flow through the new pipeline")
		c.requireSameFSMs()
	})
}

// A slow follower holds back nobody: with every answer from it 50ms late,
// writes commit at the pace of the leader and the fast follower, and the
// slow one still catches up.
func TestSlowFollowerDoesNotSlowCommitsOnTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recorders, wrap := wrapEach(newPipelineRecorder)
		c := newTestCluster(t, 3, clusterOptions{
			// Keep the slow follower's lease contact within bounds.
			tweak: func(conf *Config) {
				conf.HeartbeatTimeout = 500 * time.Millisecond
				conf.ElectionTimeout = 500 * time.Millisecond
				conf.LeaderLeaseTimeout = 500 * time.Millisecond
			},
			wrapTransport: wrap,
		})
		defer c.close()
		l := settledLeader(c)
		slow := c.others(l)[0]
		recorders[l.id].slowTo(slow.addr, 50*time.Millisecond)

		start := time.Now()
		for i := range 100 {
			require.NoError(t, l.raft.Apply([]byte{byte(i)}, time.Second).Error())
		}
		elapsed := time.Since(start)
		// Waiting for the slow follower would take 100 × 50ms.
		require.Less(t, elapsed, 500*time.Millisecond, "100 sequential writes took %v", elapsed)
		c.waitApplied(100)
		c.requireSameFSMs()
	})
}

// The clusters the safety suites inject faults with run on the real
// InmemTransport paths: the leader replicates to every follower through a
// pipeline, and followers answer its heartbeats on the fast path
// (processHeartbeat), not the main loop.
func TestFaultInjectingClustersRunOnPipelinesAndTheHeartbeatFastPath(t *testing.T) {
	clusters := []struct {
		name  string
		start func(t *testing.T) *testCluster
	}{
		{"plain", func(t *testing.T) *testCluster { return newTestCluster(t, 3, clusterOptions{}) }},
		{"faulty", func(t *testing.T) *testCluster {
			c, _ := newFaultyCluster(t, 3, 5*time.Millisecond, nil)
			return c
		}},
		{"slow", func(t *testing.T) *testCluster {
			return newFaultClusterWithTransports(t, 3, clusterOptions{}).testCluster
		}},
		{"gated", func(t *testing.T) *testCluster {
			_, wrap := wrapEach(newGatedTransport)
			return newTestCluster(t, 3, clusterOptions{wrapTransport: wrap})
		}},
		{"snapshot", func(t *testing.T) *testCluster {
			return newTestCluster(t, 3, clusterOptions{wrapTransport: newSnapshotTransports().wrap})
		}},
	}
	for _, tc := range clusters {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := tc.start(t)
				defer c.close()
				leader := settledLeader(c)
				fastHeartbeats := map[ServerID]*atomic.Int64{}
				for _, node := range c.others(leader) {
					count := &atomic.Int64{}
					fastHeartbeats[node.id] = count
					handler := node.trans.heartbeatFn.Load()
					require.NotNil(t, handler, "%s: the node set no heartbeat handler", node.id)
					node.trans.SetHeartbeatHandler(func(rpc RPC) {
						count.Add(1)
						(*handler)(rpc)
					})
				}

				applyN(t, leader.raft, "x", 20)
				c.waitFor(time.Second, "a pipeline to each follower", func() bool {
					leader.trans.mu.RLock()
					defer leader.trans.mu.RUnlock()
					return len(leader.trans.pipelines) == len(c.others(leader))
				})
				time.Sleep(2 * leader.conf.HeartbeatTimeout)
				require.Equal(t, Leader, leader.raft.State())
				for id, count := range fastHeartbeats {
					require.Positive(t, count.Load(), "%s answered no heartbeat on the fast path", id)
				}
				c.waitApplied(20)
				c.requireSameFSMs()
			})
		})
	}
}
