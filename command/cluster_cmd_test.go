package command

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// fakeServer answers the cluster routes the server and operator commands use.
type fakeServer struct {
	mu       sync.Mutex
	removed  string
	restored []byte
	left     bool
}

func newFakeServer(t *testing.T) (*fakeServer, string) {
	f := &fakeServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent/members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{
			{"name": "s2", "addr": "127.0.0.1:4692", "status": "failed", "leader": false, "voter": true, "raft_state": "Follower", "raft_addr": "127.0.0.1:4691", "http_addr": "127.0.0.1:4690", "protocol": 5},
			{"name": "s1", "addr": "127.0.0.1:4682", "status": "alive", "leader": true, "voter": true, "raft_state": "Leader", "raft_addr": "127.0.0.1:4681", "http_addr": "127.0.0.1:4680", "protocol": 5},
		})
	})
	mux.HandleFunc("GET /v1/operator/raft/configuration", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stale") != "true" {
			writeJSON(w, 503, map[string]string{"error": "no cluster leader"})
			return
		}
		writeJSON(w, 200, map[string]any{"index": 7, "servers": []map[string]any{
			{"id": "s1", "node": "s1", "address": "127.0.0.1:4681", "leader": true, "voter": true},
			{"id": "s2", "node": "s2", "address": "127.0.0.1:4691", "leader": false, "voter": true},
		}})
	})
	mux.HandleFunc("DELETE /v1/operator/raft/peer", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if id != "s2" {
			writeJSON(w, 404, map[string]string{"error": "no raft peer with id \"" + id + "\""})
			return
		}
		f.mu.Lock()
		f.removed = id
		f.mu.Unlock()
		writeJSON(w, 200, map[string]string{"removed": id})
	})
	mux.HandleFunc("GET /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ciplat-Index", "42")
		_, _ = io.WriteString(w, "{\"format\":\"ciplat-snapshot\"}\nstate\n")
	})
	mux.HandleFunc("PUT /v1/operator/snapshot", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.restored = b
		f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"index": 50, "snapshot_index": 42, "snapshot_server": "s1"})
	})
	mux.HandleFunc("PUT /v1/agent/leave", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.left = true
		f.mu.Unlock()
		writeJSON(w, 200, map[string]string{"left": "s1"})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestServerMembers(t *testing.T) {
	_, addr := newFakeServer(t)
	r := runMain(t, "server", "members", "-address", addr)
	r.check(t, exitOK, []string{"NAME", "RAFT STATE", "s1", "alive", "Leader", "s2", "failed"}, nil)
	r = runMain(t, "server", "members", "-address", addr, "-json")
	r.check(t, exitOK, []string{`"raft_state": "Leader"`}, nil)
}

func TestOperatorRaft(t *testing.T) {
	f, addr := newFakeServer(t)
	r := runMain(t, "operator", "raft", "list-peers", "-address", addr)
	r.check(t, exitFailure, nil, []string{"no cluster leader"})
	r = runMain(t, "operator", "raft", "list-peers", "-address", addr, "-stale")
	r.check(t, exitOK, []string{"NODE", "s1", "leader", "s2", "follower"}, nil)
	r = runMain(t, "operator", "raft", "remove-peer", "-address", addr)
	r.check(t, exitUsage, nil, []string{"missing -peer-id"})
	r = runMain(t, "operator", "raft", "remove-peer", "-address", addr, "-peer-id", "nope")
	r.check(t, exitFailure, nil, []string{`no raft peer with id "nope"`})
	r = runMain(t, "operator", "raft", "remove-peer", "-address", addr, "-peer-id", "s2")
	r.check(t, exitOK, []string{"Removed peer s2"}, nil)
	if f.removed != "s2" {
		t.Fatalf("removed %q", f.removed)
	}
	r = runMain(t, "operator", "raft")
	r.check(t, exitUsage, nil, []string{"operator raft list-peers", "operator raft remove-peer"})
}

func TestOperatorSnapshot(t *testing.T) {
	f, addr := newFakeServer(t)
	path := filepath.Join(t.TempDir(), "backup.snap")
	r := runMain(t, "operator", "snapshot", "save", "-address", addr, path)
	r.check(t, exitOK, []string{"Saved snapshot at index 42 to " + path}, nil)
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "{\"format\":\"ciplat-snapshot\"}\nstate\n" {
		t.Fatalf("saved %q %v", b, err)
	}
	r = runMain(t, "operator", "snapshot", "restore", "-address", addr, path)
	r.check(t, exitOK, []string{"Restored snapshot of index 42 (taken on s1) at index 50"}, nil)
	if string(f.restored) != string(b) {
		t.Fatalf("restored %q", f.restored)
	}
	r = runMain(t, "operator", "snapshot", "restore", "-address", addr, filepath.Join(t.TempDir(), "missing"))
	r.check(t, exitUsage, nil, []string{"no such file"})
}

func TestServerLeave(t *testing.T) {
	f, addr := newFakeServer(t)
	r := runMain(t, "server", "leave", "-address", addr)
	r.check(t, exitOK, []string{"left the cluster"}, nil)
	if !f.left {
		t.Fatal("leave not sent")
	}
}
