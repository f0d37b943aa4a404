package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

// maxBodyBytes bounds request bodies; larger ones get 413.
const maxBodyBytes = 1 << 20

// maxWait bounds a blocking query's wait.
const maxWait = 10 * time.Minute

// route is one entry of the router. The OpenAPI document is checked against
// this table in a test, so the two never drift apart.
type route struct {
	method, path string
	handler      func(http.ResponseWriter, *http.Request) (any, error)
	kind         routeKind
	// maxBody bounds the request body; 0 means maxBodyBytes.
	maxBody int64
	// largeBody marks a route whose upload may take long (only the snapshot
	// restore): it gets largeBodyReadTimeout to read its body and as much
	// more to be forwarded. A raised maxBody alone (a spec route under
	// -limit-spec-bytes) keeps the normal deadlines.
	largeBody bool
}

// routeKind says where a request is answered in a cluster.
type routeKind int

const (
	// kindWrite routes change state: a follower forwards them to the leader.
	kindWrite routeKind = iota
	// kindRead routes are answered by the leader (forwarded), or by any
	// server with ?stale.
	kindRead
	// kindLocal routes are about this server and answered by it.
	kindLocal
)

func write(method, path string, h func(http.ResponseWriter, *http.Request) (any, error)) route {
	return route{method: method, path: path, handler: h, kind: kindWrite}
}

func read(method, path string, h func(http.ResponseWriter, *http.Request) (any, error)) route {
	return route{method: method, path: path, handler: h, kind: kindRead}
}

func local(method, path string, h func(http.ResponseWriter, *http.Request) (any, error)) route {
	return route{method: method, path: path, handler: h, kind: kindLocal}
}

// streamed is returned by handlers that wrote their response themselves.
type streamed struct{}

// HTTPError is an error with an HTTP status.
type HTTPError struct {
	Code int
	Msg  string
	// RetryAfter adds Retry-After: 1 (a 503 the client may retry).
	RetryAfter bool
}

func (e *HTTPError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

func (s *Server) routes() []route {
	restore := write("PUT", "/v1/operator/snapshot", s.handleSnapshotRestore)
	restore.maxBody = s.cfg.snapshotMaxBytes()
	restore.largeBody = true
	return []route{
		s.specRoute(write("POST", "/v1/pipelines", s.handlePipelineSubmit)),
		read("GET", "/v1/pipelines", s.handlePipelineList),
		read("GET", "/v1/pipelines/{id}", s.handlePipelineGet),
		write("POST", "/v1/pipelines/{id}/cancel", s.handlePipelineCancel),
		read("GET", "/v1/pipelines/{id}/logs", s.handlePipelineLogs),
		s.specRoute(write("POST", "/v1/jobs", s.handleJobSubmit)),
		read("GET", "/v1/jobs/{id}", s.handleJobGet),
		read("GET", "/v1/jobs/{id}/logs", s.handleJobLogs),
		read("GET", "/v1/nodes", s.handleNodeList),
		read("GET", "/v1/nodes/{id}", s.handleNodeGet),
		read("GET", "/v1/evaluations", s.handleEvalList),
		local("GET", "/v1/status/leader", s.handleStatusLeader),
		local("GET", "/v1/status/ready", s.handleStatusReady), // readiness.go
		local("GET", "/v1/status/peers", s.handleStatusPeers),
		local("GET", "/v1/agent/members", s.handleAgentMembers),
		local("PUT", "/v1/agent/leave", s.handleAgentLeave),
		read("GET", "/v1/operator/raft/configuration", s.handleRaftConfiguration),
		write("DELETE", "/v1/operator/raft/peer", s.handleRaftRemovePeer),
		read("GET", "/v1/operator/snapshot", s.handleSnapshotSave),
		restore,
		local("GET", "/v1/openapi.json", s.handleOpenAPI),
		write("POST", "/v1/client/nodes", s.handleClientNodeRegister),
		read("GET", "/v1/client/nodes/{id}/allocations", s.handleClientAllocs),
		write("POST", "/v1/client/allocations", s.handleClientAllocUpdate),
		write("POST", "/v1/client/logs", s.handleClientLogs),
		write("POST", "/v1/client/nodes/{id}/heartbeat", s.handleClientNodeHeartbeat),
		write("POST", "/v1/nodes/{id}/drain", s.handleNodeDrain),
		write("POST", "/v1/nodes/{id}/eligibility", s.handleNodeEligibility),
		local("GET", "/v1/agent/gossip", s.handleAgentGossip),
		read("GET", "/v1/event/stream", s.handleEventStream),
		local("GET", "/v1/ws", s.handleWS),
		read("GET", "/v1/ui/pipelines", s.handleUIPipelines),
		read("GET", "/v1/ui/nodes", s.handleUINodes),
		local("GET", "/v1/ui/cluster", s.handleUICluster),
		// Scheduler (issue 5).
		read("GET", "/v1/operator/scheduler", s.handleSchedulerConfigGet),
		write("PUT", "/v1/operator/scheduler", s.handleSchedulerConfigPut),
		s.specRoute(read("POST", "/v1/schedule", s.handleSchedule)),
		local("GET", "/v1/metrics", s.handleMetrics),
		// Worker Manager API (issue 6).
		read("GET", "/v1/workers", s.handleWorkerList),
		read("GET", "/v1/workers/{id}", s.handleWorkerGet),
		write("DELETE", "/v1/workers/{id}", s.handleWorkerStop),
		read("GET", "/v1/workers/{id}/logs", s.handleWorkerLogs),
	}
}

// HTTPHandler returns the /v1 API. Unknown paths under /v1 get 404 and
// known paths with another method 405, both as JSON errors.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	paths := map[string][]string{}
	for _, rt := range s.routes() {
		rt := rt
		mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			s.serve(w, r, rt)
		})
		paths[rt.path] = append(paths[rt.path], rt.method)
	}
	for p, methods := range paths {
		allowed := methods
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			for _, m := range allowed {
				w.Header().Add("Allow", m)
			}
			writeError(w, &HTTPError{Code: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
		})
	}
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &HTTPError{Code: http.StatusNotFound, Msg: "no such route: " + r.URL.Path})
	})
	return mux
}

// largeBodyReadTimeout is how long a route with a large body (a snapshot
// restore) may take to upload, beyond the agent's -http-read-timeout.
const largeBodyReadTimeout = 10 * time.Minute

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route) {
	if rt.largeBody {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(largeBodyReadTimeout))
	}
	if rt.kind != kindLocal {
		stale := rt.kind == kindRead && isStale(r)
		if !stale && s.forwardToLeader(w, r, rt) {
			return
		}
		s.setConsistency(w)
	}
	if r.Body != nil {
		limit := rt.maxBody
		if limit == 0 {
			limit = maxBodyBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	out, err := rt.handler(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, ok := out.(streamed); ok {
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError maps errors to statuses and writes {"error": "..."}.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *HTTPError
	var mbe *http.MaxBytesError
	var ite *structs.ErrIllegalTransition
	var se jobspec.Errors
	switch {
	case errors.As(err, &he):
		code = he.Code
		if he.RetryAfter {
			w.Header().Set("Retry-After", "1")
		}
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
		err = fmt.Errorf("request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &se), errors.Is(err, structs.ErrInvalidRequest), errors.Is(err, state.ErrAmbiguousPrefix):
		code = http.StatusBadRequest
	case errors.Is(err, structs.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, structs.ErrConflict), errors.As(err, &ite):
		code = http.StatusConflict
	case errors.Is(err, ErrNoLeader):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// queryOpts are a read's blocking-query parameters.
type queryOpts struct {
	index uint64
	wait  time.Duration
}

func parseQuery(r *http.Request) (queryOpts, error) {
	var q queryOpts
	if v := r.URL.Query().Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return q, badRequest("invalid index %q: want a Raft index (a non-negative integer)", v)
		}
		q.index = n
	}
	q.wait = 5 * time.Minute
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return q, badRequest("invalid wait %q: want a duration such as 30s", v)
		}
		q.wait = min(d, maxWait)
	}
	return q, nil
}

func setIndex(w http.ResponseWriter, idx uint64) {
	w.Header().Set("X-Ciplat-Index", strconv.FormatUint(max(idx, 1), 10))
}

func parseBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("invalid %s %q: want true or false", name, v)
	}
	return b, nil
}
