package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// testServer is a real server (Raft over TCP on loopback, raft-boltdb in a
// temp dir) behind an httptest HTTP server.
type testServer struct {
	t   *testing.T
	srv *Server
	web *httptest.Server
	dir string
}

func newTestServer(t *testing.T, dir string) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := New(Config{
		DataDir:   dir,
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Dev:       true,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: s, web: httptest.NewServer(s.HTTPHandler()), dir: dir}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.web.Close()
	if err := ts.srv.Shutdown(); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
}

// setBodyType sets the Content-Type of a request with a body the agent
// accepts (it refuses untyped and form-typed bodies: the CSRF guard), unless
// the test set one: JSON for a body that looks like it, YAML otherwise.
func setBodyType(req *http.Request, body []byte) {
	if len(body) == 0 || req.Header.Get("Content-Type") != "" {
		return
	}
	if t := bytes.TrimSpace(body); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		req.Header.Set("Content-Type", "application/json")
		return
	}
	req.Header.Set("Content-Type", "application/yaml")
}

// do sends a request and decodes a JSON answer into out (if non-nil).
func (ts *testServer) do(method, path string, body []byte, hdr map[string]string, out any) *http.Response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.web.URL+path, bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	setBodyType(req, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			ts.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp
}

// waitFor polls cond with a deadline: for conditions that have no channel
// to wait on from the outside (the state of another goroutine's work).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
