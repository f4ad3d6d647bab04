package rafttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/quorumkit/raft"
)

// KVOp names an operation of the key-value store.
type KVOp uint8

// The operations of the key-value store.
const (
	KVGet    KVOp = iota // read a key ("" when missing)
	KVPut                // set a key
	KVAppend             // append to a key's value
	KVCAS                // set a key if it holds Expected
)

func (op KVOp) String() string {
	switch op {
	case KVGet:
		return "get"
	case KVPut:
		return "put"
	case KVAppend:
		return "append"
	case KVCAS:
		return "cas"
	}
	return fmt.Sprintf("KVOp(%d)", uint8(op))
}

// KVInput is one key-value command; it is also the input of the KV model.
type KVInput struct {
	Op       KVOp
	Key      string
	Value    string `json:",omitempty"`
	Expected string `json:",omitempty"`
}

// KVOutput is the result of a command: the value read by a get, and for a
// cas whether it swapped.
type KVOutput struct {
	Value string
	OK    bool
}

// EncodeKV returns the log command for in.
func EncodeKV(in KVInput) []byte {
	b, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("rafttest: encode %+v: %v", in, err)) // cannot happen: plain strings and ints
	}
	return b
}

// KV is a replicated key-value FSM: the ready-made state machine of the kit.
// Apply returns a KVOutput, or an error for a malformed command. It also
// checks what Raft promises an FSM: commands arrive once each, in strictly
// increasing index order; Err reports the first breach.
//
// A KV is safe for concurrent use, so tests may read it (Get, Snapshot)
// while Raft applies to it.
type KV struct {
	mu        sync.Mutex
	data      map[string]string
	lastIndex uint64 // index of the last command applied
	err       error  // first ordering violation seen
	// onApply, when set, is told of every command before it is applied
	// (the cluster's ledger of applied entries).
	onApply func(l *raft.Log)
}

// NewKV returns an empty KV.
func NewKV() *KV { return &KV{data: map[string]string{}} }

// Apply executes one command.
func (k *KV) Apply(l *raft.Log) interface{} {
	var in KVInput
	if err := json.Unmarshal(l.Data, &in); err != nil {
		return fmt.Errorf("rafttest: kv: malformed command at index %d: %w", l.Index, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.onApply != nil {
		k.onApply(l)
	}
	if l.Index <= k.lastIndex && k.err == nil {
		k.err = fmt.Errorf("rafttest: kv: command at index %d applied after index %d", l.Index, k.lastIndex)
	}
	k.lastIndex = l.Index
	switch in.Op {
	case KVGet:
		return KVOutput{Value: k.data[in.Key], OK: true}
	case KVPut:
		k.data[in.Key] = in.Value
	case KVAppend:
		k.data[in.Key] += in.Value
	case KVCAS:
		if k.data[in.Key] != in.Expected {
			return KVOutput{Value: k.data[in.Key]}
		}
		k.data[in.Key] = in.Value
	default:
		return fmt.Errorf("rafttest: kv: unknown operation %v at index %d", in.Op, l.Index)
	}
	return KVOutput{OK: true}
}

// Get reads a key from this replica's state, without going through Raft.
func (k *KV) Get(key string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.data[key]
}

// Err returns the first breach of apply order seen, or nil.
func (k *KV) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// kvState is the snapshot encoding: JSON, whose maps have sorted keys, so
// equal states give equal bytes.
type kvState struct {
	Data      map[string]string
	LastIndex uint64
}

// Snapshot captures the state.
func (k *KV) Snapshot() (raft.FSMSnapshot, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	b, err := json.Marshal(kvState{Data: k.data, LastIndex: k.lastIndex})
	if err != nil {
		return nil, fmt.Errorf("rafttest: kv: snapshot: %w", err)
	}
	return kvSnapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (k *KV) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st kvState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("rafttest: kv: restore: %w", err)
	}
	if st.Data == nil {
		st.Data = map[string]string{}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.data, k.lastIndex = st.Data, st.LastIndex
	return nil
}

type kvSnapshot []byte

func (s kvSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (kvSnapshot) Release() {}

// KVModel is the porcupine model of KV, partitioned by key. Outputs are
// KVOutput or Unknown.
func KVModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			for _, op := range history {
				key := op.Input.(KVInput).Key
				byKey[key] = append(byKey[key], op)
			}
			keys := slices.Sorted(maps.Keys(byKey))
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, key := range keys {
				out = append(out, byKey[key])
			}
			return out
		},
		// The state of one partition is the value of its key.
		Init: func() interface{} { return "" },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			value, in := state.(string), input.(KVInput)
			out, known := output.(KVOutput)
			switch in.Op {
			case KVGet:
				return !known || out.Value == value, value
			case KVPut:
				return true, in.Value
			case KVAppend:
				return true, value + in.Value
			case KVCAS:
				swapped := value == in.Expected
				if known && out.OK != swapped {
					return false, value
				}
				if swapped {
					return true, in.Value
				}
				return true, value
			}
			return false, value
		},
		DescribeOperation: func(input, output interface{}) string {
			in := input.(KVInput)
			res := fmt.Sprint(output)
			if out, ok := output.(KVOutput); ok {
				switch in.Op {
				case KVGet:
					res = fmt.Sprintf("%q", out.Value)
				case KVCAS:
					res = fmt.Sprint(out.OK)
				default:
					res = "ok"
				}
			}
			switch in.Op {
			case KVGet:
				return fmt.Sprintf("get(%q) -> %s", in.Key, res)
			case KVCAS:
				return fmt.Sprintf("cas(%q, %q, %q) -> %s", in.Key, in.Expected, in.Value, res)
			default:
				return fmt.Sprintf("%v(%q, %q) -> %s", in.Op, in.Key, in.Value, res)
			}
		},
		DescribeState: func(state interface{}) string { return fmt.Sprintf("%q", state) },
		DescribeOperationMetadata: func(info interface{}) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
}

// ReadMode selects how a KVClient performs a get.
type ReadMode int

const (
	// ReadLog sends a get through the log as a command, like a write: one
	// log entry per read, and the reference the other modes are checked
	// against.
	ReadLog ReadMode = iota
	// ReadIndex asks the leader for a read index ((*raft.Raft).ReadIndex:
	// leadership confirmed by a heartbeat round, FSM applied up to the
	// index), then reads the leader's own KV. No log entry.
	ReadIndex
	// ReadLease reads as ReadIndex does, from nodes that run with
	// Config.LeaseReads: a leader whose lease is valid skips the heartbeat
	// round. Set in Options, it turns lease reads on for the nodes; set on
	// one KVClient only, it reads exactly as ReadIndex, since the nodes
	// decide whether they use their lease.
	ReadLease
)

func (m ReadMode) String() string {
	switch m {
	case ReadLog:
		return "log"
	case ReadIndex:
		return "readindex"
	case ReadLease:
		return "lease"
	}
	return fmt.Sprintf("ReadMode(%d)", int(m))
}

// KVClient is one sequential client of a KV cluster that records its
// operations in a History. Use one per goroutine.
//
// Writes are recorded by Client.Do: one that may have entered the log
// without the client learning its outcome is Unknown. Gets are recorded by
// Client.Read: only when they succeed, since a read has no effect.
type KVClient struct {
	cluster *Cluster
	client  *Client
	// Timeout bounds each operation, leader search and retries included.
	Timeout time.Duration
	// ReadMode is how gets are served; NewKVClient copies the cluster's
	// Options.ReadMode.
	ReadMode ReadMode
	// ReadFrom, when set, sends every get to that node, whether it leads
	// or not, instead of following the leader: a test can read from a
	// deposed leader cut off from the majority. A node that does not lead
	// refuses (raft.ErrNotLeader), and the get fails at the timeout.
	ReadFrom raft.ServerID
}

// NewKVClient returns a client of c recording into h, with a one-second
// timeout per operation and the cluster's ReadMode.
func (c *Cluster) NewKVClient(h *History) *KVClient {
	return &KVClient{cluster: c, client: h.NewClient(), Timeout: time.Second, ReadMode: c.opts.ReadMode}
}

// Do runs one command and records it.
func (k *KVClient) Do(in KVInput) (KVOutput, error) {
	var out any
	var err error
	if in.Op == KVGet {
		out, err = k.client.Read(in, func() (any, error) { return k.read(in) })
	} else {
		out, err = k.client.Do(in, func() (any, error) { return k.apply(in) })
	}
	o, _ := out.(KVOutput)
	return o, err
}

// Get reads key.
func (k *KVClient) Get(key string) (string, error) {
	out, err := k.Do(KVInput{Op: KVGet, Key: key})
	return out.Value, err
}

// Put sets key to value.
func (k *KVClient) Put(key, value string) error {
	_, err := k.Do(KVInput{Op: KVPut, Key: key, Value: value})
	return err
}

// Append appends value to key.
func (k *KVClient) Append(key, value string) error {
	_, err := k.Do(KVInput{Op: KVAppend, Key: key, Value: value})
	return err
}

// CAS sets key to value if it holds expected, and reports whether it did.
func (k *KVClient) CAS(key, expected, value string) (bool, error) {
	out, err := k.Do(KVInput{Op: KVCAS, Key: key, Expected: expected, Value: value})
	return out.OK, err
}

func (k *KVClient) apply(in KVInput) (any, error) {
	f, err := k.cluster.Apply(EncodeKV(in), k.Timeout)
	if err != nil {
		return nil, err
	}
	return kvResponse(f.Response())
}

// kvResponse turns what KV.Apply returned into an output or an error.
func kvResponse(resp any) (any, error) {
	switch resp := resp.(type) {
	case KVOutput:
		return resp, nil
	case error:
		return nil, resp
	default:
		return nil, fmt.Errorf("rafttest: kv: unexpected response %T", resp)
	}
}

// read performs a linearizable get in the client's ReadMode. Unlike a
// write, a read may be tried again after any error (another leader,
// another node, after lost leadership or a timeout of one attempt): it has
// no effect, and the history records it only when one attempt succeeds.
func (k *KVClient) read(in KVInput) (any, error) {
	if k.ReadMode == ReadLog && k.ReadFrom == "" {
		return k.apply(in)
	}
	deadline := time.Now().Add(k.Timeout)
	for {
		out, err := k.readOnce(in, deadline)
		if err == nil || errors.Is(err, ErrClosed) {
			return out, err
		}
		time.Sleep(pollInterval)
		if !time.Now().Before(deadline) {
			// The last attempt's own error says more than a bare timeout.
			return nil, err
		}
	}
}

// readOnce makes one attempt on the leader, or on ReadFrom.
func (k *KVClient) readOnce(in KVInput, deadline time.Time) (any, error) {
	c := k.cluster
	if c.isClosed() {
		return nil, ErrClosed
	}
	var n *Node
	if k.ReadFrom == "" {
		var err error
		if n, err = c.Leader(time.Until(deadline)); err != nil {
			return nil, err
		}
	} else if n = c.Node(k.ReadFrom); n == nil {
		return nil, fmt.Errorf("rafttest: no node %q", k.ReadFrom)
	}
	r, fsm := n.running()
	if r == nil {
		return nil, fmt.Errorf("rafttest: read on %s: %w", n.id, raft.ErrRaftShutdown)
	}
	remaining := time.Until(deadline)
	if remaining <= 0 {
		return nil, ErrTimeout
	}
	if k.ReadMode == ReadLog {
		f := r.Apply(EncodeKV(in), remaining)
		if err := c.await(f, deadline); err != nil {
			return nil, err
		}
		return kvResponse(f.Response())
	}
	kv, ok := fsm.(*KV)
	if !ok {
		return nil, fmt.Errorf("rafttest: reads through ReadIndex need the KV FSM; %s runs %T", n.id, fsm)
	}
	f := r.ReadIndex(remaining)
	if err := c.await(f, deadline); err != nil {
		return nil, err
	}
	// ReadIndex promises the FSM has applied the read index when it
	// succeeds; the state read below must be at least that new.
	if applied := r.AppliedIndex(); applied < f.Index() {
		c.t.Errorf("rafttest: ReadIndex on %s succeeded with read index %d but applied index %d", n.id, f.Index(), applied)
		return nil, fmt.Errorf("rafttest: read index %d not applied on %s (applied %d)", f.Index(), n.id, applied)
	}
	return KVOutput{Value: kv.Get(in.Key), OK: true}, nil
}
