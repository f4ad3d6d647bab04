//go:build go1.25

package rafttest_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// counter is an application's own FSM: a replicated counter. A command is
// a signed amount to add (0 reads); Apply returns the new total.
type counter struct {
	mu    sync.Mutex
	total int64
}

func (c *counter) Apply(l *raft.Log) interface{} {
	delta, n := binary.Varint(l.Data)
	if n <= 0 {
		return errors.New("counter: malformed command")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += delta
	return c.total
}

func (c *counter) Snapshot() (raft.FSMSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counterSnapshot(c.total), nil
}

func (c *counter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	total, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("counter: restore: %w", err)
	}
	c.mu.Lock()
	c.total = total
	c.mu.Unlock()
	return nil
}

type counterSnapshot int64

func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write([]byte(strconv.FormatInt(int64(s), 10))); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnapshot) Release() {}

// counterModel is the counter's sequential specification for porcupine:
// the state is the total, an operation adds its input and returns the new
// total. An operation whose outcome is unknown still adds.
var counterModel = porcupine.Model{
	Init: func() interface{} { return int64(0) },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		total := state.(int64) + input.(int64)
		if output == rafttest.Unknown {
			return true, total
		}
		return output.(int64) == total, total
	},
}

// add submits one counter command through the cluster, recorded by client.
func add(c *rafttest.Cluster, client *rafttest.Client, delta int64) error {
	_, err := client.Do(delta, func() (any, error) {
		f, err := c.Apply(binary.AppendVarint(nil, delta), time.Second)
		if err != nil {
			return nil, err
		}
		return f.Response(), nil
	})
	return err
}

// TestCounterSurvivesAPartition is the kind of test an application writes
// with the kit: its own FSM on a three-node cluster, concurrent clients,
// a fault, and checks that the history is linearizable and that every
// replica converges. It runs in a synctest bubble, so the election after
// the partition takes no wall-clock time.
func TestCounterSurvivesAPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := rafttest.NewCluster(t, rafttest.Options{
			Voters: 3,
			FSM:    func(raft.ServerID) raft.FSM { return &counter{} },
		})
		h := rafttest.NewHistory()
		var clients sync.WaitGroup
		for range 3 {
			client := h.NewClient()
			clients.Go(func() {
				for i := range 20 {
					_ = add(c, client, int64(i%3)) // errors are in the history
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		time.Sleep(30 * time.Millisecond)
		leader := c.WaitForLeader()
		c.Isolate(leader.ID()) // clients follow the new leader
		time.Sleep(200 * time.Millisecond)
		c.Heal()
		clients.Wait()

		ok, _ := h.Summary()
		require.Positive(t, ok)
		c.CheckConsistent()
		h.CheckLinearizable(t, counterModel, time.Minute)
	})
}

// ExampleNewCluster shows the skeleton of a test of your own FSM;
// TestCounterSurvivesAPartition in this file is the complete, running
// version.
func ExampleNewCluster() {
	testCounter := func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c := rafttest.NewCluster(t, rafttest.Options{
				Voters: 3,
				FSM:    func(raft.ServerID) raft.FSM { return &counter{} },
			})
			f, err := c.Apply(binary.AppendVarint(nil, 5), time.Second)
			require.NoError(t, err)
			require.Equal(t, int64(5), f.Response())
			c.WaitForApplied(f.Index())
			c.CheckConsistent() // every replica's snapshot bytes are equal
		})
	}
	_ = testCounter // run it from a Test function
}
