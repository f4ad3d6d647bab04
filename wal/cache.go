package wal

// entryCache keeps the encoded form of the most recent entries, contiguous
// from first, so that reads of fresh entries (replication to followers)
// never touch the disk.
//
// The memory is one arena of limit bytes, reused as a ring: StoreLogs
// encodes each batch's frame straight into the arena (reserve), writes it
// to the segment from there, and then indexes its entries (add). So a
// batch costs no allocation and no copy beyond its encoding, and the
// garbage collector never sees the cached bytes. Bytes in the arena are
// overwritten once newer frames need their place, so readers copy what they
// return.
//
// Positions are logical: a frame at logical position p sits at p mod
// len(arena), and a frame never straddles the end of the arena (the
// position skips to the next lap instead). An entry stays cached while its
// logical start is within the last len(arena) bytes of the newest frame.
type entryCache struct {
	limit int    // arena size in bytes; negative disables the cache
	arena []byte // allocated on first use

	next uint64 // logical position of the next frame

	// The cached entries, a ring: entries[start] is the entry at index
	// first; n entries are held.
	first   uint64
	entries []cachedEntry
	start   int
	n       int
}

// cachedEntry is where one encoded entry (header included) lies.
type cachedEntry struct {
	pos uint64 // logical position
	len int
}

// enabled reports whether frames of size bytes can be cached.
func (c *entryCache) enabled(size int) bool { return c.limit > 0 && size <= c.limit }

// reserve returns the arena space for the next frame of size bytes (size
// must pass enabled) and its logical position, after evicting every entry
// whose bytes it will overwrite. The caller holds the store's mu for
// writing, and fills the space after releasing it: no reader can reach the
// evicted bytes.
func (c *entryCache) reserve(size int) ([]byte, uint64) {
	if c.arena == nil {
		c.arena = make([]byte, c.limit)
	}
	lap := uint64(len(c.arena))
	if c.next%lap+uint64(size) > lap {
		c.next += lap - c.next%lap
	}
	pos := c.next
	c.next += uint64(size)
	for c.n > 0 && c.at(0).pos+lap < c.next {
		c.dropOldest()
	}
	off := pos % lap
	return c.arena[off : off+uint64(size) : off+uint64(size)], pos
}

// at returns the i-th oldest entry.
func (c *entryCache) at(i int) *cachedEntry {
	j := c.start + i
	if j >= len(c.entries) {
		j -= len(c.entries)
	}
	return &c.entries[j]
}

// get returns the encoded entry at index, which stays valid only while the
// caller holds the store's mu.
func (c *entryCache) get(index uint64) ([]byte, bool) {
	if c.n == 0 || index < c.first || index-c.first >= uint64(c.n) {
		return nil, false
	}
	e := c.at(int(index - c.first))
	off := e.pos % uint64(len(c.arena))
	return c.arena[off : off+uint64(e.len)], true
}

// add indexes an entry written at logical position pos. An entry that does
// not continue the cache replaces it.
func (c *entryCache) add(index, pos uint64, n int) {
	if c.n > 0 && c.first+uint64(c.n) != index {
		c.reset()
	}
	if c.n == 0 {
		c.first, c.start = index, 0
	}
	if c.n == len(c.entries) {
		c.grow()
	}
	*c.at(c.n) = cachedEntry{pos: pos, len: n}
	c.n++
}

// grow doubles the ring, keeping the entries in order from position 0.
func (c *entryCache) grow() {
	entries := make([]cachedEntry, max(64, 2*len(c.entries)))
	for i := range c.n {
		entries[i] = *c.at(i)
	}
	c.entries, c.start = entries, 0
}

func (c *entryCache) dropOldest() {
	c.start++
	if c.start == len(c.entries) {
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
	if held := uint64(c.n); held > from-c.first {
		c.n = int(from - c.first)
	}
}

// dropBefore drops every entry with index < head.
func (c *entryCache) dropBefore(head uint64) {
	for c.n > 0 && c.first < head {
		c.dropOldest()
	}
}

// reset forgets every entry; the arena is kept for reuse.
func (c *entryCache) reset() {
	c.first, c.start, c.n = 0, 0, 0
}

// release forgets every entry and frees the arena.
func (c *entryCache) release() {
	c.reset()
	c.arena, c.entries = nil, nil
}
