package wal

// entryCache keeps the encoded form of the most recent entries, contiguous
// from first, so that reads of fresh entries (replication to followers)
// never touch the disk. The slices point into the frames as written; a
// frame's memory is released once all of its entries are evicted.
type entryCache struct {
	limit   int      // byte budget; negative disables the cache
	first   uint64   // index of entries[0]
	entries [][]byte // encoded entries, headers included
	bytes   int      // sum of len(entries[i])
}

func (c *entryCache) get(index uint64) ([]byte, bool) {
	if len(c.entries) == 0 || index < c.first || index-c.first >= uint64(len(c.entries)) {
		return nil, false
	}
	return c.entries[index-c.first], true
}

// add appends entries starting at first, dropping the oldest entries while
// over budget. A batch that does not continue the cache replaces it.
func (c *entryCache) add(first uint64, encoded [][]byte) {
	if len(c.entries) > 0 && c.first+uint64(len(c.entries)) != first {
		c.reset()
	}
	if len(c.entries) == 0 {
		c.first = first
	}
	for _, e := range encoded {
		c.entries = append(c.entries, e)
		c.bytes += len(e)
	}
	drop := 0
	for drop < len(c.entries) && c.bytes > c.limit {
		c.bytes -= len(c.entries[drop])
		c.entries[drop] = nil
		drop++
	}
	c.entries = c.entries[drop:]
	c.first += uint64(drop)
}

// truncateFrom drops every entry with index >= from.
func (c *entryCache) truncateFrom(from uint64) {
	if from <= c.first {
		c.reset()
		return
	}
	for uint64(len(c.entries)) > from-c.first {
		last := len(c.entries) - 1
		c.bytes -= len(c.entries[last])
		c.entries[last] = nil
		c.entries = c.entries[:last]
	}
}

// dropBefore drops every entry with index < head.
func (c *entryCache) dropBefore(head uint64) {
	for len(c.entries) > 0 && c.first < head {
		c.bytes -= len(c.entries[0])
		c.entries[0] = nil
		c.entries = c.entries[1:]
		c.first++
	}
}

func (c *entryCache) reset() {
	c.entries, c.bytes, c.first = nil, 0, 0
}
