package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// fuzzRouteSkipped are write routes FuzzHTTPRoutes leaves out: they act on
// the server itself, not on a body.
var fuzzRouteSkipped = map[string]bool{
	"PUT /v1/agent/leave": true, // the server would leave its cluster
}

// fuzzRoutes lists the routes that take a body (POST, PUT, DELETE), with
// their path parameters filled in ("n1": the node the fuzz server has).
func fuzzRoutes(s *Server) []httpapi.Route {
	var out []httpapi.Route
	for _, rt := range s.httpAPI().Routes() {
		if rt.Method == "GET" || fuzzRouteSkipped[rt.Method+" "+rt.Pattern] {
			continue
		}
		rt.Pattern = strings.ReplaceAll(rt.Pattern, "{id}", "n1")
		out = append(out, rt)
	}
	return out
}

// FuzzHTTPRoutes sends fuzzed bodies to every route that takes one,
// through the server's own handler (a real single-server Raft on loopback,
// raft-boltdb in a temp dir). Whatever the body: no panic, never a 500
// (a body problem is the sender's: 4xx), and every error is JSON
// {"error": "..."}.
func FuzzHTTPRoutes(f *testing.F) {
	s, err := New(Config{
		DataDir:   f.TempDir(),
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Dev:       true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatalf("start server: %v", err)
	}
	f.Cleanup(func() { _ = s.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		f.Fatal(err)
	}
	h := s.HTTPHandler()
	routes := fuzzRoutes(s)
	send := func(rt httpapi.Route, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(rt.Method, rt.Pattern, bytes.NewReader(body))
		setBodyType(req, body)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	node := `{"id":"n1","name":"n1","resources":{"cpu":4000,"memory":4096},"drivers":{"exec":{"detected":true,"healthy":true}}}`
	if w := send(httpapi.Route{Method: "POST", Pattern: "/v1/client/nodes"}, []byte(node)); w.Code != http.StatusOK {
		f.Fatalf("register n1: %d %s", w.Code, w.Body)
	}

	bodies := []string{
		``, `null`, `[null]`, `{}`, `[]`, `"x"`, `1e309`, `{"a":null}`,
		node,
		`{"id":"n2","resources":{"cpu":1,"memory":1},"drivers":{"exec":null}}`,
		`[{"alloc_id":"a1","client_status":"running","job_state":"RUNNING","steps":[{"name":"s","state":"RUNNING"}]}]`,
		`[{"job_id":"j1","step":"s","line":"hello"}]`,
		`{"enable":true,"deadline":"10m"}`, `{"eligible":false}`, `{"eligible":null}`,
		`{"algorithm":"spread","preemption":true,"workers":2}`, `{"workers":null}`,
		"name: p\njobs:\n  a:\n    steps: [ { run: echo hi } ]\n",
		`{"name":"p","jobs":{"a":{"steps":[{"run":"echo"}]}}}`,
		`{"name":"p","jobs":{"a":null}}`, `{"name":"p","jobs":{"a":{"steps":[null]}}}`,
		"name: j\nsteps: [ { run: echo hi } ]\n",
		"{\"format\":\"ciplat-snapshot\",\"version\":1}\n{\"format\":\"ciplat-state\",\"version\":1}\n{\"end\":true}\n",
	}
	for i := range routes {
		for _, b := range bodies {
			f.Add(uint8(i), []byte(b))
		}
	}

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		w := send(rt, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q = %d %s: a body problem must be a 4xx", rt.Method, rt.Pattern, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e struct {
				Error *string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil || *e.Error == "" {
				t.Fatalf("%s %s %q = %d %q: want JSON {\"error\": \"...\"}", rt.Method, rt.Pattern, body, w.Code, w.Body)
			}
		}
	})
}
