package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// clusterServer is one server of an in-process cluster: real Raft over TCP
// on loopback, raft-boltdb in a temp dir, real serf on loopback, and its
// HTTP API on a real listener (so forwarding goes over HTTP as in
// production). Its addresses are kept so a restart reuses them.
type clusterServer struct {
	t        testing.TB
	name     string
	dir      string
	expect   int
	opts     func(*Config)
	srv      *Server
	web      *http.Server
	httpAddr string
	raftAddr string
	serfAddr string
	running  bool
}

// testCluster is a set of servers that joined one serf pool.
type testCluster struct {
	t       testing.TB
	servers []*clusterServer
}

// testLogger discards logs unless CIPLAT_TEST_LOG is set.
func testLogger(name string) *slog.Logger {
	if os.Getenv("CIPLAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("server", name)
	}
	return slog.New(slog.DiscardHandler)
}

// newTestCluster starts n servers with -bootstrap-expect n, joins them and
// waits until they agree on a leader with n voters.
func newTestCluster(t testing.TB, n int, opts func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	for i := 0; i < n; i++ {
		cs := &clusterServer{t: t, name: fmt.Sprintf("s%d", i+1), dir: t.TempDir(), expect: n, opts: opts,
			httpAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0", serfAddr: "127.0.0.1:0"}
		cs.start()
		c.servers = append(c.servers, cs)
	}
	t.Cleanup(c.stopAll)
	c.joinAll()
	c.waitStable(n)
	return c
}

func (cs *clusterServer) start() {
	cs.t.Helper()
	ln, err := net.Listen("tcp", cs.httpAddr)
	if err != nil {
		cs.t.Fatalf("%s: http listen: %v", cs.name, err)
	}
	cfg := Config{
		NodeName:          cs.name,
		DataDir:           cs.dir,
		RaftAddr:          cs.raftAddr,
		SerfAddr:          cs.serfAddr,
		HTTPAddr:          ln.Addr().String(),
		BootstrapExpect:   cs.expect,
		Dev:               true,
		ReconcileInterval: 500 * time.Millisecond,
		// Dev's 200ms timeouts are for one server; six servers under -race
		// on two busy cores need Raft's production timeouts to keep a leader.
		Raft:   RaftConfig{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second, LeaderLeaseTimeout: 500 * time.Millisecond},
		Logger: testLogger(cs.name),
	}
	if cs.opts != nil {
		cs.opts(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		ln.Close()
		cs.t.Fatalf("%s: start: %v", cs.name, err)
	}
	cs.srv = s
	cs.httpAddr = ln.Addr().String()
	cs.raftAddr = s.RaftAddr()
	cs.serfAddr = s.SerfAddr()
	cs.web = &http.Server{Handler: httpapi.SecurityHeaders(s.HTTPHandler())} // as the agent mounts it
	go func() { _ = cs.web.Serve(ln) }()
	cs.running = true
}

// kill stops the server without leaving: to the others it has failed.
func (cs *clusterServer) kill() {
	if !cs.running {
		return
	}
	cs.running = false
	_ = cs.web.Close()
	if err := cs.srv.Shutdown(); err != nil {
		cs.t.Logf("%s: shutdown: %v", cs.name, err)
	}
}

// leave leaves the cluster gracefully, then stops.
func (cs *clusterServer) leave() {
	cs.t.Helper()
	if err := cs.srv.Leave(10 * time.Second); err != nil {
		cs.t.Fatalf("%s: leave: %v", cs.name, err)
	}
	cs.kill()
}

func (c *testCluster) stopAll() {
	for _, cs := range c.servers {
		cs.kill()
	}
}

func (c *testCluster) joinAll() {
	c.t.Helper()
	var first *clusterServer
	for _, cs := range c.servers {
		if !cs.running {
			continue
		}
		if first == nil {
			first = cs
			continue
		}
		if _, err := cs.srv.Join([]string{first.serfAddr}); err != nil {
			c.t.Fatalf("%s: join %s: %v", cs.name, first.serfAddr, err)
		}
	}
}

func (c *testCluster) running() []*clusterServer {
	var out []*clusterServer
	for _, cs := range c.servers {
		if cs.running {
			out = append(out, cs)
		}
	}
	return out
}

// leader returns the running server that leads with its duties started, or nil.
func (c *testCluster) leader() *clusterServer {
	for _, cs := range c.running() {
		if cs.srv.IsLeader() && cs.srv.leaderReady.Load() {
			return cs
		}
	}
	return nil
}

func (c *testCluster) followers() []*clusterServer {
	var out []*clusterServer
	for _, cs := range c.running() {
		if !cs.srv.IsLeader() {
			out = append(out, cs)
		}
	}
	return out
}

// waitStable waits until every running server knows the same ready leader
// and that leader's configuration has voters voters.
func (c *testCluster) waitStable(voters int) *clusterServer {
	c.t.Helper()
	var l *clusterServer
	waitForTB(c.t, fmt.Sprintf("a leader with %d voters", voters), func() bool {
		l = c.leader()
		if l == nil {
			return false
		}
		servers, _, err := l.srv.raftServers()
		if err != nil || len(servers) != voters {
			return false
		}
		for _, cs := range c.running() {
			if cs.srv.Leader() != l.raftAddr {
				return false
			}
		}
		return true
	})
	return l
}

// do sends a request to this server's HTTP API and decodes a JSON answer.
// A GET answered 503 (an election in progress: the machine may be busy
// enough for a leader to lose its lease) is retried for a while, as a real
// client would; other methods are sent once.
func (cs *clusterServer) do(method, path string, body []byte, hdr map[string]string, out any) *http.Response {
	cs.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cs.try(method, path, body, hdr, out)
		if err != nil {
			cs.t.Fatalf("%s: %s %s: %v", cs.name, method, path, err)
		}
		if method != http.MethodGet || resp.StatusCode != http.StatusServiceUnavailable ||
			strings.Contains(path, "stale") || time.Now().After(deadline) {
			return resp
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// try is do that returns transport errors instead of failing the test.
func (cs *clusterServer) try(method, path string, body []byte, hdr map[string]string, out any) (*http.Response, error) {
	req, err := http.NewRequest(method, "http://"+cs.httpAddr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	setBodyType(req, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	if out != nil && len(b) > 0 && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("decode %q: %w", b, err)
		}
	}
	return resp, nil
}

// submitTo posts a spec and returns the pipeline ID and status code. Like
// a real client it retries a 503 (an election in progress) for a while.
func (cs *clusterServer) submitTo(spec, key string) (string, int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		id, code, err := cs.submitOnce(spec, key)
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return id, code, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submitOnce posts a spec once.
func (cs *clusterServer) submitOnce(spec, key string) (string, int, error) {
	var p struct {
		ID string `json:"id"`
	}
	hdr := map[string]string{}
	if key != "" {
		hdr["Idempotency-Key"] = key
	}
	resp, err := cs.try("POST", "/v1/pipelines", []byte(spec), hdr, &p)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return "", resp.StatusCode, errors.New(strings.TrimSpace(string(b)))
	}
	return p.ID, resp.StatusCode, nil
}

// pipelineIDs lists the pipelines as this server sees them (?stale reads
// its own state).
func (cs *clusterServer) pipelineIDs(stale bool) []string {
	cs.t.Helper()
	path := "/v1/pipelines"
	if stale {
		path += "?stale"
	}
	var list []struct {
		ID string `json:"id"`
	}
	if resp := cs.do("GET", path, nil, nil, &list); resp.StatusCode != 200 {
		cs.t.Fatalf("%s: list pipelines: HTTP %d", cs.name, resp.StatusCode)
	}
	ids := make([]string, 0, len(list))
	for _, p := range list {
		ids = append(ids, p.ID)
	}
	sort.Strings(ids)
	return ids
}

// waitConverged waits until every running server's own state lists want.
func (c *testCluster) waitConverged(want []string) {
	c.t.Helper()
	want = append([]string(nil), want...)
	sort.Strings(want)
	for _, cs := range c.running() {
		waitForTB(c.t, cs.name+" to converge", func() bool {
			return strings.Join(cs.pipelineIDs(true), ",") == strings.Join(want, ",")
		})
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// waitForTB polls cond with a deadline (for benchmarks and tests alike).
func waitForTB(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
