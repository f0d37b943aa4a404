package server

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestForward_LeaderBlackholed: a follower whose leader's HTTP address
// accepts connections and never answers (a partition, a hung leader)
// answers every forwarded request itself, within its forward deadline:
// 504 with Retry-After and an error naming the leader, and a blocking
// read gets its own wait on top of the deadline.
func TestForward_LeaderBlackholed(t *testing.T) {
	const forwardTimeout = time.Second
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.ForwardTimeout = forwardTimeout })
	l := c.waitStable(3)
	f := c.followers()[0]
	// A forwarded answer carries the security headers once (the follower's
	// own, not also the leader's).
	if resp := f.do("GET", "/v1/pipelines", nil, nil, nil); resp.StatusCode != 200 ||
		len(resp.Header.Values("Content-Security-Policy")) != 1 || len(resp.Header.Values("X-Content-Type-Options")) != 1 {
		t.Fatalf("forwarded read before the blackhole: HTTP %d %v", resp.StatusCode, resp.Header)
	}

	// Swap the leader's HTTP API for a listener that accepts and never
	// answers; its Raft and serf keep running, so it stays the leader.
	_ = l.web.Close()
	hole, err := net.Listen("tcp", l.httpAddr)
	if err != nil {
		t.Fatalf("listen on the leader's HTTP address: %v", err)
	}
	defer hole.Close()
	go func() {
		for {
			conn, err := hole.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	f.srv.forwarder.close() // no kept-alive connection to the old listener

	// The client gives up after 20s; without a forward deadline the
	// follower would hold every request until then.
	client := &http.Client{Timeout: 20 * time.Second}
	for _, tc := range []struct {
		method, path, body string
		atLeast            time.Duration
	}{
		{"GET", "/v1/pipelines", "", 0},
		{"POST", "/v1/pipelines", oneJob, 0},
		{"GET", "/v1/pipelines?index=1&wait=2s", "", 2 * time.Second},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+f.httpAddr+tc.path, bytes.NewReader([]byte(tc.body)))
		setBodyType(req, []byte(tc.body))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s through %s: %v", tc.method, tc.path, f.name, err)
		}
		took := time.Since(start)
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("Retry-After") == "" ||
			!strings.Contains(e.Error, l.name) || !strings.Contains(e.Error, l.httpAddr) {
			t.Fatalf("%s %s: HTTP %d Retry-After %q %q; want 504 with Retry-After naming %s at %s",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Retry-After"), e.Error, l.name, l.httpAddr)
		}
		if took < tc.atLeast+forwardTimeout {
			t.Fatalf("%s %s: 504 after %s, before the deadline %s", tc.method, tc.path, took, tc.atLeast+forwardTimeout)
		}
		t.Logf("%s %s: 504 after %s", tc.method, tc.path, took.Round(time.Millisecond))
	}

	// The leader's HTTP address refuses connections: 503 at once.
	hole.Close()
	resp, err := f.try("POST", "/v1/pipelines", []byte(oneJob), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, l.name) {
		t.Fatalf("leader refusing connections: HTTP %d %q, want 503 with Retry-After naming %s", resp.StatusCode, e.Error, l.name)
	}
}
