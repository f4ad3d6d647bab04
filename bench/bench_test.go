package raftbench

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// The benchmarks run against the root package's InmemStore, here and in CI
// (go test -bench . -benchtime 100x ./bench). Under an application's
// replace, store packages run them against their own stores.

func BenchmarkInmemStore_FirstIndex(b *testing.B) { FirstIndex(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_LastIndex(b *testing.B)  { LastIndex(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_GetLog(b *testing.B)     { GetLog(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_StoreLog(b *testing.B)   { StoreLog(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_StoreLogs(b *testing.B)  { StoreLogs(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_DeleteRange(b *testing.B) {
	DeleteRange(b, raft.NewInmemStore())
}
func BenchmarkInmemStore_Set(b *testing.B)       { Set(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_Get(b *testing.B)       { Get(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_SetUint64(b *testing.B) { SetUint64(b, raft.NewInmemStore()) }
func BenchmarkInmemStore_GetUint64(b *testing.B) { GetUint64(b, raft.NewInmemStore()) }

// brokenStore answers every call with an error, or, with wrongAnswers, with
// no error and the wrong value.
type brokenStore struct {
	*raft.InmemStore
	wrongAnswers bool
}

var errBroken = errors.New("broken store")

func (s brokenStore) FirstIndex() (uint64, error) {
	if s.wrongAnswers {
		return 7, nil
	}
	return 0, errBroken
}

func (s brokenStore) LastIndex() (uint64, error) {
	if s.wrongAnswers {
		return 7, nil
	}
	return 0, errBroken
}

func (s brokenStore) GetLog(index uint64, log *raft.Log) error {
	if s.wrongAnswers {
		*log = raft.Log{Index: index + 1}
		return nil
	}
	return errBroken
}

func (s brokenStore) StoreLog(log *raft.Log) error {
	if s.wrongAnswers {
		return s.InmemStore.StoreLog(log)
	}
	return errBroken
}

func (s brokenStore) StoreLogs(logs []*raft.Log) error {
	if s.wrongAnswers {
		return s.InmemStore.StoreLogs(logs)
	}
	return errBroken
}

func (s brokenStore) DeleteRange(min, max uint64) error { return errBroken }
func (s brokenStore) Set(key, val []byte) error {
	if s.wrongAnswers {
		return s.InmemStore.Set(key, val)
	}
	return errBroken
}

func (s brokenStore) Get(key []byte) ([]byte, error) {
	if s.wrongAnswers {
		return []byte("short"), nil
	}
	return nil, errBroken
}

func (s brokenStore) SetUint64(key []byte, val uint64) error {
	if s.wrongAnswers {
		return s.InmemStore.SetUint64(key, val)
	}
	return errBroken
}

func (s brokenStore) GetUint64(key []byte) (uint64, error) {
	if s.wrongAnswers {
		return 1 << 40, nil
	}
	return 0, errBroken
}

// TestBenchmarksFailOnStoreErrorsAndWrongAnswers checks that a benchmark
// never reports figures for a store that fails or answers wrongly: a store
// author would otherwise publish the speed of a broken store.
func TestBenchmarksFailOnStoreErrorsAndWrongAnswers(t *testing.T) {
	benchmarks := map[string]func(*testing.B, brokenStore){
		"FirstIndex":  func(b *testing.B, s brokenStore) { FirstIndex(b, s) },
		"LastIndex":   func(b *testing.B, s brokenStore) { LastIndex(b, s) },
		"GetLog":      func(b *testing.B, s brokenStore) { GetLog(b, s) },
		"StoreLog":    func(b *testing.B, s brokenStore) { StoreLog(b, s) },
		"StoreLogs":   func(b *testing.B, s brokenStore) { StoreLogs(b, s) },
		"DeleteRange": func(b *testing.B, s brokenStore) { DeleteRange(b, s) },
		"Set":         func(b *testing.B, s brokenStore) { Set(b, s) },
		"Get":         func(b *testing.B, s brokenStore) { Get(b, s) },
		"SetUint64":   func(b *testing.B, s brokenStore) { SetUint64(b, s) },
		"GetUint64":   func(b *testing.B, s brokenStore) { GetUint64(b, s) },
	}
	// Benchmarks that only write have no answer to get wrong.
	writeOnly := map[string]bool{"StoreLog": true, "StoreLogs": true, "Set": true, "SetUint64": true}
	for name, run := range benchmarks {
		for _, wrongAnswers := range []bool{false, true} {
			if wrongAnswers && writeOnly[name] {
				continue
			}
			store := brokenStore{InmemStore: raft.NewInmemStore(), wrongAnswers: wrongAnswers}
			result := testing.Benchmark(func(b *testing.B) { run(b, store) })
			if result.N != 0 {
				t.Errorf("%s against a store with wrongAnswers=%v reported %d iterations, want a failed benchmark", name, wrongAnswers, result.N)
			}
		}
	}
}
