package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/structs"
)

// lockedBuffer is a log sink the server's goroutines may write while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLogged starts a single server on dir whose log is written to logs.
func startLogged(t *testing.T, dir string, logs *lockedBuffer) *Server {
	t.Helper()
	s, err := New(Config{
		DataDir:   dir,
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Dev:       true,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	// Every committed entry of the log has been applied after a barrier.
	if err := s.raft.Barrier(20 * time.Second).Error(); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	return s
}

// TestServer_PoisonEntryInDataDir is issue 12's recovery: a data dir whose
// Raft log (raft-boltdb on disk) holds a committed NodeRegister entry that
// an old binary accepted and then crashed on (a null driver entry). The
// fixed binary starts on it, refuses the entry on replay with a warning
// that names its index, and serves.
func TestServer_PoisonEntryInDataDir(t *testing.T) {
	dir := t.TempDir()
	var logs lockedBuffer
	s := startLogged(t, dir, &logs)
	// The bytes an old server proposed for POST /v1/client/nodes with
	// "drivers": {"exec": null}: its handler checked only id and resources.
	poison := append([]byte{byte(structs.NodeRegisterRequestType)},
		`{"timestamp":"2026-01-02T03:04:05Z","node":{"id":"poison","name":"poison","status":"ready","eligible":true,`+
			`"resources":{"cpu":1000,"memory":1024},"reserved":{"cpu":0,"memory":0},"drivers":{"exec":null},`+
			`"status_updated_at":"2026-01-02T03:04:05Z","create_index":0,"modify_index":0}}`...)
	fut := s.raft.Apply(poison, 10*time.Second)
	if err := fut.Error(); err != nil {
		t.Fatalf("raft Apply: %v", err)
	}
	index := fut.Index()
	if err, _ := fut.Response().(error); err == nil {
		t.Fatalf("the poison entry at index %d was applied: %v", index, fut.Response())
	}
	if err := s.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	// Restart the fixed binary on the same data dir: the log is replayed.
	var replay lockedBuffer
	s = startLogged(t, dir, &replay)
	defer func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	var l raft.Log
	if err := s.raftStore.GetLog(index, &l); err != nil || !bytes.Equal(l.Data, poison) {
		t.Fatalf("log entry %d on disk = %q, %v; want the poison entry", index, l.Data, err)
	}
	want := fmt.Sprintf("index=%d", index)
	var refused string
	for _, line := range strings.Split(replay.String(), "\n") {
		if strings.Contains(line, "raft entry refused") && strings.Contains(line, want) {
			refused = line
		}
	}
	if !strings.Contains(refused, "level=WARN") || !strings.Contains(refused, "node.drivers.exec") {
		t.Fatalf("replay did not log the refused entry %d at warn naming node.drivers.exec; log:\n%s", index, replay.String())
	}

	web := httptest.NewServer(s.HTTPHandler())
	defer web.Close()
	if n, _ := s.State().NodeByID(nil, "poison"); n != nil {
		t.Fatalf("the poison node is in the state: %+v", n)
	}
	resp, err := http.Post(web.URL+"/v1/client/nodes", "application/json", strings.NewReader(
		`{"id":"n1","resources":{"cpu":1000,"memory":1024},"drivers":{"exec":{"detected":true,"healthy":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register after recovery: HTTP %d", resp.StatusCode)
	}
}
