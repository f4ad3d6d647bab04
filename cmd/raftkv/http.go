package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/quorumkit/raft"
)

const (
	// maxKeyBytes bounds the length of a key.
	maxKeyBytes = 1024
	// maxJSONBody bounds the body of the cluster endpoints.
	maxJSONBody = 64 << 10
	// defaultListLimit and maxListLimit bound GET /v1/kv.
	defaultListLimit = 1000
	maxListLimit     = 10000
	// forwardedHeader marks a request one node forwarded to the leader; a
	// node that receives one and does not lead answers 503 instead of
	// forwarding again, so requests never loop during an election.
	forwardedHeader = "X-Raftkv-Forwarded-By"
)

// api serves the HTTP interface of one node.
type api struct {
	node     *node
	maxValue int64         // largest accepted value, in bytes
	timeout  time.Duration // bound on each request's wait for Raft
	metrics  http.Handler  // serves GET /metrics; nil answers 404
	client   *http.Client  // forwards requests to the leader
}

// newAPI returns the HTTP handler of n.
func newAPI(n *node, maxValue int64, metrics http.Handler) http.Handler {
	const timeout = 10 * time.Second
	a := &api{
		node:     n,
		maxValue: maxValue,
		timeout:  timeout,
		metrics:  metrics,
		client:   &http.Client{Timeout: timeout + 5*time.Second},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/kv/{key...}", a.handleKey)
	mux.HandleFunc("/v1/kv", a.handleList)
	mux.HandleFunc("/v1/cluster", a.handleCluster)
	mux.HandleFunc("/v1/cluster/join", a.handleJoin)
	mux.HandleFunc("/v1/cluster/transfer", a.handleTransfer)
	mux.HandleFunc("/v1/cluster/{id}", a.handleRemove)
	mux.HandleFunc("/metrics", a.handleMetrics)
	mux.HandleFunc("/healthz", a.handleHealth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return mux
}

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// allowMethods answers 405 unless r uses one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	allow := methods[0]
	for _, m := range methods[1:] {
		allow += ", " + m
	}
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; use %s", r.Method, allow))
	return false
}

// writeRaftError maps an error from Raft or from the wait for it to a status.
func writeRaftError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, raft.ErrLeadershipLost):
		writeError(w, http.StatusServiceUnavailable, err.Error()+"; the operation may or may not have taken effect")
	case errors.Is(err, errNoLeader), errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, raft.ErrReadTimeout):
		writeError(w, http.StatusGatewayTimeout, "timed out waiting for the cluster; the operation may or may not have taken effect")
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// runOnLeader serves r on this node if it leads and otherwise forwards it,
// with body, to the leader and relays the answer. It returns true when the
// request has been answered by forwarding or an error.
func (a *api) runOnLeader(w http.ResponseWriter, r *http.Request, body []byte) bool {
	if a.node.isLeader() {
		return false
	}
	if by := r.Header.Get(forwardedHeader); by != "" {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%v: %s forwarded this request here, but this node no longer leads", raft.ErrNotLeader, by))
		return true
	}
	leader, err := a.node.leaderHTTPAddr()
	if err != nil {
		writeRaftError(w, err)
		return true
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+leader+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return true
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set(forwardedHeader, a.node.id)
	resp, err := a.client.Do(req)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("forward to the leader at %s: %v; the operation may or may not have taken effect", leader, err))
		return true
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return true
}

// requestContext bounds a request's wait for Raft.
func (a *api) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.timeout)
}

// consistency reads the consistency parameter: linearizable (the default)
// or stale.
func consistency(w http.ResponseWriter, r *http.Request) (linearizable, ok bool) {
	switch c := r.URL.Query().Get("consistency"); c {
	case "", "linearizable":
		return true, true
	case "stale":
		return false, true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("consistency must be stale or linearizable, not %q", c))
		return false, false
	}
}

// readBarrier makes the following local read linearizable, forwarding the
// request to the leader when this node does not lead. It returns false when
// the request has been answered.
func (a *api) readBarrier(w http.ResponseWriter, r *http.Request) bool {
	if a.runOnLeader(w, r, nil) {
		return false
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	if err := a.node.linearizableRead(ctx); err != nil {
		writeRaftError(w, err)
		return false
	}
	return true
}

// kvResponse is the body of a successful GET of one key. A value that is not
// valid UTF-8 is sent base64-encoded in ValueBase64, since a JSON string
// cannot carry arbitrary bytes.
type kvResponse struct {
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 string `json:"value_base64,omitempty"`
}

func newKVResponse(key, value string) kvResponse {
	if utf8.ValidString(value) {
		return kvResponse{Key: key, Value: value}
	}
	return kvResponse{Key: key, ValueBase64: base64.StdEncoding.EncodeToString([]byte(value))}
}

// indexResponse is the body of a successful write.
type indexResponse struct {
	Index uint64 `json:"index"`
}

func (a *api) handleKey(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	key := r.PathValue("key")
	switch {
	case key == "":
		writeError(w, http.StatusBadRequest, "key must not be empty")
		return
	case len(key) > maxKeyBytes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key is %d bytes, over the %d-byte limit", len(key), maxKeyBytes))
		return
	}
	switch r.Method {
	case http.MethodGet:
		linearizable, ok := consistency(w, r)
		if !ok || (linearizable && !a.readBarrier(w, r)) {
			return
		}
		value, found := a.node.fsm.get(key)
		if !found {
			writeError(w, http.StatusNotFound, "key not found: "+key)
			return
		}
		writeJSON(w, http.StatusOK, newKVResponse(key, value))
	case http.MethodPut:
		value, ok := a.readValue(w, r)
		if !ok || a.runOnLeader(w, r, value) {
			return
		}
		a.write(w, r, encodeCommand(opPut, key, string(value)))
	case http.MethodDelete:
		if a.runOnLeader(w, r, nil) {
			return
		}
		a.write(w, r, encodeCommand(opDelete, key, ""))
	}
}

// readValue reads a PUT body, refusing one over the value limit with 413.
func (a *api) readValue(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	tooLarge := func() {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value is over the %d-byte limit", a.maxValue))
	}
	if r.ContentLength > a.maxValue {
		tooLarge()
		return nil, false
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxValue))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		tooLarge()
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		return nil, false
	}
	return value, true
}

// write applies cmd on this node, the leader, and answers with its index.
func (a *api) write(w http.ResponseWriter, r *http.Request, cmd []byte) {
	ctx, cancel := a.requestContext(r)
	defer cancel()
	index, err := a.node.apply(ctx, cmd)
	if err != nil {
		writeRaftError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, indexResponse{Index: index})
}

// listResponse is the body of GET /v1/kv. When More is true, ask again with
// after set to the last key returned.
type listResponse struct {
	Items []kvResponse `json:"items"`
	More  bool         `json:"more"`
}

func (a *api) handleList(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	q := r.URL.Query()
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d, not %q", maxListLimit, s))
			return
		}
		limit = n
	}
	linearizable, ok := consistency(w, r)
	if !ok || (linearizable && !a.readBarrier(w, r)) {
		return
	}
	pairs, more := a.node.fsm.list(q.Get("prefix"), q.Get("after"), limit)
	resp := listResponse{Items: make([]kvResponse, len(pairs)), More: more}
	for i, p := range pairs {
		resp.Items[i] = newKVResponse(p.Key, p.Value)
	}
	writeJSON(w, http.StatusOK, resp)
}

// decodeJSONBody reads a small JSON body into v, refusing unknown fields and
// trailing data. An empty body is allowed when allowEmpty is set.
func decodeJSONBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", maxJSONBody))
		} else {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
		}
		return nil, false
	}
	if allowEmpty && len(bytes.TrimSpace(body)) == 0 {
		return body, true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return nil, false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad JSON body: data after the object")
		return nil, false
	}
	return body, true
}

// joinRequest is the body of POST /v1/cluster/join.
type joinRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`           // Raft address
	HTTP string `json:"http,omitempty"` // HTTP address, shown in GET /v1/cluster
}

func (a *api) handleJoin(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	var req joinRequest
	body, ok := decodeJSONBody(w, r, &req, false)
	if !ok {
		return
	}
	if req.ID == "" || req.Addr == "" {
		writeError(w, http.StatusBadRequest, `both "id" and "addr" are required`)
		return
	}
	if _, _, err := net.SplitHostPort(req.Addr); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("addr %q is not host:port: %v", req.Addr, err))
		return
	}
	if a.runOnLeader(w, r, body) {
		return
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	f := a.node.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, enqueueTimeout(ctx))
	if err := waitFuture(ctx, f); err != nil {
		writeRaftError(w, err)
		return
	}
	a.node.logger.Info("added voter", "id", req.ID, "addr", req.Addr)
	index := f.Index()
	if req.HTTP != "" {
		if i, err := a.node.apply(ctx, encodeCommand(opSetMember, req.ID, req.HTTP)); err != nil {
			a.node.logger.Warn("could not record the HTTP address of a new voter", "id", req.ID, "error", err)
		} else {
			index = i
		}
	}
	writeJSON(w, http.StatusOK, indexResponse{Index: index})
}

// findServer returns the server with id in the latest configuration.
func (a *api) findServer(id string) (raft.Server, bool) {
	f := a.node.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s, true
		}
	}
	return raft.Server{}, false
}

func (a *api) handleRemove(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodDelete) {
		return
	}
	id := r.PathValue("id")
	if a.runOnLeader(w, r, nil) {
		return
	}
	if _, ok := a.findServer(id); !ok {
		writeError(w, http.StatusNotFound, "no server with ID "+id+" in the cluster")
		return
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	f := a.node.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))
	if err := waitFuture(ctx, f); err != nil {
		writeRaftError(w, err)
		return
	}
	a.node.logger.Info("removed server", "id", id)
	index := f.Index()
	// Forget its HTTP address too; if this node just removed itself it no
	// longer leads, and the next leader's view of the address is harmless.
	if i, err := a.node.apply(ctx, encodeCommand(opDeleteMember, id, "")); err == nil {
		index = i
	}
	writeJSON(w, http.StatusOK, indexResponse{Index: index})
}

// transferRequest is the optional body of POST /v1/cluster/transfer.
type transferRequest struct {
	ID string `json:"id,omitempty"` // target voter; empty lets the leader choose
}

func (a *api) handleTransfer(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	var req transferRequest
	body, ok := decodeJSONBody(w, r, &req, true)
	if !ok || a.runOnLeader(w, r, body) {
		return
	}
	target, found := a.findServer(req.ID)
	switch {
	case req.ID != "" && !found:
		writeError(w, http.StatusNotFound, "no server with ID "+req.ID+" in the cluster")
		return
	case req.ID == a.node.id:
		writeError(w, http.StatusConflict, req.ID+" already leads")
		return
	case a.node.otherVoters() == 0:
		writeError(w, http.StatusConflict, "no other voter to hand leadership to")
		return
	}
	var f raft.Future
	if req.ID == "" {
		f = a.node.raft.LeadershipTransfer()
	} else {
		f = a.node.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	ctx, cancel := a.requestContext(r)
	defer cancel()
	if err := waitFuture(ctx, f); err != nil {
		writeRaftError(w, err)
		return
	}
	_, leader := a.node.raft.LeaderWithID()
	writeJSON(w, http.StatusOK, map[string]string{"previous_leader": a.node.id, "leader": string(leader)})
}

// memberInfo describes one server in GET /v1/cluster.
type memberInfo struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Suffrage string `json:"suffrage"`
	HTTP     string `json:"http,omitempty"`
}

// clusterInfo is the body of GET /v1/cluster, as this node sees it.
type clusterInfo struct {
	ID           string       `json:"id"`
	State        string       `json:"state"`
	Leader       *memberInfo  `json:"leader"`
	Term         uint64       `json:"term"`
	LastIndex    uint64       `json:"last_index"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Keys         int          `json:"keys"`
	Members      []memberInfo `json:"members"`
}

func (a *api) handleCluster(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, a.clusterInfo())
}

func (a *api) clusterInfo() clusterInfo {
	n := a.node
	info := clusterInfo{
		ID:           n.id,
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		LastIndex:    n.raft.LastIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(),
		Keys:         n.fsm.size(),
		Members:      []memberInfo{},
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			info.Members = append(info.Members, memberInfo{
				ID:       string(s.ID),
				Addr:     string(s.Address),
				Suffrage: s.Suffrage.String(),
				HTTP:     n.fsm.member(string(s.ID)),
			})
		}
	}
	if addr, id := n.raft.LeaderWithID(); id != "" {
		info.Leader = &memberInfo{ID: string(id), Addr: string(addr), Suffrage: raft.Voter.String(), HTTP: n.fsm.member(string(id))}
	}
	return info
}

func (a *api) handleHealth(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	state := a.node.raft.State()
	_, leader := a.node.raft.LeaderWithID()
	switch {
	case state == raft.Shutdown:
		writeError(w, http.StatusServiceUnavailable, "raft is shut down (was this node removed from the cluster?)")
	case leader == "":
		writeError(w, http.StatusServiceUnavailable, errNoLeader.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "state": state.String(), "leader": string(leader)})
	}
}

func (a *api) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet) {
		return
	}
	if a.metrics == nil {
		writeError(w, http.StatusNotFound, "metrics are not enabled on this node")
		return
	}
	a.metrics.ServeHTTP(w, r)
}
