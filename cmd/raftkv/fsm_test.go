package main

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

func TestCommandRoundTrip(t *testing.T) {
	cases := []struct {
		name       string
		op         byte
		key, value string
	}{
		{"put", opPut, "k", "v"},
		{"empty value", opPut, "k", ""},
		{"binary value", opPut, "k", "\x00\xff\x01"},
		{"long key", opPut, string(bytes.Repeat([]byte("k"), 300)), "v"},
		{"delete", opDelete, "k", ""},
		{"member", opSetMember, "node1", "127.0.0.1:11000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op, key, value, err := decodeCommand(encodeCommand(tc.op, tc.key, tc.value))
			require.NoError(t, err)
			require.Equal(t, tc.op, op)
			require.Equal(t, tc.key, key)
			require.Equal(t, tc.value, value)
		})
	}
}

func TestApplyRefusesMalformedEntries(t *testing.T) {
	cases := map[string][]byte{
		"empty":              nil,
		"no key length":      {opPut},
		"bad varint":         {opPut, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"key longer than it": {opPut, 5, 'a', 'b'},
		"unknown opcode":     encodeCommand(99, "k", "v"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f := newKVFSM()
			resp := f.Apply(&raft.Log{Index: 7, Data: data})
			err, ok := resp.(error)
			require.True(t, ok, "Apply should return an error for a malformed entry, got %#v", resp)
			require.ErrorContains(t, err, "entry 7")
			require.Zero(t, f.size(), "a malformed entry must not change the state")
		})
	}
}

func TestApplyPutDeleteAndMembers(t *testing.T) {
	f := newKVFSM()
	apply := func(op byte, key, value string) {
		require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(op, key, value)}))
	}
	apply(opPut, "a", "1")
	apply(opPut, "b", "2")
	apply(opPut, "a", "3")
	apply(opDelete, "b", "")
	apply(opDelete, "never-there", "")
	apply(opSetMember, "n1", "127.0.0.1:1")
	apply(opSetMember, "n2", "127.0.0.1:2")
	apply(opDeleteMember, "n2", "")

	v, ok := f.get("a")
	require.True(t, ok)
	require.Equal(t, "3", v)
	_, ok = f.get("b")
	require.False(t, ok)
	require.Equal(t, 1, f.size())
	require.Equal(t, "127.0.0.1:1", f.member("n1"))
	require.Empty(t, f.member("n2"))
}

func TestListIsSortedFilteredAndPaged(t *testing.T) {
	f := newKVFSM()
	for _, k := range []string{"b/2", "a/1", "b/1", "b/3", "c"} {
		require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opPut, k, "v"+k)}))
	}
	keys := func(pairs []kvPair) []string {
		var ks []string
		for _, p := range pairs {
			ks = append(ks, p.Key)
		}
		return ks
	}
	pairs, more := f.list("b/", "", 2)
	require.Equal(t, []string{"b/1", "b/2"}, keys(pairs))
	require.True(t, more)
	require.Equal(t, "vb/1", pairs[0].Value)

	pairs, more = f.list("b/", "b/2", 2)
	require.Equal(t, []string{"b/3"}, keys(pairs))
	require.False(t, more)

	pairs, more = f.list("", "", 100)
	require.Equal(t, []string{"a/1", "b/1", "b/2", "b/3", "c"}, keys(pairs))
	require.False(t, more)
}

// memorySink is a raft.SnapshotSink over a buffer.
type memorySink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memorySink) ID() string    { return "test" }
func (s *memorySink) Close() error  { s.closed = true; return nil }
func (s *memorySink) Cancel() error { s.cancelled = true; return nil }

// snapshotBytes takes a snapshot of f and returns the persisted stream.
func snapshotBytes(t *testing.T, f *kvFSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	var sink memorySink
	require.NoError(t, snap.Persist(&sink))
	require.True(t, sink.closed)
	require.False(t, sink.cancelled)
	return sink.Bytes()
}

func filledFSM(t *testing.T, keys int) *kvFSM {
	t.Helper()
	f := newKVFSM()
	for i := range keys {
		require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opPut, fmt.Sprintf("key-%d", i), fmt.Sprintf("value\x00%d", i))}))
	}
	require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opPut, "empty", "")}))
	require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opSetMember, "n1", "127.0.0.1:11000")}))
	return f
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	for _, keys := range []int{0, 1, 5000} {
		t.Run(fmt.Sprint(keys), func(t *testing.T) {
			src := filledFSM(t, keys)
			data := snapshotBytes(t, src)

			dst := newKVFSM()
			require.Nil(t, dst.Apply(&raft.Log{Data: encodeCommand(opPut, "stale", "gone after restore")}))
			require.NoError(t, dst.Restore(io.NopCloser(bytes.NewReader(data))))
			require.Equal(t, src.data, dst.data)
			require.Equal(t, src.members, dst.members)
		})
	}
}

func TestSnapshotIsAPointInTimeView(t *testing.T) {
	f := filledFSM(t, 10)
	snap, err := f.Snapshot()
	require.NoError(t, err)
	// Raft may apply entries while Persist runs.
	require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opPut, "later", "x")}))
	require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opDelete, "key-0", "")}))
	var sink memorySink
	require.NoError(t, snap.Persist(&sink))

	restored := newKVFSM()
	require.NoError(t, restored.Restore(io.NopCloser(&sink.Buffer)))
	_, hasLater := restored.get("later")
	require.False(t, hasLater, "an entry applied after Snapshot must not be in it")
	_, hasKey0 := restored.get("key-0")
	require.True(t, hasKey0, "a key deleted after Snapshot must still be in it")
}

func TestRestoreRefusesDamagedSnapshotsAndKeepsState(t *testing.T) {
	good := snapshotBytes(t, filledFSM(t, 20))
	flip := func(offset int) []byte {
		b := bytes.Clone(good)
		b[offset] ^= 0x40
		return b
	}
	cases := map[string][]byte{
		"empty":              nil,
		"bad magic":          flip(0),
		"flipped key byte":   flip(len(snapshotMagic) + 3),
		"flipped end count":  flip(len(good) - 10),
		"flipped end crc":    flip(len(good) - 1),
		"unknown record":     append([]byte(snapshotMagic), 9),
		"oversized length":   append([]byte(snapshotMagic), recordKV, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"missing end record": good[:len(good)-13],
	}
	// Every proper prefix of a valid stream is refused.
	for cut := 0; cut < len(good); cut += 7 {
		cases[fmt.Sprintf("cut at %d", cut)] = good[:cut]
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f := newKVFSM()
			require.Nil(t, f.Apply(&raft.Log{Data: encodeCommand(opPut, "kept", "yes")}))
			require.Error(t, f.Restore(io.NopCloser(bytes.NewReader(data))))
			v, ok := f.get("kept")
			require.True(t, ok && v == "yes", "a refused restore must leave the state as it was")
			require.Equal(t, 1, f.size())
		})
	}
}

// failingSink fails every write.
type failingSink struct{ memorySink }

func (s *failingSink) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestPersistCancelsTheSinkOnWriteError(t *testing.T) {
	snap, err := filledFSM(t, 10).Snapshot()
	require.NoError(t, err)
	var sink failingSink
	require.ErrorIs(t, snap.Persist(&sink), io.ErrShortWrite)
	require.True(t, sink.cancelled)
	require.False(t, sink.closed)
}
