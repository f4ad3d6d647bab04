//go:build go1.25

package raft

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// closeCountingTransport hands out pipelines that count their Close calls,
// as a transport whose Close is not idempotent would need, and that fail
// every failEvery-th answer.
type closeCountingTransport struct {
	*InmemTransport
	failEvery int
	// failed counts the answers failed on purpose.
	failed    atomic.Int32
	mu        sync.Mutex
	pipelines []*closeCountingPipeline
}

type closeCountingPipeline struct {
	AppendPipeline
	closes    atomic.Int32
	failed    *atomic.Int32
	consumer  chan AppendFuture
	closeCh   chan struct{}
	closeOnce sync.Once
}

// failedFuture is an answer that failed in the transport.
type failedFuture struct{ AppendFuture }

var errAnswerLost = errors.New("answer lost by the test transport")

func (f failedFuture) Error() error { return errAnswerLost }

func (p *closeCountingPipeline) Consumer() <-chan AppendFuture { return p.consumer }

func (p *closeCountingPipeline) Close() error {
	p.closes.Add(1)
	p.closeOnce.Do(func() { close(p.closeCh) })
	return p.AppendPipeline.Close()
}

// forward passes the inner pipeline's answers on, failing every
// failEvery-th, until Close.
func (p *closeCountingPipeline) forward(failEvery int) {
	for n := 1; ; n++ {
		var future AppendFuture
		select {
		case future = <-p.AppendPipeline.Consumer():
		case <-p.closeCh:
			return
		}
		if n%failEvery == 0 {
			future = failedFuture{future}
			p.failed.Add(1)
		}
		select {
		case p.consumer <- future:
		case <-p.closeCh:
			return
		}
	}
}

func (t *closeCountingTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	inner, err := t.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	p := &closeCountingPipeline{AppendPipeline: inner, consumer: make(chan AppendFuture), closeCh: make(chan struct{}), failed: &t.failed}
	go p.forward(t.failEvery)
	t.mu.Lock()
	t.pipelines = append(t.pipelines, p)
	t.mu.Unlock()
	return p, nil
}

func (t *closeCountingTransport) closeCounts() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	counts := make([]int32, len(t.pipelines))
	for i, p := range t.pipelines {
		counts[i] = p.closes.Load()
	}
	return counts
}

// TestEveryPipelineIsClosedExactlyOnce: the core closes each AppendPipeline
// once, whether the sender or the answer reader ends it (a failed answer
// used to close it twice, which panics a transport whose Close is not
// idempotent). The forwarding goroutine of a pipeline that is never closed
// would also fail the bubble.
func TestEveryPipelineIsClosedExactlyOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		transports, wrap := wrapEach(func(inner *InmemTransport) *closeCountingTransport {
			return &closeCountingTransport{InmemTransport: inner, failEvery: 7}
		})
		c := newTestCluster(t, 3, clusterOptions{wrapTransport: wrap})
		leader := c.leader()
		// One entry at a time, so every entry gets answers of its own,
		// until several answers have failed.
		for i := 0; transports[leader.id].failed.Load() < 3; i++ {
			require.Less(t, i, 1000, "no answer failed")
			require.NoError(t, leader.raft.Apply([]byte("a"), 0).Error())
		}
		c.close()

		counts := transports[leader.id].closeCounts()
		require.GreaterOrEqual(t, len(counts), 3, "each failed answer ends a pipeline and a new one opens")
		for i, n := range counts {
			require.Equal(t, int32(1), n, "pipeline %d was closed %d times", i, n)
		}
	})
}
