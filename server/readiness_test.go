package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadiness_Leader: between its election and the start of its duties
// a leader answers 503 with Retry-After and the reason on /v1/status/ready
// and /v1/status/leader (it said 200 there ≈3 s before it could serve
// reads); once the duties run, both answer 200.
func TestReadiness_Leader(t *testing.T) {
	gate := make(chan struct{})
	held := make(chan struct{}, 1)
	s, err := New(Config{
		DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", Bootstrap: true, Dev: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		beforeLeaderReady: func(ctx context.Context) {
			select {
			case held <- struct{}{}:
			default:
			}
			select {
			case <-gate:
			case <-ctx.Done():
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(s.HTTPHandler())
	ts := &testServer{t: t, srv: s, web: web}
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
		ts.stop()
	})
	<-held // elected, barrier done, duties not started

	var v readyView
	resp := ts.do("GET", "/v1/status/ready", nil, nil, &v)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || v.Ready || v.Role != "leader" || v.Error == "" {
		t.Fatalf("ready while the duties wait: HTTP %d %+v Retry-After %q; want 503 not ready, role leader, a reason",
			resp.StatusCode, v, resp.Header.Get("Retry-After"))
	}
	var e struct{ Error string }
	resp = ts.do("GET", "/v1/status/leader", nil, nil, &e)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || e.Error == "" {
		t.Fatalf("leader while the duties wait: HTTP %d %q; want 503 with a reason", resp.StatusCode, e.Error)
	}

	// A read waits ForwardWait for the duties, then says what is going on.
	resp = ts.do("GET", "/v1/pipelines", nil, nil, &e)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "starting its duties") {
		t.Fatalf("read while the duties wait: HTTP %d %q; want 503 saying the leader is starting", resp.StatusCode, e.Error)
	}

	close(gate)
	ctx, cancel := context.WithTimeout(context.Background(), 20e9)
	defer cancel()
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	v = readyView{}
	if resp := ts.do("GET", "/v1/status/ready", nil, nil, &v); resp.StatusCode != 200 || !v.Ready || v.Role != "leader" || v.Leader != s.RaftAddr() {
		t.Fatalf("ready once the duties run: HTTP %d %+v", resp.StatusCode, v)
	}
	var leader string
	if resp := ts.do("GET", "/v1/status/leader", nil, nil, &leader); resp.StatusCode != 200 || leader != s.RaftAddr() {
		t.Fatalf("leader once the duties run: HTTP %d %q", resp.StatusCode, leader)
	}
}

// TestReadiness_Follower: a follower of a stable cluster is ready; cut
// off from the leader and the quorum it stops being ready.
func TestReadiness_Follower(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	fs := c.followers()
	for _, f := range fs {
		var v readyView
		waitForTB(t, f.name+" to be ready", func() bool {
			v = readyView{}
			return f.do("GET", "/v1/status/ready", nil, nil, &v).StatusCode == 200
		})
		if !v.Ready || v.Role != "follower" || v.Leader != l.raftAddr {
			t.Fatalf("%s: %+v", f.name, v)
		}
	}
	l.kill()
	fs[1].kill()
	var v readyView
	waitForTB(t, fs[0].name+" to stop being ready", func() bool {
		resp, err := fs[0].try("GET", "/v1/status/ready", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		v = readyView{}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
	})
	if v.Ready || v.Error == "" {
		t.Fatalf("cut-off follower: %+v, want not ready with a reason", v)
	}
}
