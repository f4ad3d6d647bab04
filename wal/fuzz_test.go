//go:build go1.25

package wal

import (
	"testing"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// Fuzz targets for every decoder that reads bytes from disk. Run as unit
// tests they check the seeds; with -fuzz they search for panics and for
// accepted input that breaks the decoders' promises.

func FuzzScanFrames(f *testing.F) {
	var valid []byte
	for _, batch := range [][]*raft.Log{testBatch(1, 2, 1), testBatch(3, 3, 1)} {
		size := frameHeaderSize
		for _, l := range batch {
			size += encodedEntrySize(l)
		}
		frame := make([]byte, size)
		off := frameHeaderSize
		for _, l := range batch {
			putEntry(frame[off:off+encodedEntrySize(l)], l)
			off += encodedEntrySize(l)
		}
		putFrameHeader(frame, uint32(len(batch)), batch[0].Index)
		valid = append(valid, frame...)
	}
	valid = append(valid, encodeMarker(3)...)
	f.Add(valid, true)
	f.Add(valid[:len(valid)-3], true)
	f.Add(valid[:40], false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, body []byte, newest bool) {
		buf := append(encodeSegmentHeader(segmentHeader{seq: 1, base: 1}), body...)
		g := &segment{seq: 1, base: 1, first: 1, path: "fuzz"}
		torn, err := g.scanFrames(buf, newest)
		if err != nil {
			return
		}
		require.LessOrEqual(t, g.size, int64(len(buf)))
		if torn >= 0 {
			require.True(t, newest, "only the newest segment may have a torn tail")
		}
		for i, loc := range g.locs {
			require.LessOrEqual(t, int64(loc.off)+int64(loc.n), g.size)
			var l raft.Log
			require.NoError(t, decodeEntry(buf[loc.off:loc.off+loc.n], g.first+uint64(i), &l, true, true), "an accepted frame holds a bad entry")
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(metaState{head: 5, activeSeq: 2, kv: map[string][]byte{"CurrentTerm": {1, 0, 0, 0, 0, 0, 0, 0}, "x": nil}}))
	f.Add(encodeMeta(metaState{kv: map[string][]byte{}}))
	f.Add([]byte("QKRAFTMT"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := decodeMeta(encodeMeta(m))
		require.NoError(t, err)
		require.Equal(t, m, again, "accepted metadata must survive a rewrite unchanged")
	})
}

func FuzzDecodeEntry(f *testing.F) {
	l := testEntry(7, 3)
	l.Extensions = []byte("ext")
	b := make([]byte, encodedEntrySize(l))
	putEntry(b, l)
	f.Add(b)
	f.Add(b[:entryHeaderSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		var out raft.Log
		if err := decodeEntry(b, 7, &out, true, true); err != nil {
			return
		}
		require.Equal(t, len(b), entryHeaderSize+len(out.Data)+len(out.Extensions))
	})
}
