//go:build go1.25

package raft

import (
	"sync"
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
func TestPipelineFallsBackToSingleRequestsAfterARejectionAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recorders, wrap := wrapEach(newPipelineRecorder)
		c := newTestCluster(t, 3, clusterOptions{wrapTransport: wrap})
		defer c.close()
		l := settledLeader(c)
		rec := recorders[l.id]
		follower := c.others(l)[0]

		applyN(t, l.raft, "a", 50)
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
		single, pipelinedAfter, openedAfter := rec.counts(follower.addr)
		require.Greater(t, single, singleBefore, "after a rejection the replicator sends single requests")
		require.Equal(t, 2, openedAfter, "once in step again, it opens a new pipeline")

		applyN(t, l.raft, "c", 20)
		_, pipelinedEnd, _ := rec.counts(follower.addr)
		require.Greater(t, pipelinedEnd, pipelinedAfter, "entries flow through the new pipeline")
		c.waitApplied(120)
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
