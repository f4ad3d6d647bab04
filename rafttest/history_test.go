//go:build go1.25

package rafttest

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// recordingTB stands in for a test to capture what a check reports.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestNotAppliedSeparatesCertainFromUnknownOutcomes(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{raft.ErrNotLeader, true},
		{raft.ErrLeadershipTransferInProgress, true},
		{raft.ErrEnqueueTimeout, true},
		{ErrNoLeader, true},
		{fmt.Errorf("wrapped: %w", raft.ErrNotLeader), true},
		{raft.ErrLeadershipLost, false},
		{raft.ErrRaftShutdown, false},
		{raft.ErrAbortedByRestore, false},
		{ErrTimeout, false},
		{errors.New("anything else"), false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, NotApplied(tc.err), "NotApplied(%v)", tc.err)
	}
}

func TestClientDoRecordsByOutcome(t *testing.T) {
	h := NewHistory()
	cl := h.NewClient()
	put := KVInput{Op: KVPut, Key: "k", Value: "v"}
	_, err := cl.Do(put, func() (any, error) { return KVOutput{OK: true}, nil })
	require.NoError(t, err)
	_, err = cl.Do(put, func() (any, error) { return nil, raft.ErrNotLeader })
	require.ErrorIs(t, err, raft.ErrNotLeader)
	_, err = cl.Do(put, func() (any, error) { return nil, raft.ErrLeadershipLost })
	require.ErrorIs(t, err, raft.ErrLeadershipLost)

	ops := h.Operations()
	require.Len(t, ops, 2, "the operation that certainly did not happen is left out")
	require.Equal(t, KVOutput{OK: true}, ops[0].Output)
	require.Less(t, ops[0].Call, ops[0].Return)
	require.Equal(t, Unknown, ops[1].Output)
	require.Equal(t, int64(1<<63-1), ops[1].Return, "an unknown outcome stays open to the end of time")
	require.Greater(t, ops[1].Call, ops[0].Return)
	require.NotEqual(t, ops[0].ClientId, cl.id, "after an unknown outcome the client continues under a new id")
	ok, unknown := h.Summary()
	require.Equal(t, [2]int{1, 1}, [2]int{ok, unknown})
}

// op builds a completed KV operation for model tests.
func op(client int, call, ret int64, in KVInput, out any) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func TestKVModel(t *testing.T) {
	get := func(key string) KVInput { return KVInput{Op: KVGet, Key: key} }
	putKV := func(key, v string) KVInput { return KVInput{Op: KVPut, Key: key, Value: v} }
	appendKV := func(key, v string) KVInput { return KVInput{Op: KVAppend, Key: key, Value: v} }
	cas := func(key, expected, v string) KVInput {
		return KVInput{Op: KVCAS, Key: key, Expected: expected, Value: v}
	}
	ok := KVOutput{OK: true}
	value := func(v string) KVOutput { return KVOutput{Value: v, OK: true} }
	const forever = 1<<63 - 1
	cases := []struct {
		name         string
		history      []porcupine.Operation
		linearizable bool
	}{
		{"read of a missing key is empty", []porcupine.Operation{op(0, 1, 2, get("x"), value(""))}, true},
		{"read sees the completed write", []porcupine.Operation{
			op(0, 1, 2, putKV("x", "1"), ok), op(1, 3, 4, get("x"), value("1"))}, true},
		{"stale read after a completed write", []porcupine.Operation{
			op(0, 1, 2, putKV("x", "1"), ok), op(0, 3, 4, putKV("x", "2"), ok), op(1, 5, 6, get("x"), value("1"))}, false},
		{"concurrent write may be seen or not", []porcupine.Operation{
			op(0, 1, 10, putKV("x", "1"), ok), op(1, 2, 3, get("x"), value("")), op(2, 4, 5, get("x"), value("1"))}, true},
		{"reads may not go back in time", []porcupine.Operation{
			op(0, 1, 10, putKV("x", "1"), ok), op(1, 2, 3, get("x"), value("1")), op(2, 4, 5, get("x"), value(""))}, false},
		{"appends accumulate in order", []porcupine.Operation{
			op(0, 1, 2, appendKV("x", "a"), ok), op(0, 3, 4, appendKV("x", "b"), ok), op(1, 5, 6, get("x"), value("ab"))}, true},
		{"cas succeeds only on the expected value", []porcupine.Operation{
			op(0, 1, 2, putKV("x", "1"), ok), op(0, 3, 4, cas("x", "0", "2"), KVOutput{Value: "1"}),
			op(0, 5, 6, cas("x", "1", "3"), ok), op(1, 7, 8, get("x"), value("3"))}, true},
		{"cas reported swapped on the wrong value", []porcupine.Operation{
			op(0, 1, 2, putKV("x", "1"), ok), op(0, 3, 4, cas("x", "0", "2"), ok)}, false},
		{"unknown write may have happened", []porcupine.Operation{
			op(0, 1, forever, putKV("x", "1"), Unknown), op(1, 3, 4, get("x"), value("1"))}, true},
		{"unknown write may not have happened", []porcupine.Operation{
			op(0, 1, forever, putKV("x", "1"), Unknown), op(1, 3, 4, get("x"), value(""))}, true},
		{"unknown write cannot happen before its call", []porcupine.Operation{
			op(1, 1, 2, get("x"), value("1")), op(0, 3, forever, putKV("x", "1"), Unknown)}, false},
		{"keys are independent", []porcupine.Operation{
			op(0, 1, 2, putKV("x", "1"), ok), op(1, 3, 4, get("y"), value("")), op(1, 5, 6, get("x"), value("1"))}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.linearizable, porcupine.CheckOperations(KVModel(), tc.history))
		})
	}
}

func TestCheckLinearizableWritesTheVisualizationOfAViolation(t *testing.T) {
	h := NewHistory()
	cl := h.NewClient()
	_, _ = cl.Do(KVInput{Op: KVPut, Key: "x", Value: "1"}, func() (any, error) { return KVOutput{OK: true}, nil })
	_, _ = cl.Do(KVInput{Op: KVGet, Key: "x"}, func() (any, error) { return KVOutput{Value: "stale", OK: true}, nil })
	rec := &recordingTB{TB: t}
	h.CheckLinearizable(rec, KVModel(), time.Minute)
	require.Len(t, rec.errors, 1)
	path := regexp.MustCompile(`visualization: (\S+)`).FindStringSubmatch(rec.errors[0])
	require.Len(t, path, 2, "the failure names the visualization: %s", rec.errors[0])
	info, err := os.Stat(path[1])
	require.NoError(t, err)
	require.Positive(t, info.Size())
	require.NoError(t, os.RemoveAll(path[1][:len(path[1])-len("/linearizability.html")]))
}

// TestCheckerCatchesStaleReadsFromACutOffReplica makes sure the whole
// pipeline (cluster, history, model) can fail: reads served from a
// replica's local state while it is cut off are not linearizable, and the
// check must say so.
func TestCheckerCatchesStaleReadsFromACutOffReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, Options{Voters: 3})
		h := NewHistory()
		writer := c.NewKVClient(h)
		require.NoError(t, writer.Put("x", "1"))
		c.CheckConsistent()
		stale := c.Followers()[0]
		c.Isolate(stale.ID())
		require.NoError(t, writer.Put("x", "2"))

		reader := h.NewClient()
		_, err := reader.Do(KVInput{Op: KVGet, Key: "x"}, func() (any, error) {
			return KVOutput{Value: stale.FSM().(*KV).Get("x"), OK: true}, nil
		})
		require.NoError(t, err)

		rec := &recordingTB{TB: t}
		h.CheckLinearizable(rec, KVModel(), time.Minute)
		require.Len(t, rec.errors, 1, "a read of %q after the write of %q completed", "1", "2")
		require.Contains(t, rec.errors[0], "not linearizable")
		if m := regexp.MustCompile(`visualization: (\S+)/linearizability.html`).FindStringSubmatch(rec.errors[0]); m != nil {
			require.NoError(t, os.RemoveAll(m[1]))
		}
	})
}
