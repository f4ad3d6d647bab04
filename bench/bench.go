// Package raftbench holds benchmarks that any LogStore or StableStore can
// run from its own tests, with the same functions as hashicorp/raft's bench
// package, so that store packages written for hashicorp/raft (raft-boltdb,
// for one) build and run their benchmarks unchanged against this module:
//
//	func BenchmarkMyStore_StoreLogs(b *testing.B) {
//		store := openMyStore(b)
//		defer store.Close()
//		raftbench.StoreLogs(b, store)
//	}
//
// Each function takes a new, empty store and measures one method per
// iteration; any error from the store fails the benchmark. The store is
// left holding whatever the benchmark wrote.
//
// The package imports the root package as github.com/hashicorp/raft, the
// path an application that switches with a replace line knows it by; see
// the Packages section of the root package's documentation.
package raftbench

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

const (
	// prefill is how many entries the read benchmarks store before they
	// start timing: enough that a store cannot answer from a single cached
	// entry, small enough to write quickly on a durable store.
	prefill = 1000

	// batchSize is how many entries StoreLogs writes per call, and
	// DeleteRange removes per call.
	batchSize = 10

	// payloadSize is the size of each entry's Data, a typical small command.
	payloadSize = 128
)

// payload is the Data of every entry the benchmarks write. Stores must not
// keep or modify the caller's slices, so sharing it is safe.
var payload = func() []byte {
	data := make([]byte, payloadSize)
	for i := range data {
		data[i] = byte(i)
	}
	return data
}()

// entry is the log entry the benchmarks write at index.
func entry(index uint64) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: payload}
}

// entries returns the entries for indexes from..to inclusive.
func entries(from, to uint64) []*raft.Log {
	logs := make([]*raft.Log, 0, to-from+1)
	for index := from; index <= to; index++ {
		logs = append(logs, entry(index))
	}
	return logs
}

// fill stores the entries 1..prefill in batches, outside the timer.
func fill(b *testing.B, store raft.LogStore) {
	b.Helper()
	for from := uint64(1); from <= prefill; from += batchSize {
		if err := store.StoreLogs(entries(from, from+batchSize-1)); err != nil {
			b.Fatalf("raftbench: store entries %d-%d before timing: %v", from, from+batchSize-1, err)
		}
	}
}

// FirstIndex measures FirstIndex on a store holding entries 1..1000.
func FirstIndex(b *testing.B, store raft.LogStore) {
	fill(b, store)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		first, err := store.FirstIndex()
		if err != nil {
			b.Fatalf("raftbench: FirstIndex: %v", err)
		}
		if first != 1 {
			b.Fatalf("raftbench: FirstIndex = %d, want 1", first)
		}
	}
}

// LastIndex measures LastIndex on a store holding entries 1..1000.
func LastIndex(b *testing.B, store raft.LogStore) {
	fill(b, store)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		last, err := store.LastIndex()
		if err != nil {
			b.Fatalf("raftbench: LastIndex: %v", err)
		}
		if last != prefill {
			b.Fatalf("raftbench: LastIndex = %d, want %d", last, prefill)
		}
	}
}

// GetLog measures GetLog on a store holding entries 1..1000, reading them
// in turn.
func GetLog(b *testing.B, store raft.LogStore) {
	fill(b, store)
	b.ResetTimer()
	var log raft.Log
	for i := 0; i < b.N; i++ {
		index := uint64(i%prefill) + 1
		if err := store.GetLog(index, &log); err != nil {
			b.Fatalf("raftbench: GetLog(%d): %v", index, err)
		}
		if log.Index != index {
			b.Fatalf("raftbench: GetLog(%d) returned the entry at index %d", index, log.Index)
		}
	}
}

// StoreLog measures StoreLog appending one entry per call.
func StoreLog(b *testing.B, store raft.LogStore) {
	for i := 0; i < b.N; i++ {
		index := uint64(i) + 1
		if err := store.StoreLog(entry(index)); err != nil {
			b.Fatalf("raftbench: StoreLog(%d): %v", index, err)
		}
	}
}

// StoreLogs measures StoreLogs appending batches of 10 entries per call.
func StoreLogs(b *testing.B, store raft.LogStore) {
	for i := 0; i < b.N; i++ {
		from := uint64(i)*batchSize + 1
		logs := entries(from, from+batchSize-1)
		if err := store.StoreLogs(logs); err != nil {
			b.Fatalf("raftbench: StoreLogs(%d-%d): %v", from, from+batchSize-1, err)
		}
	}
}

// DeleteRange measures DeleteRange removing the oldest 10 entries per call,
// as log compaction does. The entries are written outside the timer, in
// batches, ahead of the deletes.
func DeleteRange(b *testing.B, store raft.LogStore) {
	// Write ahead in chunks so neither the whole run's entries sit in
	// memory at once nor the timer stops on every iteration.
	const deletesPerChunk = prefill / batchSize
	var written uint64
	for i := 0; i < b.N; i++ {
		from := uint64(i)*batchSize + 1
		if from > written {
			b.StopTimer()
			chunkEnd := written + deletesPerChunk*batchSize
			for start := written + 1; start <= chunkEnd; start += batchSize {
				if err := store.StoreLogs(entries(start, start+batchSize-1)); err != nil {
					b.Fatalf("raftbench: store entries %d-%d before deleting them: %v", start, start+batchSize-1, err)
				}
			}
			written = chunkEnd
			b.StartTimer()
		}
		if err := store.DeleteRange(from, from+batchSize-1); err != nil {
			b.Fatalf("raftbench: DeleteRange(%d, %d): %v", from, from+batchSize-1, err)
		}
	}
}

// keys are the keys the StableStore benchmarks use in turn, made before
// any timing starts.
var keys = func() [][]byte {
	keys := make([][]byte, prefill)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
	}
	return keys
}()

// key is the key the StableStore benchmarks use at iteration i.
func key(i int) []byte {
	return keys[i%prefill]
}

// Set measures Set with 1000 keys written in turn.
func Set(b *testing.B, store raft.StableStore) {
	for i := 0; i < b.N; i++ {
		if err := store.Set(key(i), payload); err != nil {
			b.Fatalf("raftbench: Set(%q): %v", key(i), err)
		}
	}
}

// Get measures Get of 1000 keys read in turn.
func Get(b *testing.B, store raft.StableStore) {
	for i := 0; i < prefill; i++ {
		if err := store.Set(key(i), payload); err != nil {
			b.Fatalf("raftbench: Set(%q) before timing: %v", key(i), err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		value, err := store.Get(key(i))
		if err != nil {
			b.Fatalf("raftbench: Get(%q): %v", key(i), err)
		}
		if len(value) != payloadSize {
			b.Fatalf("raftbench: Get(%q) returned %d bytes, want %d", key(i), len(value), payloadSize)
		}
	}
}

// SetUint64 measures SetUint64 with 1000 keys written in turn.
func SetUint64(b *testing.B, store raft.StableStore) {
	for i := 0; i < b.N; i++ {
		if err := store.SetUint64(key(i), uint64(i)); err != nil {
			b.Fatalf("raftbench: SetUint64(%q): %v", key(i), err)
		}
	}
}

// GetUint64 measures GetUint64 of 1000 keys read in turn.
func GetUint64(b *testing.B, store raft.StableStore) {
	for i := 0; i < prefill; i++ {
		if err := store.SetUint64(key(i), uint64(i)); err != nil {
			b.Fatalf("raftbench: SetUint64(%q) before timing: %v", key(i), err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		value, err := store.GetUint64(key(i))
		if err != nil {
			b.Fatalf("raftbench: GetUint64(%q): %v", key(i), err)
		}
		if want := uint64(i % prefill); value != want {
			b.Fatalf("raftbench: GetUint64(%q) = %d, want %d", key(i), value, want)
		}
	}
}
