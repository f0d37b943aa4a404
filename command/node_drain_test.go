package command

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// nodeOpsAgent answers the node drain and eligibility routes and records
// what the CLI sent.
type nodeOpsAgent struct {
	srv  *httptest.Server
	mu   sync.Mutex
	node api.Node
	got  []string // "path body"
}

func newNodeOpsAgent(t *testing.T) *nodeOpsAgent {
	a := &nodeOpsAgent{node: api.Node{ID: nodeID, Name: "build1", Status: api.NodeStatusReady, Eligible: true}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/nodes/{id}/drain", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Enable   bool   `json:"enable"`
			Deadline string `json:"deadline"`
		}
		a.record(r, &req)
		if !strings.HasPrefix(nodeID, r.PathValue("id")) {
			writeErr(w, http.StatusNotFound, "node "+r.PathValue("id")+" not found")
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.node.Drain, a.node.DrainDeadline = req.Enable, time.Time{}
		if d, _ := time.ParseDuration(req.Deadline); d > 0 {
			a.node.DrainDeadline = time.Now().Add(d)
		}
		if !req.Enable {
			a.node.Eligible = true
		}
		writeJSON(w, http.StatusOK, a.node)
	})
	mux.HandleFunc("POST /v1/nodes/{id}/eligibility", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Eligible bool `json:"eligible"`
		}
		a.record(r, &req)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.node.Eligible = req.Eligible
		writeJSON(w, http.StatusOK, a.node)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func (a *nodeOpsAgent) record(r *http.Request, into any) {
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, into)
	a.mu.Lock()
	a.got = append(a.got, r.URL.Path+" "+strings.TrimSpace(string(b)))
	a.mu.Unlock()
}

func (a *nodeOpsAgent) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.got) == 0 {
		return ""
	}
	return a.got[len(a.got)-1]
}

func TestNodeDrain(t *testing.T) {
	a := newNodeOpsAgent(t)
	r := runMain(t, "node", "drain", "-address", a.srv.URL, "-enable", "-deadline", "10m", "9a8b")
	r.check(t, exitOK, []string{"==> Node 9a8b7c6d (build1) draining; jobs still running at "}, nil)
	if got := a.last(); got != `/v1/nodes/9a8b/drain {"deadline":"10m0s","enable":true}` {
		t.Errorf("sent %s", got)
	}
	r = runMain(t, "node", "drain", "-address", a.srv.URL, "-enable", "9a8b")
	r.check(t, exitOK, []string{"draining; its running jobs may finish (no deadline)"}, nil)
	r = runMain(t, "node", "drain", "-address", a.srv.URL, "-disable", "9a8b")
	r.check(t, exitOK, []string{"==> Node 9a8b7c6d (build1) no longer draining; eligible for new jobs"}, nil)
	if got := a.last(); got != `/v1/nodes/9a8b/drain {"enable":false}` {
		t.Errorf("sent %s", got)
	}

	for _, args := range [][]string{
		{"9a8b"},                                // neither
		{"-enable", "-disable", "9a8b"},         // both
		{"-disable", "-deadline", "5m", "9a8b"}, // deadline without enable
		{"-enable"},                             // no ID
	} {
		r := runMain(t, append([]string{"node", "drain", "-address", a.srv.URL}, args...)...)
		r.check(t, exitUsage, nil, []string{"usage: ciplat node drain"})
	}
	r = runMain(t, "node", "drain", "-address", a.srv.URL, "-enable", "ffff")
	r.check(t, exitFailure, nil, []string{`Error: drain node "ffff": node ffff not found (HTTP 404)`})
}

func TestNodeEligibility(t *testing.T) {
	a := newNodeOpsAgent(t)
	r := runMain(t, "node", "eligibility", "-address", a.srv.URL, "-disable", "9a8b")
	r.check(t, exitOK, []string{"==> Node 9a8b7c6d (build1) is ineligible: no new jobs are placed on it"}, nil)
	if got := a.last(); got != `/v1/nodes/9a8b/eligibility {"eligible":false}` {
		t.Errorf("sent %s", got)
	}
	r = runMain(t, "node", "eligibility", "-address", a.srv.URL, "-enable", "9a8b")
	r.check(t, exitOK, []string{"is eligible for new jobs"}, nil)
	r = runMain(t, "node", "eligibility", "-address", a.srv.URL, "9a8b")
	r.check(t, exitUsage, nil, []string{"give exactly one of -enable and -disable"})
}

func TestNodeStatus_Verbose(t *testing.T) {
	f := newFakeAgent(t)
	f.nodes = []*api.Node{
		{ID: nodeID, Name: "build1", Status: api.NodeStatusReady, Eligible: true, Drain: true,
			DrainDeadline: time.Now().Add(10 * time.Minute),
			Resources:     api.Resources{CPU: 4000, MemoryMB: 8192}, Reserved: api.Resources{CPU: 500, MemoryMB: 1024},
			Allocated:  &api.Resources{CPU: 1000, MemoryMB: 512},
			Attributes: map[string]string{"label.zone": "a", "label.arch": "amd64", "os": "linux"},
			Drivers:    map[string]*api.DriverInfo{"exec": {Detected: true, Healthy: true}}},
	}
	r := runMain(t, "node", "status", "-verbose", "-address", f.addr())
	r.check(t, exitOK, []string{"DRAIN", "RESERVED", "LABELS", nodeID, "no (draining)", "yes (deadline in ",
		"1000/4000", "500/1024", "arch=amd64,zone=a"}, nil)
	r = runMain(t, "node", "status", "-address", f.addr(), "9a8b")
	r.check(t, exitOK, []string{"Drain        = yes (deadline in ", "Labels       = arch=amd64,zone=a\n"}, nil)
}
