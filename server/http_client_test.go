package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestHTTP_ClientBodiesRefuseNull sends the bodies issue 12 found: each is
// a 400 naming the field, and the server keeps serving (no entry reached
// Raft, no handler panicked).
func TestHTTP_ClientBodiesRefuseNull(t *testing.T) {
	ts := newTestServer(t, "")
	tests := []struct {
		name, path, body, want string
	}{
		{"node with a null driver", "/v1/client/nodes",
			`{"id":"n1","resources":{"cpu":1000,"memory":1024},"drivers":{"exec":null}}`, "drivers.exec"},
		{"node with an empty driver name", "/v1/client/nodes",
			`{"id":"n1","resources":{"cpu":1000,"memory":1024},"drivers":{"":{"healthy":true}}}`, "drivers"},
		{"node body null", "/v1/client/nodes", `null`, "node id"},
		{"allocation updates [null]", "/v1/client/allocations", `[null]`, "updates[0]"},
		{"allocation update unknown client status", "/v1/client/allocations",
			`[{"alloc_id":"a1","client_status":"zombie"}]`, "updates[0].client_status"},
		{"allocation update unknown step state", "/v1/client/allocations",
			`[{"alloc_id":"a1","steps":[{"name":"s","state":"DANCING"}]}]`, "updates[0].steps[0].state"},
		{"logs [null]", "/v1/client/logs", `[null]`, "entries[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out map[string]string
			resp := ts.do("POST", tt.path, []byte(tt.body), nil, &out)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(out["error"], tt.want) {
				t.Fatalf("POST %s %s = %d %v, want 400 naming %q", tt.path, tt.body, resp.StatusCode, out, tt.want)
			}
		})
	}
	// A 100 KB driver name is not echoed back.
	var out map[string]string
	huge := strings.Repeat("x", 100<<10)
	resp := ts.do("POST", "/v1/client/nodes", []byte(`{"id":"n1","resources":{"cpu":1000,"memory":1024},"drivers":{"`+huge+`":null}}`), nil, &out)
	if resp.StatusCode != http.StatusBadRequest || len(out["error"]) >= 300 || !strings.Contains(out["error"], "(102400 bytes)") {
		t.Fatalf("null driver with a 100 KB name = %d, error of %d bytes (want 400, < 300 bytes): %.200s", resp.StatusCode, len(out["error"]), out["error"])
	}
	// The server still serves: a valid registration commits.
	var n map[string]any
	resp = ts.do("POST", "/v1/client/nodes", []byte(`{"id":"n1","resources":{"cpu":1000,"memory":1024},"drivers":{"exec":{"detected":true,"healthy":true}}}`), nil, &n)
	if resp.StatusCode != http.StatusOK || n["id"] != "n1" {
		b, _ := json.Marshal(n)
		t.Fatalf("valid register = %d %s", resp.StatusCode, b)
	}
}

// TestHTTP_SnapshotRestoreRefusesPoisonRows uploads a snapshot whose node
// row holds a null driver entry: the FSM refuses the restore entry
// (structs.ErrInvalidRequest), which is a 400 naming the row, and the
// state stays.
func TestHTTP_SnapshotRestoreRefusesPoisonRows(t *testing.T) {
	ts := newTestServer(t, "")
	resp := ts.do("POST", "/v1/client/nodes", []byte(`{"id":"n1","resources":{"cpu":1000,"memory":1024},"drivers":{"exec":{"detected":true,"healthy":true}}}`), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register: HTTP %d", resp.StatusCode)
	}
	resp = ts.do("GET", "/v1/operator/snapshot", nil, nil, nil)
	snap, _ := io.ReadAll(resp.Body)
	bad := strings.Replace(string(snap), `"drivers":{"exec":{"detected":true,"healthy":true}}`, `"drivers":{"exec":null}`, 1)
	if bad == string(snap) {
		t.Fatalf("no driver entry in the snapshot:\n%s", snap)
	}
	var out map[string]string
	resp = ts.do("PUT", "/v1/operator/snapshot", []byte(bad), nil, &out)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(out["error"], `nodes["n1"].drivers.exec`) {
		t.Fatalf("restore = %d %v, want 400 naming the node's driver", resp.StatusCode, out)
	}
	if n, _ := ts.srv.State().NodeByID(nil, "n1"); n == nil || n.Drivers["exec"] == nil {
		t.Fatalf("node n1 after a refused restore = %+v", n)
	}
}

// TestServer_ApplyValidatesBeforeProposing: a request the FSM would refuse
// is refused before it is proposed, so it never reaches the Raft log.
func TestServer_ApplyValidatesBeforeProposing(t *testing.T) {
	ts := newTestServer(t, "")
	before := ts.srv.raft.LastIndex()
	_, _, err := ts.srv.apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{
		WriteRequest: structs.WriteRequest{Timestamp: ts.srv.now()},
		Node:         &structs.Node{ID: "n1", Status: structs.NodeStatusReady, Drivers: map[string]*structs.DriverInfo{"exec": nil}}})
	if !errors.Is(err, structs.ErrInvalidRequest) || !strings.Contains(err.Error(), "node.drivers.exec") {
		t.Fatalf("apply = %v, want ErrInvalidRequest naming node.drivers.exec", err)
	}
	if after := ts.srv.raft.LastIndex(); after != before {
		t.Fatalf("the Raft log grew from %d to %d: the refused request was proposed", before, after)
	}
}
