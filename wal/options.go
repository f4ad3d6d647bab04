package wal

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
)

// SyncMode says how the store makes a write durable before it returns.
type SyncMode int

const (
	// SyncData flushes file data and the metadata needed to read it back
	// (fdatasync on Linux, fsync elsewhere). It is the default.
	SyncData SyncMode = iota

	// SyncFull flushes file data and all file metadata (fsync).
	SyncFull

	// SyncNever skips every flush. A crash of the process loses nothing,
	// but a crash of the machine may lose acknowledged entries and votes,
	// which breaks Raft's safety. Use it only for tests and throwaway
	// clusters.
	SyncNever
)

// String returns the mode's name.
func (m SyncMode) String() string {
	switch m {
	case SyncData:
		return "data"
	case SyncFull:
		return "full"
	case SyncNever:
		return "never"
	default:
		return fmt.Sprintf("SyncMode(%d)", int(m))
	}
}

// DefaultSegmentSize is the segment size used when Options.SegmentSize is 0.
const DefaultSegmentSize = 64 << 20

// Options configures a Store. The zero value is a good production setting.
type Options struct {
	// SegmentSize is the size in bytes at which the store starts a new
	// segment file. A batch never spans two segments, so a segment holding
	// a single large batch can be bigger. 0 means DefaultSegmentSize; the
	// largest accepted value is MaxSegmentSize.
	SegmentSize int

	// Sync selects how writes are made durable. The zero value, SyncData,
	// is safe; see SyncNever before changing it.
	Sync SyncMode

	// CacheSize is how many bytes of the most recently appended entries
	// (encoded, with their headers) the store keeps in memory for GetLog.
	// The memory is allocated once, at the first append, and reused:
	// appends encode straight into it. A batch larger than CacheSize is
	// not cached. 0 or a negative value keeps no cache, the default:
	// Raft keeps its newest entries in memory itself (replication and the
	// FSM read them there), so a store cache would hold a second copy,
	// and keeping it costs each append more CPU than it saves (raftbench,
	// tcp-wal-c256: about 28-32 CPU µs per op with a 32 MiB cache, 16-18
	// without). Set it when something other than Raft reads recent entries
	// through GetLog often.
	CacheSize int

	// Logger receives recovery warnings (a cut torn tail, cleaned up
	// leftovers) and fatal I/O errors. nil means an hclog logger named
	// "wal" writing to stderr at Info level.
	Logger hclog.Logger
}

// withDefaults returns o with zero fields filled in, or an error for values
// that make no sense.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.SegmentSize == 0:
		o.SegmentSize = DefaultSegmentSize
	case o.SegmentSize < 0 || o.SegmentSize > MaxSegmentSize:
		return o, fmt.Errorf("wal: SegmentSize %d is outside [1, %d]", o.SegmentSize, MaxSegmentSize)
	}
	if o.Sync < SyncData || o.Sync > SyncNever {
		return o, fmt.Errorf("wal: unknown sync mode %d", int(o.Sync))
	}
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "wal", Output: os.Stderr, Level: hclog.Info})
	}
	return o, nil
}
