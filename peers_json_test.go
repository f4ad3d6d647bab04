//go:build go1.25

package raft

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writePeersFile writes contents to peers.json in a fresh temporary directory
// and returns its path.
func writePeersFile(t *testing.T, contents string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers.json")
	require.NoError(t, os.WriteFile(path, []byte(contents), 0o600))
	return path
}

func TestReadPeersJSON(t *testing.T) {
	cases := []struct {
		name     string
		contents string
		want     Configuration
		wantErr  string
	}{
		{
			name:     "every address becomes a voter named by its address",
			contents: `["127.0.0.1:8300", "127.0.0.2:8300"]` + "\n",
			want: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "127.0.0.1:8300", Address: "127.0.0.1:8300"},
				{Suffrage: Voter, ID: "127.0.0.2:8300", Address: "127.0.0.2:8300"},
			}},
		},
		{name: "empty file", contents: "", wantErr: "file is empty"},
		{name: "whitespace only", contents: " \n", wantErr: "file is empty"},
		{name: "truncated array", contents: `["127.0.0.1:8300"`, wantErr: "malformed JSON"},
		{name: "not an array", contents: `{"a": 1}`, wantErr: "malformed JSON"},
		{name: "numbers instead of strings", contents: `[8300]`, wantErr: "malformed JSON"},
		{name: "new format given to the legacy reader", contents: `[{"id":"a","address":"1"}]`, wantErr: "malformed JSON"},
		{name: "data after the array", contents: `["127.0.0.1:8300"] ["x"]`, wantErr: "unexpected data after"},
		{name: "empty array", contents: `[]`, wantErr: "need at least one voter in configuration"},
		{name: "null", contents: `null`, wantErr: "need at least one voter in configuration"},
		{name: "empty address", contents: `["127.0.0.1:8300", ""]`, wantErr: "empty ID in configuration"},
		{name: "duplicate address", contents: `["127.0.0.1:8300", "127.0.0.1:8300"]`, wantErr: "found duplicate ID in configuration: 127.0.0.1:8300"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writePeersFile(t, tc.contents)
			configuration, err := ReadPeersJSON(path)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, configuration)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "raft: read peers: ")
			require.Contains(t, err.Error(), tc.wantErr)
			require.Contains(t, err.Error(), path, "the error should name the file")
			require.Equal(t, Configuration{}, configuration)
		})
	}
}

func TestReadConfigJSON(t *testing.T) {
	cases := []struct {
		name     string
		contents string
		want     Configuration
		wantErr  string
	}{
		{
			name: "voters and nonvoters in file order",
			contents: `[
  {"id": "a", "address": "10.0.0.1:8300", "non_voter": false},
  {"id": "b", "address": "10.0.0.2:8300", "non_voter": true},
  {"id": "c", "address": "10.0.0.3:8300"}
]`,
			want: Configuration{Servers: []Server{
				{Suffrage: Voter, ID: "a", Address: "10.0.0.1:8300"},
				{Suffrage: Nonvoter, ID: "b", Address: "10.0.0.2:8300"},
				{Suffrage: Voter, ID: "c", Address: "10.0.0.3:8300"},
			}},
		},
		{name: "empty file", contents: "", wantErr: "file is empty"},
		{name: "truncated", contents: `[{"id": "a", "address": "1"`, wantErr: "malformed JSON"},
		{name: "legacy format given to the new reader", contents: `["10.0.0.1:8300"]`, wantErr: "malformed JSON"},
		{name: "non_voter not a bool", contents: `[{"id": "a", "address": "1", "non_voter": "yes"}]`, wantErr: "malformed JSON"},
		{name: "misspelt key", contents: `[{"id": "a", "address": "1"}, {"id": "b", "address": "2", "nonvoter": true}]`, wantErr: `unknown field "nonvoter"`},
		{name: "data after the array", contents: `[{"id": "a", "address": "1"}],`, wantErr: "unexpected data after"},
		{name: "empty array", contents: `[]`, wantErr: "need at least one voter in configuration"},
		{name: "only nonvoters", contents: `[{"id": "a", "address": "1", "non_voter": true}]`, wantErr: "need at least one voter in configuration"},
		{name: "missing id", contents: `[{"address": "1"}]`, wantErr: "empty ID in configuration"},
		{name: "missing address", contents: `[{"id": "a"}]`, wantErr: "empty address in configuration"},
		{name: "duplicate id", contents: `[{"id": "a", "address": "1"}, {"id": "a", "address": "2"}]`, wantErr: "found duplicate ID in configuration: a"},
		{name: "duplicate address", contents: `[{"id": "a", "address": "1"}, {"id": "b", "address": "1"}]`, wantErr: "found duplicate address in configuration: 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writePeersFile(t, tc.contents)
			configuration, err := ReadConfigJSON(path)
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, configuration)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "raft: read config: ")
			require.Contains(t, err.Error(), tc.wantErr)
			require.Contains(t, err.Error(), path, "the error should name the file")
			require.Equal(t, Configuration{}, configuration)
		})
	}
}

func TestPeersJSONReadersReportUnreadableFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.json")
	readers := map[string]func(string) (Configuration, error){
		"ReadPeersJSON":  ReadPeersJSON,
		"ReadConfigJSON": ReadConfigJSON,
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{missing, t.TempDir()} { // absent, then a directory
				configuration, err := read(path)
				require.Error(t, err, "reading %s", path)
				require.Contains(t, err.Error(), path)
				require.Equal(t, Configuration{}, configuration)
			}
			_, err := read(missing)
			require.ErrorIs(t, err, os.ErrNotExist, "callers can tell a missing file apart")
		})
	}
}
