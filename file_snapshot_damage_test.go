//go:build go1.25

package raft

// These tests give FileSnapshotStore what a crash, a bad disk or a careless
// caller leaves behind (interrupted writes, corrupt data, bad metadata, bad
// IDs, unusable directories) and check that it reports each one clearly. They
// use the real file system, in directories from t.TempDir(); nothing in them
// depends on timing.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFileSnapshotStoreIgnoresInterruptedWrites(t *testing.T) {
	store, base := newTestFileStore(t, 2)
	complete := writeTestSnapshot(t, store, 1, 10, []byte("complete"))

	// A crash in the middle of a write leaves a .tmp directory whose
	// meta.json has no CRC yet.
	crashed, err := store.Create(1, 20, 1, testSnapshotConfiguration, 1, nil)
	require.NoError(t, err)
	_, err = crashed.Write([]byte("half of the"))
	require.NoError(t, err)

	// A crash between the final meta.json and the rename leaves a .tmp
	// directory that looks complete inside.
	renamedBack := writeTestSnapshot(t, store, 1, 30, []byte("finished"))
	dir := filepath.Join(base, fileSnapshotDirName)
	require.NoError(t, os.Rename(filepath.Join(dir, renamedBack), filepath.Join(dir, renamedBack+fileSnapshotTmpSuffix)))

	restarted := reopenTestFileStore(t, base, 2)
	require.Equal(t, []string{complete}, listedIDs(t, restarted))

	_, _, err = restarted.Open(crashed.ID())
	require.ErrorIs(t, err, os.ErrNotExist)
	_, _, err = restarted.Open(crashed.ID() + fileSnapshotTmpSuffix)
	require.ErrorContains(t, err, "invalid snapshot id")
}

func TestFileSnapshotStoreDetectsCorruptData(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		wantErr string
	}{
		{
			name: "flipped byte in state.bin",
			corrupt: func(t *testing.T, dir string) {
				name := filepath.Join(dir, fileSnapshotStateFile)
				data, err := os.ReadFile(name)
				require.NoError(t, err)
				data[len(data)/2] ^= 0x01
				require.NoError(t, os.WriteFile(name, data, 0o644))
			},
			wantErr: "CRC mismatch",
		},
		{
			name: "truncated state.bin",
			corrupt: func(t *testing.T, dir string) {
				require.NoError(t, os.Truncate(filepath.Join(dir, fileSnapshotStateFile), 3))
			},
			wantErr: "truncated",
		},
		{
			name: "state.bin with bytes appended",
			corrupt: func(t *testing.T, dir string) {
				file, err := os.OpenFile(filepath.Join(dir, fileSnapshotStateFile), os.O_WRONLY|os.O_APPEND, 0)
				require.NoError(t, err)
				_, err = file.Write([]byte("extra"))
				require.NoError(t, err)
				require.NoError(t, file.Close())
			},
			wantErr: "metadata records",
		},
		{
			name: "missing state.bin",
			corrupt: func(t *testing.T, dir string) {
				require.NoError(t, os.Remove(filepath.Join(dir, fileSnapshotStateFile)))
			},
			wantErr: "no such file",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store, base := newTestFileStore(t, 2)
			id := writeTestSnapshot(t, store, 1, 10, []byte("some snapshot data"))
			tc.corrupt(t, filepath.Join(base, fileSnapshotDirName, id))

			meta, reader, err := store.Open(id)
			require.ErrorContains(t, err, tc.wantErr)
			require.Nil(t, meta)
			require.Nil(t, reader)
		})
	}
}

func TestFileSnapshotStoreRejectsBadMetadata(t *testing.T) {
	// Each case rewrites the meta.json of a good snapshot; List must skip it
	// (still listing the good older one) and Open must fail.
	cases := []struct {
		name    string
		rewrite func(good string, id string) string
		wantErr string
	}{
		{"empty", func(string, string) string { return "" }, "decode metadata"},
		{"not JSON", func(string, string) string { return "\x00\xff garbage" }, "decode metadata"},
		{"cut short", func(good, _ string) string { return good[:len(good)/2] }, "decode metadata"},
		{"wrong field type", func(good, _ string) string {
			return strings.Replace(good, `"Index":20`, `"Index":"twenty"`, 1)
		}, "decode metadata"},
		{"negative index", func(good, _ string) string {
			return strings.Replace(good, `"Index":20`, `"Index":-20`, 1)
		}, "decode metadata"},
		{"CRC not base64", func(good, _ string) string {
			return regexp.MustCompile(`"CRC":"[^"]*"`).ReplaceAllString(good, `"CRC":"***"`)
		}, "decode metadata"},
		{"CRC missing", func(good, _ string) string {
			return regexp.MustCompile(`"CRC":"[^"]*"`).ReplaceAllString(good, `"CRC":null`)
		}, "0-byte CRC"},
		{"CRC too short", func(good, _ string) string {
			return regexp.MustCompile(`"CRC":"[^"]*"`).ReplaceAllString(good, `"CRC":"AAAA"`)
		}, "3-byte CRC"},
		{"negative size", func(good, _ string) string {
			return regexp.MustCompile(`"Size":[0-9]+`).ReplaceAllString(good, `"Size":-1`)
		}, "negative size"},
		{"ID of another directory", func(good, id string) string {
			return strings.Replace(good, id, "9-9-9", 1)
		}, `names snapshot "9-9-9"`},
		{"unsupported version", func(good, _ string) string {
			return strings.Replace(good, `"Version":1`, `"Version":2`, 1)
		}, "unsupported snapshot version 2"},
		{"negative version", func(good, _ string) string {
			return strings.Replace(good, `"Version":1`, `"Version":-1`, 1)
		}, "unsupported snapshot version -1"},
		{"oversized", func(good, _ string) string {
			return good[:len(good)-2] + `,"Pad":"` + strings.Repeat("x", fileSnapshotMetaLimit) + `"}`
		}, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store, base := newTestFileStore(t, 5)
			older := writeTestSnapshot(t, store, 1, 10, []byte("older"))
			id := writeTestSnapshot(t, store, 1, 20, []byte("newer"))
			name := filepath.Join(base, fileSnapshotDirName, id, fileSnapshotMetaFile)
			good, err := os.ReadFile(name)
			require.NoError(t, err)
			bad := tc.rewrite(string(good), id)
			require.NotEqual(t, string(good), bad, "the case must change meta.json")
			require.NoError(t, os.WriteFile(name, []byte(bad), 0o644))

			require.Equal(t, []string{older}, listedIDs(t, store))
			_, _, err = store.Open(id)
			require.ErrorContains(t, err, tc.wantErr)

			// Reaping leaves the unreadable snapshot for an operator.
			require.NoError(t, reopenTestFileStore(t, base, 1).ReapSnapshots())
			require.ElementsMatch(t, []string{older, id}, snapshotDirNames(t, base))
		})
	}
}

func TestFileSnapshotStoreReadsVersionZeroMetadata(t *testing.T) {
	store, base := newTestFileStore(t, 2)
	id := writeTestSnapshot(t, store, 1, 10, []byte("old format"))
	name := filepath.Join(base, fileSnapshotDirName, id, fileSnapshotMetaFile)
	good, err := os.ReadFile(name)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(name, bytes.Replace(good, []byte(`"Version":1`), []byte(`"Version":0`), 1), 0o644))

	metas, err := store.List()
	require.NoError(t, err)
	require.Len(t, metas, 1)
	require.Equal(t, SnapshotVersion(0), metas[0].Version)
	meta, data := readTestSnapshot(t, store, id)
	require.Equal(t, SnapshotVersion(0), meta.Version)
	require.Equal(t, []byte("old format"), data)
}

func TestFileSnapshotStoreCreateOnlyAcceptsVersionOne(t *testing.T) {
	for _, version := range []SnapshotVersion{-1, 0, 2, 100} {
		t.Run(fmt.Sprint(version), func(t *testing.T) {
			store, base := newTestFileStore(t, 1)
			sink, err := store.Create(version, 1, 1, testSnapshotConfiguration, 1, nil)
			require.EqualError(t, err, fmt.Sprintf("unsupported snapshot version %d", version))
			require.Nil(t, sink)
			require.Empty(t, snapshotDirNames(t, base), "a rejected Create leaves nothing on disk")
		})
	}
}

func TestFileSnapshotStoreOpenRejectsBadIDs(t *testing.T) {
	store, base := newTestFileStore(t, 1)
	id := writeTestSnapshot(t, store, 1, 1, []byte("x"))
	// A real snapshot one level up must not be reachable through "..".
	outside := reopenTestFileStore(t, filepath.Join(base, fileSnapshotDirName, "nested"), 1)
	writeTestSnapshot(t, outside, 1, 2, []byte("y"))

	for _, bad := range []string{"", ".", "..", "../" + id, "nested/snapshots", id + "/..", `a\b`, id + ".tmp"} {
		_, reader, err := store.Open(bad)
		require.ErrorContains(t, err, "invalid snapshot id", "id %q", bad)
		require.Nil(t, reader)
	}
	_, _, err := store.Open("7-7-7")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestNewFileSnapshotStoreErrors(t *testing.T) {
	t.Run("retain below one", func(t *testing.T) {
		for _, retain := range []int{0, -1} {
			store, err := NewFileSnapshotStore(t.TempDir(), retain, io.Discard)
			require.EqualError(t, err, "must retain at least one snapshot")
			require.Nil(t, store)
		}
	})
	t.Run("directory not writable", func(t *testing.T) {
		// A non-empty directory named permTest makes the write test fail
		// even for root, for whom permission bits are no obstacle.
		base := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(base, fileSnapshotDirName, fileSnapshotPermTest, "x"), 0o755))
		store, err := NewFileSnapshotStore(base, 1, io.Discard)
		require.ErrorContains(t, err, "permissions test failed: ")
		require.Nil(t, store)
	})
	t.Run("base is a file", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "file")
		require.NoError(t, os.WriteFile(base, nil, 0o644))
		store, err := NewFileSnapshotStore(base, 1, io.Discard)
		require.Error(t, err)
		require.Nil(t, store)
	})
	t.Run("nil logger and output are allowed", func(t *testing.T) {
		base := t.TempDir()
		_, err := NewFileSnapshotStore(base, 1, nil)
		require.NoError(t, err)
		_, err = NewFileSnapshotStoreWithLogger(base, 1, nil)
		require.NoError(t, err)
		require.Empty(t, snapshotDirNames(t, base), "the write test removes its file")
	})
}
