package server

import (
	"bytes"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// neverFuture is a Raft future Raft abandoned: its Error never returns.
type neverFuture struct{ block chan struct{} }

func (f neverFuture) Error() error { <-f.block; return nil }

// answeredFuture is a future Raft answered.
type answeredFuture struct{ err error }

func (f answeredFuture) Error() error { return f.err }

func TestWaitRaft_AbandonedFutureEndsAtShutdown(t *testing.T) {
	s := &Server{raftDown: make(chan struct{})}
	f := neverFuture{block: make(chan struct{})}
	defer close(f.block) // lets the waiting goroutine end with the test
	got := make(chan error, 1)
	go func() { got <- s.waitRaft(f) }()
	close(s.raftDown)
	if err := <-got; !errors.Is(err, raft.ErrRaftShutdown) {
		t.Fatalf("waitRaft = %v, want raft.ErrRaftShutdown", err)
	}
}

func TestWaitRaft_AnsweredFuture(t *testing.T) {
	s := &Server{raftDown: make(chan struct{})}
	want := errors.New("fsm said no")
	if err := s.waitRaft(answeredFuture{err: want}); err != want {
		t.Fatalf("waitRaft = %v, want %v", err, want)
	}
	if err := s.waitRaft(answeredFuture{}); err != nil {
		t.Fatalf("waitRaft = %v, want nil", err)
	}
}

// TestServer_ShutdownWithWritesInFlight stops a leader while HTTP writes
// and the plans they cause are waiting on Raft. hashicorp/raft leaves the
// futures of entries queued for its FSM unanswered when it shuts down; a
// server that waited on them without waitRaft never finished Shutdown
// (seen as TestServer_IdempotencyKey_Body hanging in a fresh-clone run).
// Shutdown must return, every round.
func TestServer_ShutdownWithWritesInFlight(t *testing.T) {
	for round := range 8 {
		ts := newTestServer(t, "")
		var wg sync.WaitGroup
		stop := make(chan struct{})
		committed := make(chan struct{}, 64)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := http.Post(ts.web.URL+"/v1/pipelines", "application/yaml", bytes.NewReader([]byte(twoJobs)))
					if err != nil {
						return // the server is gone
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusCreated {
						select {
						case committed <- struct{}{}:
						default:
						}
					}
				}
			}()
		}
		// Shut down with the write path busy: after some writes committed,
		// while the others are in flight.
		for range 16 {
			<-committed
		}
		done := make(chan error, 1)
		go func() { done <- ts.srv.Shutdown() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: shutdown: %v", round, err)
			}
		case <-time.After(2 * time.Minute):
			buf := make([]byte, 1<<20)
			t.Fatalf("round %d: Shutdown did not return within 2 minutes with writes in flight; goroutines:\n%s",
				round, buf[:runtime.Stack(buf, true)])
		}
		close(stop)
		wg.Wait()
	}
}
