//go:build go1.25

package raft

// These tests run FileSnapshotStore against the real file system, in
// directories from t.TempDir(); nothing in them depends on timing.

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// testSnapshotConfiguration is the configuration most tests store.
var testSnapshotConfiguration = Configuration{Servers: []Server{
	{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:7000"},
	{Suffrage: Nonvoter, ID: "n2", Address: "127.0.0.1:7001"},
}}

// newTestFileStore returns a store under a fresh temporary directory, and
// that directory.
func newTestFileStore(t *testing.T, retain int) (*FileSnapshotStore, string) {
	t.Helper()
	base := t.TempDir()
	return reopenTestFileStore(t, base, retain), base
}

// reopenTestFileStore returns another store over base, as after a restart.
func reopenTestFileStore(t *testing.T, base string, retain int) *FileSnapshotStore {
	t.Helper()
	store, err := NewFileSnapshotStoreWithLogger(base, retain, hclog.NewNullLogger())
	require.NoError(t, err)
	return store
}

// writeTestSnapshot stores data as a snapshot at term and index, and returns
// its ID.
func writeTestSnapshot(t testing.TB, store *FileSnapshotStore, term, index uint64, data []byte) string {
	t.Helper()
	_, trans := NewInmemTransport("127.0.0.1:7000")
	sink, err := store.Create(1, index, term, testSnapshotConfiguration, 3, trans)
	require.NoError(t, err)
	_, err = sink.Write(data)
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	return sink.ID()
}

// readTestSnapshot opens id and returns its metadata and all its data.
func readTestSnapshot(t testing.TB, store *FileSnapshotStore, id string) (*SnapshotMeta, []byte) {
	t.Helper()
	meta, reader, err := store.Open(id)
	require.NoError(t, err)
	defer reader.Close()
	data, err := io.ReadAll(reader)
	require.NoError(t, err)
	return meta, data
}

// snapshotDirNames lists the entries of the store's snapshots directory.
func snapshotDirNames(t *testing.T, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(base, fileSnapshotDirName))
	require.NoError(t, err)
	var names []string
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	return names
}

// listedIDs returns the IDs List reports, in its order.
func listedIDs(t *testing.T, store *FileSnapshotStore) []string {
	t.Helper()
	metas, err := store.List()
	require.NoError(t, err)
	ids := []string{}
	for _, meta := range metas {
		ids = append(ids, meta.ID)
	}
	return ids
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	return buf
}

func TestFileSnapshotStoreRoundTripPreservesEveryField(t *testing.T) {
	cases := []struct {
		name   string
		data   []byte
		chunks int // how many Write calls the data is split over
	}{
		{"empty", nil, 1},
		{"small", []byte("hello snapshot"), 1},
		{"many small writes", randomBytes(10_000), 100},
		{"larger than the buffers", randomBytes(3*fileSnapshotBufferSize + 17), 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newTestFileStore(t, 2)
			_, trans := NewInmemTransport("127.0.0.1:7000")

			sink, err := store.Create(1, 100, 5, testSnapshotConfiguration, 3, trans)
			require.NoError(t, err)
			chunk := len(tc.data)/tc.chunks + 1
			for rest := tc.data; len(rest) > 0; {
				n := min(chunk, len(rest))
				written, err := sink.Write(rest[:n])
				require.NoError(t, err)
				require.Equal(t, n, written)
				rest = rest[n:]
			}
			require.NoError(t, sink.Close())

			want := &SnapshotMeta{
				Version:            1,
				ID:                 sink.ID(),
				Index:              100,
				Term:               5,
				Peers:              encodePeers(testSnapshotConfiguration, trans),
				Configuration:      testSnapshotConfiguration,
				ConfigurationIndex: 3,
				Size:               int64(len(tc.data)),
			}
			require.NotEmpty(t, want.Peers, "a configuration with a Voter has legacy peers")

			metas, err := store.List()
			require.NoError(t, err)
			require.Equal(t, []*SnapshotMeta{want}, metas)

			meta, data := readTestSnapshot(t, store, sink.ID())
			require.Equal(t, want, meta)
			require.Equal(t, len(tc.data), len(data))
			require.True(t, bytes.Equal(tc.data, data), "data read back differs from data written")
		})
	}
}

func TestFileSnapshotStoreWithoutTransportLeavesPeersEmpty(t *testing.T) {
	store, _ := newTestFileStore(t, 1)
	sink, err := store.Create(1, 7, 2, testSnapshotConfiguration, 1, nil)
	require.NoError(t, err)
	require.NoError(t, sink.Close())

	meta, data := readTestSnapshot(t, store, sink.ID())
	require.Nil(t, meta.Peers)
	require.Equal(t, testSnapshotConfiguration, meta.Configuration)
	require.Empty(t, data)
}

func TestFileSnapshotStoreCreateDoesNotShareCallersConfiguration(t *testing.T) {
	store, _ := newTestFileStore(t, 1)
	configuration := testSnapshotConfiguration.Clone()
	sink, err := store.Create(1, 7, 2, configuration, 1, nil)
	require.NoError(t, err)
	configuration.Servers[0].ID = "changed after Create"
	require.NoError(t, sink.Close())

	meta, _ := readTestSnapshot(t, store, sink.ID())
	require.Equal(t, testSnapshotConfiguration, meta.Configuration)
}

func TestFileSnapshotMetaJSONHasDocumentedLayout(t *testing.T) {
	store, base := newTestFileStore(t, 1)
	_, trans := NewInmemTransport("127.0.0.1:7000")
	configuration := Configuration{Servers: []Server{{Suffrage: Voter, ID: "n1", Address: "127.0.0.1:7000"}}}
	data := []byte("fourteen bytes")

	sink, err := store.Create(1, 100, 5, configuration, 3, trans)
	require.NoError(t, err)
	require.Regexp(t, `^5-100-[0-9]+$`, sink.ID())

	// While being written, the directory has the .tmp suffix and meta.json
	// has no size or CRC yet.
	tmpDir := filepath.Join(base, fileSnapshotDirName, sink.ID()+fileSnapshotTmpSuffix)
	early, err := os.ReadFile(filepath.Join(tmpDir, fileSnapshotMetaFile))
	require.NoError(t, err)
	require.Contains(t, string(early), `"Size":0,"CRC":null}`)

	_, err = sink.Write(data)
	require.NoError(t, err)
	require.NoError(t, sink.Close())
	require.NoDirExists(t, tmpDir)

	dir := filepath.Join(base, fileSnapshotDirName, sink.ID())
	state, err := os.ReadFile(filepath.Join(dir, fileSnapshotStateFile))
	require.NoError(t, err)
	require.Equal(t, data, state, "state.bin holds the raw FSM bytes")

	line, err := os.ReadFile(filepath.Join(dir, fileSnapshotMetaFile))
	require.NoError(t, err)
	layout := regexp.MustCompile(`^\{"Version":1,"ID":"` + regexp.QuoteMeta(sink.ID()) + `","Index":100,"Term":5,` +
		`"Peers":"([A-Za-z0-9+/=]+)",` +
		`"Configuration":\{"Servers":\[\{"Suffrage":0,"ID":"n1","Address":"127\.0\.0\.1:7000"\}\]\},` +
		`"ConfigurationIndex":3,"Size":14,"CRC":"([A-Za-z0-9+/=]+)"\}\n$`)
	match := layout.FindStringSubmatch(string(line))
	require.NotNil(t, match, "meta.json does not have the documented layout:\n%s", line)

	peers, err := base64.StdEncoding.DecodeString(match[1])
	require.NoError(t, err)
	require.Equal(t, encodePeers(configuration, trans), peers)

	crc, err := base64.StdEncoding.DecodeString(match[2])
	require.NoError(t, err)
	want := binary.BigEndian.AppendUint64(nil, crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)))
	require.Equal(t, want, crc, "CRC is the big-endian CRC-64 ECMA of state.bin")
}

func TestFileSnapshotStoreListIsNewestFirstByTermIndexID(t *testing.T) {
	store, _ := newTestFileStore(t, 10)
	// Written out of order; two share term 2 and index 5, so the ID (whose
	// last part grows with each Create) breaks the tie.
	low := writeTestSnapshot(t, store, 1, 10, []byte("a"))
	tieFirst := writeTestSnapshot(t, store, 2, 5, []byte("b"))
	mid := writeTestSnapshot(t, store, 1, 20, []byte("c"))
	tieSecond := writeTestSnapshot(t, store, 2, 5, []byte("d"))
	high := writeTestSnapshot(t, store, 3, 1, []byte("e"))

	require.Equal(t, []string{high, tieSecond, tieFirst, mid, low}, listedIDs(t, store))
}

func TestFileSnapshotStoreKeepsOnlyRetainSnapshots(t *testing.T) {
	for _, retain := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("retain=%d", retain), func(t *testing.T) {
			store, base := newTestFileStore(t, retain)
			var ids []string
			for i := range uint64(5) {
				ids = append(ids, writeTestSnapshot(t, store, 1, 10*(i+1), []byte{byte(i)}))
			}
			slices.Reverse(ids)
			newest := ids[:retain]

			require.Equal(t, newest, listedIDs(t, store))
			require.ElementsMatch(t, newest, snapshotDirNames(t, base), "older snapshots are deleted from disk")
			for i, id := range newest {
				_, data := readTestSnapshot(t, store, id)
				require.Equal(t, []byte{byte(4 - i)}, data)
			}
		})
	}
}

func TestFileSnapshotStoreListReturnsAtMostRetain(t *testing.T) {
	wide, base := newTestFileStore(t, 5)
	var ids []string
	for i := range uint64(4) {
		ids = append(ids, writeTestSnapshot(t, wide, 1, i+1, nil))
	}
	slices.Reverse(ids)

	narrow := reopenTestFileStore(t, base, 2)
	require.Equal(t, ids[:2], listedIDs(t, narrow))
	require.Len(t, snapshotDirNames(t, base), 4, "List alone deletes nothing")

	require.NoError(t, narrow.ReapSnapshots())
	require.ElementsMatch(t, ids[:2], snapshotDirNames(t, base))
	require.Equal(t, ids[:2], listedIDs(t, wide))
}

func TestFileSnapshotStoreReapRemovesOnlyStaleAbandonedTmpDirs(t *testing.T) {
	store, base := newTestFileStore(t, 1)
	dir := filepath.Join(base, fileSnapshotDirName)
	kept := writeTestSnapshot(t, store, 2, 50, nil)

	abandoned := []struct {
		name    string
		removed bool
	}{
		{"1-99-1000.tmp", true},  // older term
		{"2-49-1000.tmp", true},  // same term, older index
		{"2-50-1.tmp", false},    // same term and index: might still win
		{"2-51-1000.tmp", false}, // newer: might be finished by someone
		{"3-1-1000.tmp", false},  // newer term
		{"junk.tmp", false},      // not a snapshot name
	}
	for _, a := range abandoned {
		require.NoError(t, os.Mkdir(filepath.Join(dir, a.name), 0o755))
	}
	// A sink of this store that is still writing an old snapshot (as when a
	// slow InstallSnapshot overlaps a newer local snapshot) is never reaped.
	inProgress, err := store.Create(1, 1, 1, Configuration{}, 0, nil)
	require.NoError(t, err)

	require.NoError(t, store.ReapSnapshots())

	names := snapshotDirNames(t, base)
	require.Contains(t, names, kept)
	require.Contains(t, names, inProgress.ID()+fileSnapshotTmpSuffix)
	for _, a := range abandoned {
		if a.removed {
			require.NotContains(t, names, a.name)
		} else {
			require.Contains(t, names, a.name)
		}
	}
	require.NoError(t, inProgress.Close())
	require.Equal(t, []string{kept}, listedIDs(t, store), "the older snapshot is reaped once closed")
}

func TestFileSnapshotSinkCancelRemovesTempDir(t *testing.T) {
	store, base := newTestFileStore(t, 2)
	sink, err := store.Create(1, 10, 1, testSnapshotConfiguration, 1, nil)
	require.NoError(t, err)
	_, err = sink.Write([]byte("partial"))
	require.NoError(t, err)
	require.Len(t, snapshotDirNames(t, base), 1)

	require.NoError(t, sink.Cancel())
	require.Empty(t, snapshotDirNames(t, base))
	require.Empty(t, listedIDs(t, store))

	require.NoError(t, sink.Cancel(), "a second Cancel is a no-op")
	_, err = sink.Write([]byte("more"))
	require.ErrorIs(t, err, errFileSnapshotSinkDone)
	require.ErrorContains(t, sink.Close(), "cancelled", "Close after Cancel must not report success")
	require.Empty(t, snapshotDirNames(t, base))
}

func TestFileSnapshotSinkCloseTwiceAndCancelAfterClose(t *testing.T) {
	store, _ := newTestFileStore(t, 2)
	sink, err := store.Create(1, 10, 1, testSnapshotConfiguration, 1, nil)
	require.NoError(t, err)
	_, err = sink.Write([]byte("data"))
	require.NoError(t, err)
	require.NoError(t, sink.Close())

	// FSMs commonly close the sink in Persist, after which raft closes (or,
	// on error, cancels) it again; neither may undo the snapshot.
	require.NoError(t, sink.Close())
	require.NoError(t, sink.Cancel())
	_, err = sink.Write([]byte("late"))
	require.ErrorIs(t, err, errFileSnapshotSinkDone)

	_, data := readTestSnapshot(t, store, sink.ID())
	require.Equal(t, []byte("data"), data)
}

func TestFileSnapshotSinkCloseFailureLeavesNothingVisible(t *testing.T) {
	store, base := newTestFileStore(t, 2)
	sink, err := store.Create(1, 10, 1, testSnapshotConfiguration, 1, nil)
	require.NoError(t, err)
	_, err = sink.Write([]byte("data"))
	require.NoError(t, err)

	// Something removes the directory under the writer: meta.json can no
	// longer be written, so Close must fail rather than claim durability.
	tmpDir := filepath.Join(base, fileSnapshotDirName, sink.ID()+fileSnapshotTmpSuffix)
	require.NoError(t, os.RemoveAll(tmpDir))

	err = sink.Close()
	require.Error(t, err)
	require.Equal(t, err, sink.Close(), "a second Close repeats the failure")
	require.Empty(t, listedIDs(t, store))
	require.Empty(t, snapshotDirNames(t, base))
}

func TestFileSnapshotStoreIDsAreUniqueWithinOneMillisecond(t *testing.T) {
	base := t.TempDir()
	// Two stores over one directory, as well as one store creating in a
	// tight loop, must never hand out the same ID.
	stores := []*FileSnapshotStore{reopenTestFileStore(t, base, 100), reopenTestFileStore(t, base, 100)}
	seen := map[string]bool{}
	var sinks []SnapshotSink
	for i := range 40 {
		sink, err := stores[i%2].Create(1, 5, 3, Configuration{}, 0, nil)
		require.NoError(t, err)
		require.False(t, seen[sink.ID()], "ID %s handed out twice", sink.ID())
		seen[sink.ID()] = true
		sinks = append(sinks, sink)
	}
	for _, sink := range sinks {
		require.NoError(t, sink.Close())
	}
	require.Len(t, listedIDs(t, stores[0]), 40)
}

func TestFileSnapshotStoreConcurrentCreateListOpen(t *testing.T) {
	const (
		writers   = 4
		perWriter = 8
		retain    = 3
	)
	store, _ := newTestFileStore(t, retain)
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*4)

	for range writers {
		wg.Go(func() {
			for i := range perWriter {
				sink, err := store.Create(1, 100, 1, testSnapshotConfiguration, 1, nil)
				if err != nil {
					errs <- err
					return
				}
				if _, err := sink.Write([]byte(sink.ID())); err != nil {
					errs <- err
				}
				if i%4 == 3 {
					errs <- sink.Cancel()
				} else {
					errs <- sink.Close()
				}
			}
		})
	}
	for range writers {
		wg.Go(func() {
			for range perWriter * 2 {
				metas, err := store.List()
				if err != nil {
					errs <- err
					return
				}
				if len(metas) > retain {
					errs <- fmt.Errorf("List returned %d snapshots, retain is %d", len(metas), retain)
				}
				for _, meta := range metas {
					_, reader, err := store.Open(meta.ID)
					if errors.Is(err, os.ErrNotExist) {
						continue // reaped since List; that is allowed
					}
					if err != nil {
						errs <- fmt.Errorf("open listed snapshot %s: %w", meta.ID, err)
						continue
					}
					data, err := io.ReadAll(reader)
					reader.Close()
					if err == nil && string(data) != meta.ID {
						err = fmt.Errorf("snapshot %s holds %q", meta.ID, data)
					}
					if err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	ids := listedIDs(t, store)
	require.Len(t, ids, retain)
	for _, id := range ids {
		_, data := readTestSnapshot(t, store, id)
		require.Equal(t, id, string(data))
	}
}
