package httpapi

import (
	"net/http"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// The node routes operators and client agents use besides registration:
// drain, eligibility, heartbeats.

// resolveNode finds a node by ID or unique ID prefix.
func resolveNode(st *state.StateStore, id string) (*structs.Node, error) {
	n, err := st.NodeByID(nil, id)
	if err != nil || n != nil {
		return n, err
	}
	nodes, err := st.Nodes(nil)
	if err != nil {
		return nil, err
	}
	n, err = uniquePrefix("node", id, nodes, func(n *structs.Node) string { return n.ID })
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &HTTPError{Code: http.StatusNotFound, Msg: "node " + id + " not found (ciplat node status lists them)"}
	}
	return n, nil
}

// drainRequest is the body of POST /v1/nodes/{id}/drain.
type drainRequest struct {
	Enable bool `json:"enable"`
	// Deadline is a duration ("10m") from now after which what still runs
	// is stopped and rescheduled; empty or "0" means no deadline.
	Deadline string `json:"deadline,omitempty"`
}

func (a *API) handleNodeDrain(w http.ResponseWriter, r *http.Request) (any, error) {
	var req drainRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	var d time.Duration
	if req.Deadline != "" {
		var err error
		d, err = time.ParseDuration(req.Deadline)
		if err != nil || d < 0 {
			return nil, BadRequest("invalid deadline %q: want a duration such as \"10m\" (\"0\" for none)", req.Deadline)
		}
	}
	if !req.Enable && d != 0 {
		return nil, BadRequest("a deadline needs \"enable\": true")
	}
	n, err := resolveNode(a.b.State(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	now := a.b.Now()
	dr := &structs.NodeDrainRequest{WriteRequest: structs.WriteRequest{Timestamp: now}, NodeID: n.ID, Enable: req.Enable}
	if d > 0 {
		dr.Deadline = now.Add(d)
	}
	return a.applyNodeOp(w, n.ID, structs.NodeDrainRequestType, dr)
}

// eligibilityRequest is the body of POST /v1/nodes/{id}/eligibility.
type eligibilityRequest struct {
	Eligible *bool `json:"eligible"`
}

func (a *API) handleNodeEligibility(w http.ResponseWriter, r *http.Request) (any, error) {
	var req eligibilityRequest
	if err := decodeBody(r, &req); err != nil {
		return nil, err
	}
	if req.Eligible == nil {
		return nil, BadRequest("body needs \"eligible\": true or false")
	}
	n, err := resolveNode(a.b.State(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return a.applyNodeOp(w, n.ID, structs.NodeEligibilityRequestType, &structs.NodeEligibilityRequest{
		WriteRequest: structs.WriteRequest{Timestamp: a.b.Now()}, NodeID: n.ID, Eligible: *req.Eligible})
}

// applyNodeOp commits an operator's node entry and answers with the node
// as committed.
func (a *API) applyNodeOp(w http.ResponseWriter, id string, t structs.MessageType, req any) (any, error) {
	_, idx, err := a.b.Apply(t, req)
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	st := a.b.State()
	n, err := st.NodeByID(nil, id)
	if err != nil || n == nil {
		return nil, err
	}
	return nodeViewOf(st, nil, n)
}

// heartbeatResponse tells a client what the servers think of its node and
// how often to heartbeat.
type heartbeatResponse struct {
	// Status is the node's committed status: a client told "down"
	// registers again.
	Status string `json:"status"`
	// HeartbeatTTL is how long the leader waits before it marks a silent
	// node down; clients heartbeat every third of it.
	HeartbeatTTL string `json:"heartbeat_ttl"`
}

// handleClientNodeHeartbeat is a client saying it is alive. It is a write
// route (forwarded to the leader, which keeps heartbeats in memory) that
// writes nothing to Raft. An unknown node gets 404: it must register.
func (a *API) handleClientNodeHeartbeat(w http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	n, err := a.b.State().NodeByID(nil, id)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, &HTTPError{Code: http.StatusNotFound, Msg: "node " + id + " is not registered: register it first (POST /v1/client/nodes)"}
	}
	if n.Status == structs.NodeStatusReady {
		a.b.NodeHeartbeat(id)
	}
	return &heartbeatResponse{Status: n.Status, HeartbeatTTL: a.b.HeartbeatTTL().String()}, nil
}
