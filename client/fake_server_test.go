package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
)

// fakeServer implements, in memory, the /v1/client routes a client agent
// uses (and GET /v1/agent/gossip), with real blocking queries on the
// allocation list. It is the unit-test stand-in for a server; the
// end-to-end test runs the real one.
type fakeServer struct {
	srv      *httptest.Server
	api      *api.Client
	quit     chan struct{} // closed by close: blocking queries return
	quitOnce sync.Once

	mu          sync.Mutex
	index       uint64        // the allocation list's index
	changed     chan struct{} // closed and replaced on every change
	nodes       []*api.Node   // every registration, in order
	allocs      []*api.Allocation
	calls       [][]*api.AllocUpdate // every accepted UpdateAllocations call
	logsAtCall  []int                // len(logs) when each call arrived
	logs        []*api.LogEntry
	waitIndexes []uint64 // WaitIndex of every list request
	failUpdates int      // answer the next n UpdateAllocations with 503
	failLogs    int      // answer the next n PushLogs with 503
	// Heartbeats and gossip (heartbeat_test.go): the status heartbeats
	// answer ("" = ready), how many arrived, the gossip seeds served.
	heartbeatStatus string
	heartbeatCount  int
	gossipServers   []string
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	s := &fakeServer{index: 1, changed: make(chan struct{}), quit: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/client/nodes", s.registerNode)
	mux.HandleFunc("GET /v1/client/nodes/{id}/allocations", s.nodeAllocations)
	mux.HandleFunc("POST /v1/client/allocations", s.updateAllocs)
	mux.HandleFunc("POST /v1/client/logs", s.pushLogs)
	mux.HandleFunc("POST /v1/client/nodes/{id}/heartbeat", s.heartbeat)
	mux.HandleFunc("GET /v1/agent/gossip", s.gossip)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.close)
	var err error
	if s.api, err = api.NewClient(&api.Config{Address: s.srv.URL}); err != nil {
		t.Fatal(err)
	}
	return s
}

// changedLocked wakes blocking queries and waiting tests; s.mu must be held.
func (s *fakeServer) changedLocked(bumpIndex bool) {
	if bumpIndex {
		s.index++
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *fakeServer) registerNode(w http.ResponseWriter, r *http.Request) {
	var n api.Node
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, `{"error":"bad node"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.nodes = append(s.nodes, &n)
	s.changedLocked(false)
	s.mu.Unlock()
	writeJSON(w, &n)
}

func (s *fakeServer) nodeAllocations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait := 5 * time.Minute
	if v := r.URL.Query().Get("wait"); v != "" {
		wait, _ = time.ParseDuration(v)
	}
	timeout := time.After(wait)
	s.mu.Lock()
	s.waitIndexes = append(s.waitIndexes, idx)
	s.changedLocked(false)
	for idx > 0 && s.index <= idx {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			idx = 0 // answer with what there is
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
		s.mu.Lock()
	}
	out := []*api.Allocation{}
	for _, a := range s.allocs {
		if a.NodeID == id {
			out = append(out, a)
		}
	}
	b, _ := json.Marshal(out) // a snapshot: the client gets copies
	w.Header().Set("X-Ciplat-Index", strconv.FormatUint(s.index, 10))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *fakeServer) updateAllocs(w http.ResponseWriter, r *http.Request) {
	var ups []*api.AllocUpdate
	if err := json.NewDecoder(r.Body).Decode(&ups); err != nil {
		http.Error(w, `{"error":"bad updates"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failUpdates > 0 {
		s.failUpdates--
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"no leader"}`))
		s.changedLocked(false)
		return
	}
	s.calls = append(s.calls, ups)
	s.logsAtCall = append(s.logsAtCall, len(s.logs))
	for _, u := range ups {
		for _, a := range s.allocs {
			if a.ID == u.AllocID {
				a.ClientStatus = u.ClientStatus
				if a.Job != nil && u.JobState != "" {
					a.Job.State = u.JobState
				}
			}
		}
	}
	s.changedLocked(true)
	writeJSON(w, struct{}{})
}

func (s *fakeServer) pushLogs(w http.ResponseWriter, r *http.Request) {
	var es []*api.LogEntry
	if err := json.NewDecoder(r.Body).Decode(&es); err != nil {
		http.Error(w, `{"error":"bad logs"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failLogs > 0 {
		s.failLogs--
		w.WriteHeader(http.StatusServiceUnavailable)
		s.changedLocked(false)
		return
	}
	s.logs = append(s.logs, es...)
	s.changedLocked(false)
	writeJSON(w, struct{}{})
}

// --- helpers for tests ---

// close stops the server: blocking queries end, connections close. The
// client sees a server that is gone.
func (s *fakeServer) close() {
	s.quitOnce.Do(func() { close(s.quit) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// waitFor waits until cond (called with s.mu held) is true, failing the test
// after 15 s. It wakes on every change the server sees, never on a timer.
func (s *fakeServer) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// addAlloc makes a visible on the allocation list.
func (s *fakeServer) addAlloc(a *api.Allocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs = append(s.allocs, a)
	s.changedLocked(true)
}

// setAlloc changes an allocation on the list (and bumps the index even when
// nothing changed, to deliver the list again).
func (s *fakeServer) setAlloc(id string, fn func(a *api.Allocation)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.allocs {
		if a.ID == id {
			fn(a)
		}
	}
	s.changedLocked(true)
}

// updates returns every update for an allocation, in the order received.
func (s *fakeServer) updates(id string) []*api.AllocUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updatesLocked(id)
}

func (s *fakeServer) updatesLocked(id string) []*api.AllocUpdate {
	var out []*api.AllocUpdate
	for _, c := range s.calls {
		for _, u := range c {
			if u.AllocID == id {
				out = append(out, u)
			}
		}
	}
	return out
}

// waitFinal waits for an update that ends the allocation and returns it.
func (s *fakeServer) waitFinal(t *testing.T, id string) *api.AllocUpdate {
	t.Helper()
	var final *api.AllocUpdate
	s.waitFor(t, "the final report of "+id, func() bool {
		for _, u := range s.updatesLocked(id) {
			if u.ClientStatus != api.AllocClientRunning && u.ClientStatus != api.AllocClientPending {
				final = u
				return true
			}
		}
		return false
	})
	return final
}

// lastWaitIndex is the WaitIndex of the client's latest list request.
func (s *fakeServer) lastWaitIndex() uint64 {
	if len(s.waitIndexes) == 0 {
		return 0
	}
	return s.waitIndexes[len(s.waitIndexes)-1]
}
