package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/server/httpapi"
)

// TestHTTP_AmbiguousPrefix: a short ID that matches several rows is the
// user's mistake (400), never a 500, and the answer names at most five of
// the matches so the user can pick.
func TestHTTP_AmbiguousPrefix(t *testing.T) {
	ts := newTestServer(t, "")
	for i := 1; i <= 7; i++ {
		registerNode(ts, fmt.Sprintf("dup-%d", i))
	}
	var e struct{ Error string }
	resp := ts.do("GET", "/v1/nodes/dup-", nil, nil, &e)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GET /v1/nodes/dup-: HTTP %d %q, want 400", resp.StatusCode, e.Error)
	}
	if n := strings.Count(e.Error, "dup-"); n != 6 || !strings.Contains(e.Error, "and more") { // the prefix + 5 matches
		t.Fatalf("error %q: want the prefix, five matches and 'and more'", e.Error)
	}
	if resp := ts.do("POST", "/v1/nodes/dup-/eligibility", []byte(`{"eligible": false}`), nil, &e); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST /v1/nodes/dup-/eligibility: HTTP %d %q, want 400", resp.StatusCode, e.Error)
	}
	if resp := ts.do("GET", "/v1/nodes/dup-7", nil, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/nodes/dup-7: HTTP %d, want 200", resp.StatusCode)
	}

	// 17 pipelines: two of them share a first hex digit (pigeonhole).
	seen := map[byte]string{}
	var first byte
	for i := 0; first == 0; i++ {
		if i == 17 {
			t.Fatal("17 pipeline IDs with 17 different first characters")
		}
		p, code := submit(ts, oneJob, nil)
		if code != http.StatusCreated {
			t.Fatalf("submit: HTTP %d", code)
		}
		if _, ok := seen[p.ID[0]]; ok {
			first = p.ID[0]
		}
		seen[p.ID[0]] = p.ID
	}
	for _, path := range []string{"/v1/pipelines/", "/v1/pipelines/%s/logs"} {
		if !strings.Contains(path, "%s") {
			path += "%s"
		}
		path = fmt.Sprintf(path, string(first))
		resp := ts.do("GET", path, nil, nil, &e)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error, "ambiguous") {
			t.Fatalf("GET %s: HTTP %d %q, want 400 ambiguous", path, resp.StatusCode, e.Error)
		}
	}
}

// TestRaftRemovePeer_Refused: removing the last voter is a configuration
// change Raft refuses: 409 with the reason, not 500.
func TestRaftRemovePeer_Refused(t *testing.T) {
	ts := newTestServer(t, "")
	var e struct{ Error string }
	resp := ts.do("DELETE", "/v1/operator/raft/peer?id=server-1", nil, nil, &e)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(e.Error, "last voter") {
		t.Fatalf("remove the last voter: HTTP %d %q, want 409 naming the last voter", resp.StatusCode, e.Error)
	}
}

// TestRaftChangeError maps what hashicorp/raft answers a configuration
// change to 409 (refused, with the reason) or 503 (no leader).
func TestRaftChangeError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{raft.ErrEnqueueTimeout, http.StatusConflict},
		{raft.ErrLeadershipTransferInProgress, http.StatusConflict},
		// The texts of raft's nextConfiguration and checkConfiguration.
		{fmt.Errorf("configuration changed since 12 (latest is 14)"), http.StatusConflict},
		{fmt.Errorf("need at least one voter in configuration: {[]}"), http.StatusConflict},
		{raft.ErrNotLeader, http.StatusServiceUnavailable},
		{raft.ErrLeadershipLost, http.StatusServiceUnavailable},
		{raft.ErrRaftShutdown, http.StatusServiceUnavailable},
		{errors.New("disk full"), http.StatusInternalServerError},
	} {
		rec := httptest.NewRecorder()
		httpapi.WriteError(rec, raftChangeError("s2", tc.err))
		if rec.Code != tc.code {
			t.Errorf("%v: HTTP %d, want %d", tc.err, rec.Code, tc.code)
		}
	}
}
