package command

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ciplat/ciplat/api"
)

// fakeScheduler answers GET/PUT /v1/operator/scheduler and POST /v1/schedule.
type fakeScheduler struct {
	mu     sync.Mutex
	cfg    api.SchedulerConfiguration
	gotPut []map[string]any
	gotCAS []string
	spec   []byte
}

func newFakeScheduler(t *testing.T) (*fakeScheduler, string) {
	f := &fakeScheduler{cfg: api.SchedulerConfiguration{Algorithm: "binpack", Workers: 2, Source: "agent"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/operator/scheduler", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, 200, f.cfg)
	})
	mux.HandleFunc("PUT /v1/operator/scheduler", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		cas := r.URL.Query().Get("cas")
		f.gotPut, f.gotCAS = append(f.gotPut, req), append(f.gotCAS, cas)
		if cas != strconv.FormatUint(f.cfg.ModifyIndex, 10) {
			writeErr(w, 409, "check-and-set failed")
			return
		}
		f.cfg.Algorithm, _ = req["algorithm"].(string)
		f.cfg.Preemption, _ = req["preemption"].(bool)
		if n, ok := req["workers"].(float64); ok {
			f.cfg.Workers = int(n)
		}
		f.cfg.Source, f.cfg.ModifyIndex = "raft", f.cfg.ModifyIndex+10
		writeJSON(w, 200, f.cfg)
	})
	mux.HandleFunc("POST /v1/schedule", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.spec = b
		f.mu.Unlock()
		switch {
		case strings.Contains(string(b), "invalid"):
			writeErr(w, 400, "line 2, resources.cpu: expected a positive integer (millicores), got -1")
		case strings.Contains(string(b), "huge"):
			writeJSON(w, 200, api.ScheduleDryRun{
				Placed: false, Algorithm: "binpack",
				Metrics: &api.PlacementMetrics{NodesEvaluated: 3, NodesExhausted: 3, ExhaustedBy: map[string]int{"memory": 3}},
				Explain: "3 nodes evaluated; 3 lacked memory",
			})
		default:
			writeJSON(w, 200, api.ScheduleDryRun{
				Placed: true, NodeID: "4f1c2d3e-aaaa", NodeName: "node-2", Score: 0.8123, Algorithm: "binpack",
				Offers: []api.ScheduleOffer{
					{NodeID: "4f1c2d3e-aaaa", NodeName: "node-2", Score: 0.8123, Scores: map[string]float64{"binpack": 0.6246, "label_spread": 1}},
					{NodeID: "5e2d3f4a-bbbb", NodeName: "node-1", Score: 0.4551, Scores: map[string]float64{"binpack": 0.9101, "label_spread": 0}},
				},
				Explain: "2 nodes evaluated, none rejected",
			})
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestOperatorScheduler(t *testing.T) {
	f, addr := newFakeScheduler(t)
	r := runMain(t, "operator", "scheduler", "get", "-address", addr)
	r.check(t, exitOK, []string{"Algorithm", "binpack", "Preemption", "false", "Workers", "2", "Source", "agent"}, nil)
	r = runMain(t, "operator", "scheduler", "get", "-address", addr, "-json")
	r.check(t, exitOK, []string{`"algorithm": "binpack"`}, nil)

	r = runMain(t, "operator", "scheduler", "set", "-address", addr)
	r.check(t, exitUsage, nil, []string{"nothing to set"})
	r = runMain(t, "operator", "scheduler", "set", "-address", addr, "-algorithm", "random")
	r.check(t, exitUsage, nil, []string{`invalid -algorithm "random"`})
	r = runMain(t, "operator", "scheduler", "set", "-address", addr, "-workers", "0")
	r.check(t, exitUsage, nil, []string{"invalid -workers 0"})
	r = runMain(t, "operator", "scheduler", "set", "-address", addr, "-preemption=maybe")
	r.check(t, exitUsage, nil, nil)

	// Only -algorithm: preemption keeps false, workers stays the agent's flag.
	r = runMain(t, "operator", "scheduler", "set", "-address", addr, "-algorithm", "spread")
	r.check(t, exitOK, []string{"spread", "raft", "10"}, nil)
	if got := f.gotPut[0]; got["algorithm"] != "spread" || got["preemption"] != false || got["workers"] != nil || f.gotCAS[0] != "0" {
		t.Errorf("PUT body %v cas %q, want spread, no preemption, no workers, cas 0", got, f.gotCAS[0])
	}
	// Then -preemption and -workers: the algorithm stored stays, cas is the new index.
	r = runMain(t, "operator", "scheduler", "set", "-address", addr, "-preemption=true", "-workers", "4")
	r.check(t, exitOK, []string{"spread", "true", "4"}, nil)
	if got := f.gotPut[1]; got["algorithm"] != "spread" || got["preemption"] != true || got["workers"] != float64(4) || f.gotCAS[1] != "10" {
		t.Errorf("PUT body %v cas %q, want spread, preemption, 4 workers, cas 10", got, f.gotCAS[1])
	}

	r = runMain(t, "operator", "scheduler")
	r.check(t, exitUsage, nil, []string{"operator scheduler get", "operator scheduler set"})
}

func TestOperatorScheduler_conflict(t *testing.T) {
	// A writer that races: the PUT sees a different index than the GET did.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/operator/scheduler", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.SchedulerConfiguration{Algorithm: "binpack", Workers: 2, Source: "raft", ModifyIndex: 3})
	})
	mux.HandleFunc("PUT /v1/operator/scheduler", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, 409, "check-and-set failed")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r := runMain(t, "operator", "scheduler", "set", "-address", srv.URL, "-algorithm", "spread")
	r.check(t, exitFailure, nil, []string{"changed while it was being set", "run the command again"})
}

func TestJobPlan(t *testing.T) {
	f, addr := newFakeScheduler(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	ok := write("ok.yml", "name: build\nspread: [{attr: label.zone}]\nsteps: [make]\n")
	r := runMain(t, "job", "plan", "-address", addr, ok)
	r.check(t, exitOK, []string{"Placeable", "yes", "node-2 (4f1c2d3e)", "0.8123", "binpack=0.6246 label_spread=1", "Explain: 2 nodes evaluated, none rejected"}, nil)
	inOrder(t, r.stdout, "Top offers:", "node-2", "node-1", "Explain:")
	if !strings.Contains(string(f.spec), "spread") {
		t.Errorf("the spec sent was %q", f.spec)
	}

	huge := write("huge.yml", "name: huge\nsteps: [make]\n")
	r = runMain(t, "job", "plan", "-address", addr, huge)
	r.check(t, exitFailure, []string{"Placeable", "no", "Explain: 3 nodes evaluated; 3 lacked memory"}, nil)
	r = runMain(t, "job", "plan", "-address", addr, "-json", huge)
	r.check(t, exitFailure, []string{`"placed": false`}, nil)

	bad := write("invalid.yml", "name: invalid\nsteps: [make]\n")
	r = runMain(t, "job", "plan", "-address", addr, bad)
	r.check(t, exitUsage, nil, []string{"expected a positive integer"})
	r = runMain(t, "job", "plan", "-address", addr, filepath.Join(dir, "missing.yml"))
	r.check(t, exitUsage, nil, []string{"cannot read"})
	r = runMain(t, "job", "plan", "-address", addr)
	r.check(t, exitUsage, nil, []string{"missing argument"})
	r = runMain(t, "job", "plan", "-address", addr, write("empty.yml", "  \n"))
	r.check(t, exitUsage, nil, []string{"empty"})
}
