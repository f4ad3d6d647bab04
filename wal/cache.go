package wal

// entryCache keeps the encoded form of the most recent entries, contiguous
// from first, so that reads of fresh entries (replication to followers)
// never touch the disk. The slices point into the frames as written; a
// frame's memory is released once all of its entries are evicted.
//
// The entries sit in a ring, so that adding a batch and evicting the oldest
// entries costs in proportion to the entries added, however many the cache
// holds (a slice resliced from the front would be copied whole on every
// batch once full).
type entryCache struct {
	limit int      // byte budget; negative disables the cache
	first uint64   // index of the oldest entry
	ring  [][]byte // encoded entries, headers included; ring[start] is the oldest
	start int      // position of the oldest entry in ring
	n     int      // number of entries held
	bytes int      // sum of the lengths of the entries held
}

// at returns the slot of the i-th oldest entry.
func (c *entryCache) at(i int) *[]byte {
	j := c.start + i
	if j >= len(c.ring) {
		j -= len(c.ring)
	}
	return &c.ring[j]
}

func (c *entryCache) get(index uint64) ([]byte, bool) {
	if c.n == 0 || index < c.first || index-c.first >= uint64(c.n) {
		return nil, false
	}
	return *c.at(int(index - c.first)), true
}

// add appends entries starting at first, dropping the oldest entries while
// over budget. A batch that does not continue the cache replaces it.
func (c *entryCache) add(first uint64, encoded [][]byte) {
	if c.n > 0 && c.first+uint64(c.n) != first {
		c.reset()
	}
	if c.n == 0 {
		c.first, c.start = first, 0
	}
	for _, e := range encoded {
		if c.n == len(c.ring) {
			c.grow()
		}
		*c.at(c.n) = e
		c.n++
		c.bytes += len(e)
	}
	for c.n > 0 && c.bytes > c.limit {
		c.dropOldest()
	}
}

// grow doubles the ring, keeping the entries in order from position 0.
func (c *entryCache) grow() {
	ring := make([][]byte, max(64, 2*len(c.ring)))
	for i := range c.n {
		ring[i] = *c.at(i)
	}
	c.ring, c.start = ring, 0
}

func (c *entryCache) dropOldest() {
	slot := c.at(0)
	c.bytes -= len(*slot)
	*slot = nil
	c.start++
	if c.start == len(c.ring) {
		c.start = 0
	}
	c.n--
	c.first++
}

// truncateFrom drops every entry with index >= from.
func (c *entryCache) truncateFrom(from uint64) {
	if from <= c.first {
		c.reset()
		return
	}
	for uint64(c.n) > from-c.first {
		slot := c.at(c.n - 1)
		c.bytes -= len(*slot)
		*slot = nil
		c.n--
	}
}

// dropBefore drops every entry with index < head.
func (c *entryCache) dropBefore(head uint64) {
	for c.n > 0 && c.first < head {
		c.dropOldest()
	}
}

func (c *entryCache) reset() {
	clear(c.ring)
	c.first, c.start, c.n, c.bytes = 0, 0, 0, 0
}
