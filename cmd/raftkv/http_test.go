package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// fastTimeouts shortens Raft's timers so that a single-node test cluster
// elects itself in tens of milliseconds.
func fastTimeouts(c *raft.Config) {
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// startTestNode opens a single node over loopback TCP with a wal in a temp
// dir. With bootstrap it waits (real time, bounded) until the node leads;
// without it the node has no configuration and never learns a leader.
func startTestNode(t *testing.T, bootstrap bool) *node {
	t.Helper()
	n, err := openNode(nodeConfig{
		ID:        "n1",
		RaftAddr:  "127.0.0.1:0",
		DataDir:   t.TempDir(),
		Bootstrap: bootstrap,
		Tune:      fastTimeouts,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.close(false)) })
	if bootstrap {
		require.Eventually(t, n.isLeader, 10*time.Second, 5*time.Millisecond, "single node did not elect itself")
	}
	return n
}

// call sends one request and returns the status and the body.
func call(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// requireJSONError checks that an error answer has the documented shape and
// returns its message.
func requireJSONError(t *testing.T, body string) string {
	t.Helper()
	var e errorBody
	require.NoError(t, json.Unmarshal([]byte(body), &e), "error body is not JSON: %q", body)
	require.NotEmpty(t, e.Error, "error body has no message: %q", body)
	return e.Error
}

type badRequest struct {
	name   string
	method string
	path   string
	body   string
	header []string
	status int
	errMsg string // a substring of the error message
}

func runBadRequests(t *testing.T, url string, cases []badRequest) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, tc.method, url+tc.path, tc.body, tc.header...)
			require.Equal(t, tc.status, status, "body: %s", body)
			require.Contains(t, requireJSONError(t, body), tc.errMsg)
		})
	}
}

func TestBadRequestsGetDocumentedStatusAndJSONError(t *testing.T) {
	n := startTestNode(t, true)
	ts := httptest.NewServer(newAPI(n, 16, nil))
	defer ts.Close()
	status, _ := call(t, http.MethodPut, ts.URL+"/v1/kv/present", "v")
	require.Equal(t, http.StatusOK, status)

	runBadRequests(t, ts.URL, []badRequest{
		{"value over the limit", "PUT", "/v1/kv/k", strings.Repeat("v", 17), nil, 413, "16-byte limit"},
		{"empty key", "PUT", "/v1/kv/", "v", nil, 400, "key must not be empty"},
		{"key too long", "PUT", "/v1/kv/" + strings.Repeat("k", maxKeyBytes+1), "v", nil, 400, "1024-byte limit"},
		{"unknown key", "GET", "/v1/kv/missing", "", nil, 404, "key not found"},
		{"unknown key, stale", "GET", "/v1/kv/missing?consistency=stale", "", nil, 404, "key not found"},
		{"bad consistency", "GET", "/v1/kv/present?consistency=eventual", "", nil, 400, "consistency must be"},
		{"wrong method on a key", "PATCH", "/v1/kv/present", "", nil, 405, "use GET, PUT, DELETE"},
		{"list limit zero", "GET", "/v1/kv?limit=0", "", nil, 400, "limit must be"},
		{"list limit not a number", "GET", "/v1/kv?limit=ten", "", nil, 400, "limit must be"},
		{"list limit too large", "GET", "/v1/kv?limit=10001", "", nil, 400, "limit must be"},
		{"list bad consistency", "GET", "/v1/kv?consistency=x", "", nil, 400, "consistency must be"},
		{"join with bad JSON", "POST", "/v1/cluster/join", `{"id":`, nil, 400, "bad JSON"},
		{"join with no body", "POST", "/v1/cluster/join", "", nil, 400, "bad JSON"},
		{"join without addr", "POST", "/v1/cluster/join", `{"id":"n2"}`, nil, 400, `"addr" are required`},
		{"join with a bad addr", "POST", "/v1/cluster/join", `{"id":"n2","addr":"nowhere"}`, nil, 400, "not host:port"},
		{"join with an unknown field", "POST", "/v1/cluster/join", `{"id":"n2","addr":"127.0.0.1:1","voter":true}`, nil, 400, "unknown field"},
		{"join with trailing data", "POST", "/v1/cluster/join", `{"id":"n2","addr":"127.0.0.1:1"} {}`, nil, 400, "data after"},
		{"join body too large", "POST", "/v1/cluster/join", `{"id":"` + strings.Repeat("x", maxJSONBody) + `"}`, nil, 413, "limit"},
		{"join with GET", "GET", "/v1/cluster/join", "", nil, 405, "use POST"},
		{"remove an unknown server", "DELETE", "/v1/cluster/ghost", "", nil, 404, "no server with ID ghost"},
		{"transfer to an unknown server", "POST", "/v1/cluster/transfer", `{"id":"ghost"}`, nil, 404, "no server with ID ghost"},
		{"transfer with bad JSON", "POST", "/v1/cluster/transfer", `[`, nil, 400, "bad JSON"},
		{"transfer without another voter", "POST", "/v1/cluster/transfer", "", nil, 409, "no other voter"},
		{"transfer to the leader itself", "POST", "/v1/cluster/transfer", `{"id":"n1"}`, nil, 409, "n1 already leads"},
		{"cluster with POST", "POST", "/v1/cluster", "", nil, 405, "use GET"},
		{"unknown endpoint", "GET", "/v2/kv/k", "", nil, 404, "no such endpoint"},
		{"metrics not enabled", "GET", "/metrics", "", nil, 404, "not enabled"},
	})
}

func TestNodeWithoutLeaderAnswers503(t *testing.T) {
	n := startTestNode(t, false)
	ts := httptest.NewServer(newAPI(n, 1<<20, nil))
	defer ts.Close()

	runBadRequests(t, ts.URL, []badRequest{
		{"write", "PUT", "/v1/kv/k", "v", nil, 503, "no leader"},
		{"delete", "DELETE", "/v1/kv/k", "", nil, 503, "no leader"},
		{"linearizable read", "GET", "/v1/kv/k", "", nil, 503, "no leader"},
		{"linearizable list", "GET", "/v1/kv?prefix=a", "", nil, 503, "no leader"},
		{"join", "POST", "/v1/cluster/join", `{"id":"n2","addr":"127.0.0.1:1"}`, nil, 503, "no leader"},
		{"remove", "DELETE", "/v1/cluster/n2", "", nil, 503, "no leader"},
		{"transfer", "POST", "/v1/cluster/transfer", "", nil, 503, "no leader"},
		{"health", "GET", "/healthz", "", nil, 503, "no leader"},
		{"forwarded to a non-leader", "PUT", "/v1/kv/k", "v", []string{forwardedHeader, "n2"}, 503, "no longer leads"},
		// A stale read needs no leader: the key is simply not there.
		{"stale read", "GET", "/v1/kv/k?consistency=stale", "", nil, 404, "key not found"},
	})

	status, body := call(t, http.MethodGet, ts.URL+"/v1/cluster", "")
	require.Equal(t, http.StatusOK, status)
	var info clusterInfo
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	require.Nil(t, info.Leader)
	require.Equal(t, "Follower", info.State)
}

func TestKeyValueOperations(t *testing.T) {
	n := startTestNode(t, true)
	metrics, err := installMetrics()
	require.NoError(t, err)
	ts := httptest.NewServer(newAPI(n, 1<<20, metrics))
	defer ts.Close()

	getJSON := func(path string, v any) {
		t.Helper()
		status, body := call(t, http.MethodGet, ts.URL+path, "")
		require.Equal(t, http.StatusOK, status, "GET %s: %s", path, body)
		require.NoError(t, json.Unmarshal([]byte(body), v))
	}
	put := func(key, value string) uint64 {
		t.Helper()
		status, body := call(t, http.MethodPut, ts.URL+"/v1/kv/"+key, value)
		require.Equal(t, http.StatusOK, status, body)
		var resp indexResponse
		require.NoError(t, json.Unmarshal([]byte(body), &resp))
		require.NotZero(t, resp.Index)
		return resp.Index
	}

	first := put("greeting", "hello")
	second := put("greeting", "hello, world")
	require.Greater(t, second, first)
	for _, consistency := range []string{"", "?consistency=linearizable", "?consistency=stale"} {
		var got kvResponse
		getJSON("/v1/kv/greeting"+consistency, &got)
		require.Equal(t, kvResponse{Key: "greeting", Value: "hello, world"}, got)
	}

	// Keys may contain slashes; values may be any bytes.
	put("dir/binary", "\xff\x00\xfe")
	var bin kvResponse
	getJSON("/v1/kv/dir/binary", &bin)
	require.Empty(t, bin.Value)
	decoded, err := base64.StdEncoding.DecodeString(bin.ValueBase64)
	require.NoError(t, err)
	require.Equal(t, []byte("\xff\x00\xfe"), decoded)

	put("dir/a", "1")
	put("dir/b", "2")
	var page listResponse
	getJSON("/v1/kv?prefix=dir/&limit=2", &page)
	require.True(t, page.More)
	require.Equal(t, []kvResponse{{Key: "dir/a", Value: "1"}, {Key: "dir/b", Value: "2"}}, page.Items)
	getJSON("/v1/kv?prefix=dir/&limit=2&after=dir/b&consistency=stale", &page)
	require.False(t, page.More)
	require.Len(t, page.Items, 1)
	require.Equal(t, "dir/binary", page.Items[0].Key)

	status, body := call(t, http.MethodDelete, ts.URL+"/v1/kv/greeting", "")
	require.Equal(t, http.StatusOK, status, body)
	status, body = call(t, http.MethodGet, ts.URL+"/v1/kv/greeting", "")
	require.Equal(t, http.StatusNotFound, status, body)

	var info clusterInfo
	getJSON("/v1/cluster", &info)
	require.Equal(t, "n1", info.ID)
	require.Equal(t, "Leader", info.State)
	require.NotNil(t, info.Leader)
	require.Equal(t, "n1", info.Leader.ID)
	require.Len(t, info.Members, 1)
	require.Equal(t, 3, info.Keys)
	require.GreaterOrEqual(t, info.AppliedIndex, second)

	var health map[string]string
	getJSON("/healthz", &health)
	require.Equal(t, "ok", health["status"])

	status, body = call(t, http.MethodGet, ts.URL+"/metrics", "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "raft_apply", "the library's metrics should reach the Prometheus sink")
	require.Contains(t, body, "go_goroutines")
}
