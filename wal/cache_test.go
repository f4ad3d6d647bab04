package wal

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEntryCacheNeverServesOverwrittenBytes drives the arena through random
// batches (wrapping around it many times), head drops, tail truncations
// and batches that do not continue the cache, and checks after every step
// that it holds a contiguous run of the newest entries, each with exactly
// the bytes written for it, and that it keeps every entry whose bytes no
// later frame has overwritten.
func TestEntryCacheNeverServesOverwrittenBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type held struct {
		index, pos uint64
		b          []byte
	}
	const limit = 2000
	c := entryCache{limit: limit}
	var model []held
	next := uint64(1)
	// store caches a batch the way StoreLogs does.
	store := func(count int) {
		var batch [][]byte
		size := frameHeaderSize
		for i := range count {
			b := fmt.Appendf(nil, "entry-%d-%s", next+uint64(i), make([]byte, rng.IntN(60)))
			batch = append(batch, b)
			size += len(b)
		}
		if !c.enabled(size) {
			// StoreLogs writes it uncached: the older entries stay, and
			// the next cached batch, not continuing them, replaces them.
			next += uint64(count)
			return
		}
		frame, pos := c.reserve(size)
		off := frameHeaderSize
		if len(model) > 0 && model[len(model)-1].index+1 != next {
			model = nil
		}
		for _, b := range batch {
			copy(frame[off:], b)
			c.add(next, pos+uint64(off), len(b))
			model = append(model, held{next, pos + uint64(off), b})
			next++
			off += len(b)
		}
		for len(model) > 0 && model[0].pos+uint64(len(c.arena)) < c.next {
			model = model[1:]
		}
	}
	for step := range 20000 {
		switch op := rng.IntN(20); {
		case op < 16:
			store(1 + rng.IntN(20))
		case op < 17 && len(model) > 0: // delete a head
			head := model[0].index + uint64(rng.IntN(len(model)+1))
			c.dropBefore(head)
			for len(model) > 0 && model[0].index < head {
				model = model[1:]
			}
		case op < 18 && len(model) > 0: // delete a tail
			from := model[0].index + uint64(rng.IntN(len(model)+1))
			c.truncateFrom(from)
			for len(model) > 0 && model[len(model)-1].index >= from {
				model = model[:len(model)-1]
			}
			next = from
		case op < 19: // a gap: the next batch replaces the cache
			next += 5
		default: // a frame too large to cache
			store(40)
		}
		require.Equal(t, len(model), c.n, "step %d", step)
		for _, h := range model {
			got, ok := c.get(h.index)
			require.True(t, ok, "step %d: entry %d missing", step, h.index)
			require.Equal(t, h.b, got, "step %d: entry %d holds other bytes", step, h.index)
		}
		if len(model) > 0 {
			_, ok := c.get(model[0].index - 1)
			require.False(t, ok, "step %d: entry below the oldest", step)
			_, ok = c.get(model[len(model)-1].index + 1)
			require.False(t, ok, "step %d: entry past the newest", step)
		}
	}
}
