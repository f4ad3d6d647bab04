package rafttest

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quorumkit/raft"
)

// Unknown is the output recorded for an operation whose outcome the client
// never learned: it timed out, or the node lost leadership or shut down
// after the command may have entered the log. The operation may have taken
// effect at any moment after its call, or never; the checker lets it
// return at the end of time. A model's Step must accept Unknown as output:
// apply the operation's effect to the state and report true.
var Unknown = unknownOutput{}

type unknownOutput struct{}

func (unknownOutput) String() string { return "unknown" }

// ErrNoLeader is returned when no leader could be found within the timeout.
// Nothing was submitted, so the operation certainly did not happen.
var ErrNoLeader = errors.New("rafttest: no leader within the timeout")

// ErrTimeout is returned by Cluster.Apply when a submitted command did not
// resolve within the timeout; its outcome is unknown.
var ErrTimeout = errors.New("rafttest: command submitted but not resolved within the timeout")

// NotApplied reports whether err means the operation certainly did not
// take effect, so that it may be retried or left out of a history. These
// are the errors raft returns only when a command never entered the log
// (see the API guarantees), and ErrNoLeader. Any other error, including
// raft.ErrLeadershipLost, raft.ErrRaftShutdown and ErrTimeout, leaves the
// outcome unknown.
func NotApplied(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) ||
		errors.Is(err, raft.ErrEnqueueTimeout) ||
		errors.Is(err, ErrNoLeader)
}

// History records the operations of concurrent clients for a
// linearizability check with porcupine. Timestamps come from one logical
// clock, so the real-time order of any two operations is exact even when
// the clock of a testing/synctest bubble shows them at the same instant.
// A History is safe for concurrent use; each Client is used by one
// goroutine at a time.
type History struct {
	mu      sync.Mutex
	clock   int64
	clients int
	ops     []porcupine.Operation
}

// NewHistory returns an empty history.
func NewHistory() *History { return &History{} }

// Client is one sequential client of a History: it has at most one
// operation outstanding.
type Client struct {
	h  *History
	id int
}

// NewClient returns a client with a fresh id.
func (h *History) NewClient() *Client {
	return &Client{h: h, id: h.newClientID()}
}

func (h *History) newClientID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients++
	return h.clients - 1
}

func (h *History) tick() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clock++
	return h.clock
}

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// Do runs call as one operation with the given input and records it:
//   - err == nil: recorded with call's output;
//   - NotApplied(err): not recorded, it had no effect and returned nothing;
//   - any other error: recorded with output Unknown and no return time.
//
// After an unknown outcome the client continues under a fresh id, as a new
// process would, because its old operation stays open forever.
func (cl *Client) Do(input any, call func() (output any, err error)) (any, error) {
	start := cl.h.tick()
	output, err := call()
	switch {
	case err == nil:
		cl.h.add(porcupine.Operation{ClientId: cl.id, Input: input, Call: start, Output: output, Return: cl.h.tick()})
	case NotApplied(err):
	default:
		cl.h.add(porcupine.Operation{ClientId: cl.id, Input: input, Call: start, Output: Unknown, Return: math.MaxInt64,
			Metadata: err.Error()})
		cl.id = cl.h.newClientID()
	}
	return output, err
}

// Read runs call as an operation that cannot change the state, such as a
// get, and records it only when it succeeds. Whatever error a read fails
// with, it changed nothing and returned nothing, so leaving it out of the
// history loses no information; recording it as Unknown would only leave
// an open operation for the checker to place. The client keeps its id.
func (cl *Client) Read(input any, call func() (output any, err error)) (any, error) {
	start := cl.h.tick()
	output, err := call()
	if err == nil {
		cl.h.add(porcupine.Operation{ClientId: cl.id, Input: input, Call: start, Output: output, Return: cl.h.tick()})
	}
	return output, err
}

// Operations returns a copy of the recorded operations.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Summary counts the recorded operations by outcome.
func (h *History) Summary() (ok, unknown int) {
	for _, op := range h.Operations() {
		if op.Output == Unknown {
			unknown++
		} else {
			ok++
		}
	}
	return ok, unknown
}

// CheckLinearizable fails t unless the history is linearizable under model.
// timeout bounds the search (0 means none); a search that does not finish
// fails too, since it proved nothing. On a violation the porcupine
// visualization is written to a directory under os.TempDir() that outlives
// the test (t.TempDir() is removed when the test ends) and its path is
// printed.
func (h *History) CheckLinearizable(t testing.TB, model porcupine.Model, timeout time.Duration) {
	t.Helper()
	ops := h.Operations()
	result, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	switch result {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		t.Errorf("rafttest: linearizability check of %d operations did not finish within %v", len(ops), timeout)
		return
	}
	path, err := writeVisualization(t.Name(), model, info)
	if err != nil {
		t.Errorf("rafttest: history of %d operations is not linearizable (writing the visualization failed: %v)", len(ops), err)
		return
	}
	t.Errorf("rafttest: history of %d operations is not linearizable; visualization: %s", len(ops), path)
}

func writeVisualization(testName string, model porcupine.Model, info porcupine.LinearizationInfo) (string, error) {
	name := strings.NewReplacer("/", "_", " ", "_", "=", "-").Replace(testName)
	dir, err := os.MkdirTemp("", "rafttest-"+name+"-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return "", fmt.Errorf("visualize: %w", err)
	}
	return path, nil
}
