package wal

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEntryCacheMatchesAModel drives the ring through random adds,
// evictions, head drops and tail truncations, wrapping around and growing,
// and checks after every step that it holds exactly the newest entries a
// plain slice model holds within the byte budget.
func TestEntryCacheMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type held struct {
		index uint64
		b     []byte
	}
	const limit = 2000
	c := entryCache{limit: limit}
	var model []held
	next := uint64(1)
	enc := func(index uint64) []byte { return fmt.Appendf(nil, "entry-%d-%s", index, make([]byte, rng.IntN(60))) }
	for step := range 5000 {
		switch op := rng.IntN(10); {
		case op < 7: // append a batch
			batch := make([][]byte, 1+rng.IntN(20))
			for i := range batch {
				batch[i] = enc(next + uint64(i))
				model = append(model, held{next + uint64(i), batch[i]})
			}
			c.add(next, batch)
			next += uint64(len(batch))
			total := 0
			for _, h := range model {
				total += len(h.b)
			}
			for len(model) > 0 && total > limit {
				total -= len(model[0].b)
				model = model[1:]
			}
		case op < 8 && len(model) > 0: // delete a head
			head := model[0].index + uint64(rng.IntN(len(model)+1))
			c.dropBefore(head)
			for len(model) > 0 && model[0].index < head {
				model = model[1:]
			}
		case op < 9 && len(model) > 0: // delete a tail
			from := model[0].index + uint64(rng.IntN(len(model)+1))
			c.truncateFrom(from)
			for len(model) > 0 && model[len(model)-1].index >= from {
				model = model[:len(model)-1]
			}
			next = from
		default: // a batch that does not continue the cache replaces it
			next += 5
			b := enc(next)
			c.add(next, [][]byte{b})
			model = []held{{next, b}}
			if len(b) > limit {
				model = nil
			}
			next++
		}
		require.Equal(t, len(model), c.n, "step %d", step)
		bytes := 0
		for _, h := range model {
			got, ok := c.get(h.index)
			require.True(t, ok, "step %d: entry %d missing", step, h.index)
			require.Equal(t, h.b, got, "step %d: entry %d", step, h.index)
			bytes += len(h.b)
		}
		require.Equal(t, bytes, c.bytes, "step %d", step)
		if len(model) > 0 {
			_, ok := c.get(model[0].index - 1)
			require.False(t, ok, "step %d: entry below the oldest", step)
		}
		_, ok := c.get(next)
		require.False(t, ok, "step %d: entry past the newest", step)
	}
}
