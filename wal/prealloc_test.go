package wal

import (
	"bytes"
	"os"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// These run on real files: segments reserve their full size up front
// (fallocate on Linux), and recovery must tell the reserved zeros after the
// last frame from records.

const preallocSegment = 64 << 10

// requireReserved checks, where the platform reserves space, that the
// newest segment of dir spans the whole segment size.
func requireReserved(t *testing.T, dir string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	segs := segmentFiles(t, dir)
	require.Equal(t, int64(preallocSegment), fileSize(t, segs[len(segs)-1]), "the newest segment must keep its reserved space")
}

// warnings returns a logger recording warnings and the buffer it writes to.
func warnings() (hclog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Warn}), &buf
}

func TestReservedSpaceAfterTheLastFrameIsNotATornWrite(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{SegmentSize: preallocSegment})
	want := logModel{}
	for i := uint64(1); i <= 20; i += 4 {
		require.NoError(t, s.StoreLogs(testBatch(i, i+3, 1)))
		want.store(i, i+3, 1)
	}
	requireReserved(t, dir)
	require.NoError(t, s.Close())

	logger, logged := warnings()
	opts := Options{SegmentSize: preallocSegment, Logger: logger}
	s, err := Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, want, readLog(t, s))
	require.Empty(t, logged.String(), "reopening a cleanly closed store must not cut or warn")
	requireReserved(t, dir)
	requireAppendWorks(t, dir, s, opts)
}

func TestTornWriteInReservedSpaceIsCutAndTheSpaceReservedAgain(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{SegmentSize: preallocSegment})
	require.NoError(t, s.StoreLogs(testBatch(1, 5, 1)))
	want := readLog(t, s)
	end := s.segments[0].size
	require.NoError(t, s.Close())

	// A torn frame: the first bytes of a real frame header, then garbage,
	// then the reserved zeros.
	seg := segmentFiles(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	require.NoError(t, err)
	torn := append(encodeMarker(7)[:10], bytes.Repeat([]byte{0xa5}, 300)...)
	_, err = f.WriteAt(torn, end)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	logger, logged := warnings()
	opts := Options{SegmentSize: preallocSegment, Logger: logger}
	s, err = Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, want, readLog(t, s))
	require.Contains(t, logged.String(), "torn")
	requireReserved(t, dir)
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.True(t, allZero(b[end:]), "the torn bytes must be gone, not left behind the next append")
	requireAppendWorks(t, dir, s, opts)
}

// TestDeletedTailDoesNotComeBackBehindAShorterAppend deletes a tail of
// several frames and appends a shorter frame in its place: the deleted
// frames must be erased, or the old frame of index 8 would read as the
// valid continuation of the new 6..7.
func TestDeletedTailDoesNotComeBackBehindAShorterAppend(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: preallocSegment, Logger: quietLogger()}
	s := openTestStore(t, dir, opts)
	for i := uint64(1); i <= 10; i++ {
		require.NoError(t, s.StoreLogs(testBatch(i, i, 1)))
	}
	require.NoError(t, s.DeleteRange(6, 10))
	require.NoError(t, s.StoreLogs(testBatch(6, 7, 2)))
	want := testModel(1, 5, 1)
	want.store(6, 7, 2)
	require.Equal(t, want, readLog(t, s))
	requireReserved(t, dir)
	require.NoError(t, s.Close())

	s, err := Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, want, readLog(t, s))
	requireAppendWorks(t, dir, s, opts)
}

// TestOlderSegmentWithReservedTailOpens covers a crash after a rotation
// whose release of the full segment's reserved space did not reach the
// disk: zeros after the last frame of an older segment end its frames.
func TestOlderSegmentWithReservedTailOpens(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 300, Logger: quietLogger()}
	s := openTestStore(t, dir, opts)
	for i := uint64(1); i <= 12; i += 2 {
		require.NoError(t, s.StoreLogs(testBatch(i, i+1, 1)))
	}
	want := readLog(t, s)
	require.NoError(t, s.Close())
	segs := segmentFiles(t, dir)
	require.GreaterOrEqual(t, len(segs), 3)
	require.NoError(t, os.Truncate(segs[0], fileSize(t, segs[0])+4096))

	s, err := Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, want, readLog(t, s))
	requireAppendWorks(t, dir, s, opts)
}

// TestZeroedFrameFollowedByValidOnesIsDamage checks that only zeros that
// run to the end of the file count as reserved space: a frame wiped to
// zeros with valid frames after it is damage, reported, never skipped.
func TestZeroedFrameFollowedByValidOnesIsDamage(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{SegmentSize: preallocSegment, Logger: quietLogger()})
	for i := uint64(1); i <= 9; i += 3 {
		require.NoError(t, s.StoreLogs(testBatch(i, i+2, 1)))
	}
	g := s.segments[0]
	second := int64(g.locs[3].off) - frameHeaderSize
	third := int64(g.locs[6].off) - frameHeaderSize
	require.NoError(t, s.Close())

	seg := segmentFiles(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(make([]byte, third-second), second)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = Open(dir, Options{SegmentSize: preallocSegment, Logger: quietLogger()})
	require.Error(t, err)
	require.ErrorContains(t, err, "corrupt")
}

// TestZerosWrittenAheadEndTheFrames appends across several zero-ahead
// chunks: the zeros written ahead of the frames must read back as the end
// of the log, and every frame must survive a reopen.
func TestZerosWrittenAheadEndTheFrames(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4 * zeroAheadBytes, Logger: quietLogger()}
	s := openTestStore(t, dir, opts)
	big := bytes.Repeat([]byte{0x5a}, 48<<10)
	want := logModel{}
	next := uint64(1)
	for written := 0; written < 5*zeroAheadBytes/2; written += len(big) {
		batch := testBatch(next, next+1, 1)
		batch[0].Extensions = big // bulk, so that few batches cross the chunks
		require.NoError(t, s.StoreLogs(batch))
		want.store(next, next+1, 1)
		next += 2
	}
	g := s.segments[0]
	require.Greater(t, g.zeroed, g.size, "zeros must be written ahead of the last frame")
	end := g.size
	require.Len(t, readLog(t, s), len(want))
	require.NoError(t, s.Close())

	b, err := os.ReadFile(segmentFiles(t, dir)[0])
	require.NoError(t, err)
	require.True(t, allZero(b[end:]))
	logger, logged := warnings()
	opts.Logger = logger
	s, err = Open(dir, opts)
	require.NoError(t, err)
	require.Equal(t, want, readLog(t, s))
	require.Empty(t, logged.String())
	requireAppendWorks(t, dir, s, opts)
}
