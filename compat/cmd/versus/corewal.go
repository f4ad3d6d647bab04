package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	hraft "github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/quorumkit/raft"
	"github.com/quorumkit/raft/internal/benchload"
)

// openRaftWAL is the OpenDurable of the "core" build: our core on
// hashicorp's raft-wal behind a LogCache of theirLogCache entries, the way
// Consul deploys raft-wal. raft-wal serves as the stable store directly (it
// uses no type of hashicorp/raft there). The cache is ours: an application
// that replaces hashicorp/raft with this module gets ours from the same
// raft.NewLogCache call.
func openRaftWAL(dir, id string) (raft.LogStore, raft.StableStore, io.Closer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, nil, err
	}
	store, err := raftwal.Open(dir, raftwal.WithLogger(benchload.QuietLogger("raft-wal-"+id)))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("raft-wal: %w", err)
	}
	cache, err := raft.NewLogCache(theirLogCache, &raftWALLogs{store: store})
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	return cache, store, store, nil
}

// raftWALLogs presents raft-wal, built against hashicorp/raft's Log type,
// as a LogStore of ours. Both Log types have the same fields, so the
// adapter copies the entry structs (never their Data) once per call. In a
// real application the module replacement makes raft-wal use our type
// directly; the copy is the only cost this build adds.
type raftWALLogs struct {
	store *raftwal.WAL
}

var _ raft.MonotonicLogStore = (*raftWALLogs)(nil)

func (a *raftWALLogs) FirstIndex() (uint64, error) { return a.store.FirstIndex() }
func (a *raftWALLogs) LastIndex() (uint64, error)  { return a.store.LastIndex() }
func (a *raftWALLogs) IsMonotonic() bool           { return a.store.IsMonotonic() }

func (a *raftWALLogs) DeleteRange(min, max uint64) error { return a.store.DeleteRange(min, max) }

func (a *raftWALLogs) GetLog(index uint64, out *raft.Log) error {
	var l hraft.Log
	if err := a.store.GetLog(index, &l); err != nil {
		if errors.Is(err, hraft.ErrLogNotFound) {
			return raft.ErrLogNotFound
		}
		return err
	}
	*out = raft.Log{Index: l.Index, Term: l.Term, Type: raft.LogType(l.Type), Data: l.Data, Extensions: l.Extensions, AppendedAt: l.AppendedAt}
	return nil
}

func (a *raftWALLogs) StoreLog(l *raft.Log) error { return a.StoreLogs([]*raft.Log{l}) }

func (a *raftWALLogs) StoreLogs(logs []*raft.Log) error {
	theirs := make([]hraft.Log, len(logs))
	ptrs := make([]*hraft.Log, len(logs))
	for i, l := range logs {
		theirs[i] = hraft.Log{Index: l.Index, Term: l.Term, Type: hraft.LogType(l.Type), Data: l.Data, Extensions: l.Extensions, AppendedAt: l.AppendedAt}
		ptrs[i] = &theirs[i]
	}
	return a.store.StoreLogs(ptrs)
}

// raftWALVersion is the version of raft-wal this binary was built with, as
// the build records it ("(devel)" under go test).
func raftWALVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/hashicorp/raft-wal" {
			return dep.Version
		}
	}
	return "(unknown version)"
}
