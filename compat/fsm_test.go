package compat

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	hraft "github.com/hashicorp/raft"
	ours "github.com/quorumkit/raft"
)

// kvState is the state machine behind both libraries' FSM adapters: a
// key-value map fed by "key=value" commands, plus every command in the
// order it was applied, so that two replicas can be compared entry by
// entry rather than only by their final map.
type kvState struct {
	mu       sync.Mutex
	applied  []string
	kv       map[string]string
	restores int
}

func newKVState() *kvState { return &kvState{kv: map[string]string{}} }

// kvSnapshot is the snapshot format, shared by both adapters so that a
// snapshot written under one library restores under the other.
type kvSnapshot struct {
	Applied []string
	KV      map[string]string
}

// apply runs one command and returns how many commands have been applied.
func (s *kvState) apply(data []byte) interface{} {
	key, value, ok := strings.Cut(string(data), "=")
	if !ok {
		return fmt.Errorf("kv: malformed command %q", data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv[key] = value
	s.applied = append(s.applied, string(data))
	return len(s.applied)
}

func (s *kvState) snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(kvSnapshot{Applied: s.applied, KV: s.kv})
}

func (s *kvState) restore(rc io.ReadCloser) error {
	defer rc.Close()
	var snap kvSnapshot
	if err := json.NewDecoder(rc).Decode(&snap); err != nil {
		return fmt.Errorf("kv: restore: %w", err)
	}
	if snap.KV == nil {
		snap.KV = map[string]string{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied, s.kv = snap.Applied, snap.KV
	s.restores++
	return nil
}

// commands returns a copy of the applied commands, in order.
func (s *kvState) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

func (s *kvState) contents() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.kv)
}

// restoreCount is how many snapshots were restored into this state.
func (s *kvState) restoreCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restores
}

// persist writes a snapshot to a sink of either library.
func persist(data []byte, sink interface {
	io.WriteCloser
	Cancel() error
}) error {
	if _, err := sink.Write(data); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// oursFSM adapts kvState to quorumkit/raft.
type oursFSM struct{ *kvState }

func (f oursFSM) Apply(l *ours.Log) interface{} { return f.apply(l.Data) }

func (f oursFSM) Snapshot() (ours.FSMSnapshot, error) {
	data, err := f.snapshot()
	return oursSnapshot(data), err
}

func (f oursFSM) Restore(rc io.ReadCloser) error { return f.restore(rc) }

type oursSnapshot []byte

func (s oursSnapshot) Persist(sink ours.SnapshotSink) error { return persist(s, sink) }
func (oursSnapshot) Release()                               {}

// theirsFSM adapts kvState to hashicorp/raft.
type theirsFSM struct{ *kvState }

func (f theirsFSM) Apply(l *hraft.Log) interface{} { return f.apply(l.Data) }

func (f theirsFSM) Snapshot() (hraft.FSMSnapshot, error) {
	data, err := f.snapshot()
	return theirsSnapshot(data), err
}

func (f theirsFSM) Restore(rc io.ReadCloser) error { return f.restore(rc) }

type theirsSnapshot []byte

func (s theirsSnapshot) Persist(sink hraft.SnapshotSink) error { return persist(s, sink) }
func (theirsSnapshot) Release()                                {}
