// Package wal is a durable raft.LogStore and raft.StableStore in one
// directory: append-only segment files of checksummed frames, an in-memory
// index from log index to file offset, an optional cache of recent entries,
// and a small metadata file replaced atomically for the stable keys.
//
// # Use
//
//	store, err := wal.Open("/var/lib/myapp/raft", wal.Options{Logger: logger})
//	if err != nil { ... }           // refuses damaged data; see Recovery
//	defer store.Close()
//	r, err := raft.NewRaft(conf, fsm, store, store, snaps, trans)
//
// The zero Options are meant for production: 64 MiB segments, fdatasync on
// every write, no cache of recent entries (Raft keeps those in memory).
//
// # Files
//
//	LOCK                     flock'd while a Store has the directory open
//	wal.meta                 stable keys, log head, newest segment number
//	00000000000000000001.seg segments, named by sequence number
//	*.tmp                    unfinished writes, removed by Open
//
// A segment file is created at its full size (fallocate on Linux), and the
// writer writes zeros 64 KiB ahead of its frames, synced with the frame
// that crosses into a new chunk. So an append that lands within the zeroed
// part neither grows the file nor writes to a block for the first time, and
// its fdatasync has no file metadata to flush (a first write into
// fallocated space must record in the journal that the block now holds
// data); a frame that crosses the zeroed part pays that record once, for
// itself and the next chunk. The reserved space reads as zeros, and a
// run of zeros to the end of the file ends a segment's frames (no frame
// starts with a zero byte). A segment that fills up is cut back to its last
// frame when the next one starts.
//
// Every integer is little-endian; every header carries format version 1,
// and Open refuses other versions.
//
// A segment is a 36-byte header (magic "QKRAFTWL", version, sequence number,
// base index, CRC-32C) followed by frames. A frame is one StoreLogs batch: a
// 24-byte header (magic, CRC-32C over the header and payload, payload
// length, entry count, first index) and the entries, each with its own
// 33-byte header (CRC-32C of the entry, term, type, AppendedAt as seconds
// since year 1 and nanoseconds, data and extension lengths) then Data and
// Extensions. A frame with count 0 is a truncation marker: it deletes every
// entry from its index on. The index of an entry is not stored; it follows
// from its frame.
//
// wal.meta holds magic "QKRAFTMT", version, the log head (the lowest index
// the log may hold), the sequence number of the newest segment, the stable
// keys and values, and a CRC-32C over all of it.
//
// # Invariants
//
//  1. An operation returns success only after everything it wrote is synced
//     (file data with fdatasync, renames with an fsync of the directory).
//  2. Only the last write to the newest segment can be torn: each frame is
//     synced before the next is written, and a segment is named in wal.meta
//     before its first frame is written.
//  3. wal.meta is replaced by writing wal.meta.tmp, syncing it, renaming it
//     over wal.meta and syncing the directory, so it is always whole.
//  4. Segments with a number above the one wal.meta names hold no
//     acknowledged entry; segments holding only entries below the head are
//     deleted entries. Open removes both.
//  5. The remaining segments hold one contiguous run of indexes that starts
//     at or below the head, and the newest one exists.
//  6. A failed write or sync is fatal: the Store refuses every later write
//     until it is reopened, which re-reads what actually reached the disk.
//
// # Crash points
//
// Append: the frame is written then synced. A crash before the sync
// finishes leaves the frame whole, torn, or absent; Open cuts a torn one.
// The batch was not acknowledged, so either outcome is correct.
//
// Rotation: the new segment is created under a .tmp name, synced, renamed,
// the directory synced; then wal.meta is rewritten to name it; only then is
// the frame appended. A crash before wal.meta names it leaves an empty
// unnamed segment that Open removes; after, an empty named segment that
// takes the next append. No state can make later appends fail.
//
// Starting an empty log (first append, or after deleting everything): as
// rotation, with wal.meta also recording the new head; an older empty
// segment is removed afterwards (Open removes it if the crash came first).
//
// Head deletion: wal.meta records the new head first, then whole segments
// below it are deleted. Nothing is rewritten; deleted entries that share a
// segment with live ones stay on disk, hidden, until that segment goes.
//
// Tail deletion: if it reaches into older segments, wal.meta first names the
// segment holding the new last entry as the newest, then the newer segments
// are deleted. In that segment the file is cut (ftruncate, space reserved
// again, synced) at the start of the frame holding the first deleted entry,
// which erases the deleted frames rather than leaving them behind later,
// shorter appends; if that entry is in
// the middle of a frame, the file is instead cut after that frame and a
// truncation marker appended and synced. A crash at any step leaves a prefix
// of the old log that is at least the intended result, and the store
// accepts appends after it.
//
// Deleting everything: wal.meta disowns all segments (newest number 0),
// then the files are deleted.
//
// Stable keys: see invariant 3; a crash leaves the old or the new value.
//
// # Recovery
//
// Open reads every segment and checks every frame checksum. Zeros running
// to the end of a file are reserved space, not damage. In the newest
// segment a bad frame with no valid frame after it is a torn write: the file
// is cut there (and its space reserved again) and a warning logged. A frame or marker is also only accepted
// if it continues the index run. Anything else (a bad frame followed by a
// valid one, a bad frame in an older segment, a missing segment, a damaged
// or missing wal.meta) makes Open fail with an error naming the file and
// the byte offset, so that damage is never silently turned into data loss.
// A damaged last frame cannot be told apart from a torn write, so a bit
// flip there drops that one batch, the same as a crash during its write.
//
// GetLog serves entries still in the cache (if any) from memory and reads others with
// one pread, verifying the entry checksum; a mismatch is returned as an
// error, never as an entry.
//
// # Metrics
//
// Under raft.wal: append (timer, per StoreLogs), appendEntries and
// appendBytes (counters), sync (timer) and syncs (counter),
// segmentRotations, truncateHead, truncateTail, truncateAll, metaWrites,
// readDisk (GetLog calls served from disk) and failed (counters).
package wal
