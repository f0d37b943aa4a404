package httpapi

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// The /v1/client routes are how client agents talk to servers.

// safeID is the form of a node or job ID a client may send: the log store
// names files after job IDs and refuses others (server/logstore.go keeps
// the same rule).
var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

func (h *API) handleClientNodeRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	var n structs.Node
	if err := decodeBody(r, &n); err != nil {
		return nil, err
	}
	if n.ID == "" || !safeID.MatchString(n.ID) {
		return nil, BadRequest("node id is required (letters, digits, '-', '_', '.')")
	}
	if n.Resources.CPU <= 0 || n.Resources.MemoryMB <= 0 {
		return nil, BadRequest("node resources must be positive: cpu (millicores) and memory (MiB)")
	}
	if n.Reserved.CPU < 0 || n.Reserved.MemoryMB < 0 {
		return nil, BadRequest("node reserved resources must not be negative: cpu (millicores) and memory (MiB)")
	}
	for name, d := range n.Drivers {
		switch {
		case name == "":
			return nil, BadRequest("drivers: a driver has an empty name")
		case d == nil:
			return nil, BadRequest("drivers.%s is null: want an object such as {\"detected\": true, \"healthy\": true}", structs.ShowKey(name))
		}
	}
	if n.Name == "" {
		n.Name = n.ID
	}
	st := h.b.State()
	old, err := st.NodeByID(nil, n.ID)
	if err != nil {
		return nil, err
	}
	n.Status = structs.NodeStatusReady
	n.Eligible = true
	if old != nil {
		n.Eligible = old.Eligible
		n.Drain = old.Drain
		n.DrainDeadline = old.DrainDeadline
	}
	n.StatusUpdatedAt = h.b.Now()
	_, idx, err := h.b.Apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{
		WriteRequest: structs.WriteRequest{Timestamp: h.b.Now()},
		Node:         &n,
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return h.b.State().NodeByID(nil, n.ID)
}

// ClientAlloc is an allocation with its job, so a client needs one read
// (a row of GET /v1/client/nodes/{id}/allocations).
type ClientAlloc struct {
	*structs.Allocation
	Job *structs.Job `json:"job"`
}

func (h *API) handleClientAllocs(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	nodeID := r.PathValue("id")
	var out []*ClientAlloc
	idx, err := h.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		allocs, err := st.AllocsByNode(ws, nodeID)
		if err != nil {
			return 0, err
		}
		out = out[:0]
		for _, a := range allocs {
			if !a.Live() {
				continue
			}
			j, err := st.JobByID(nil, a.JobID)
			if err != nil {
				return 0, err
			}
			out = append(out, &ClientAlloc{Allocation: a, Job: j})
		}
		return st.Index(state.TableAllocs), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	if out == nil {
		out = []*ClientAlloc{}
	}
	return out, nil
}

func (h *API) handleClientAllocUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	var updates []*structs.AllocUpdate
	if err := decodeBody(r, &updates); err != nil {
		return nil, err
	}
	if len(updates) == 0 {
		return nil, BadRequest("no allocation updates in body")
	}
	for i, u := range updates {
		// The FSM's own check, so the client hears 400 before anything
		// reaches Raft.
		if err := u.Validate(fmt.Sprintf("updates[%d]", i)); err != nil {
			return nil, BadRequest("%v", strings.TrimPrefix(err.Error(), structs.ErrInvalidRequest.Error()+": "))
		}
		if !structs.ValidClientCause(u.Cause) {
			return nil, BadRequest("updates[%d].cause %q: a client reports %s, or none for the job's own failure",
				i, u.Cause, strings.Join(structs.ClientCauses, " or "))
		}
		if u.Cause != "" && u.JobState != structs.JobFailed {
			return nil, BadRequest("updates[%d].cause %q: a cause goes with job_state FAILED, got %q", i, u.Cause, u.JobState)
		}
	}
	_, idx, err := h.b.Apply(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{
		WriteRequest: structs.WriteRequest{Timestamp: h.b.Now()},
		Updates:      updates,
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return map[string]uint64{"index": idx}, nil
}

func (h *API) handleClientLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	var entries []*api.LogEntry
	if err := decodeBody(r, &entries); err != nil {
		return nil, err
	}
	byJob := map[string][]*api.LogEntry{}
	var order []string
	for i, e := range entries {
		if e == nil {
			return nil, BadRequest("entries[%d] is null: want a log entry object", i)
		}
		if e.JobID == "" || !safeID.MatchString(e.JobID) {
			return nil, BadRequest("entries[%d].job_id is required", i)
		}
		if _, ok := byJob[e.JobID]; !ok {
			order = append(order, e.JobID)
		}
		byJob[e.JobID] = append(byJob[e.JobID], e)
	}
	if err := h.checkLogJobs(order); err != nil {
		return nil, err
	}
	dropped := 0
	for _, id := range order {
		n, err := h.b.LogStore().Append(id, byJob[id])
		if err != nil {
			return nil, err
		}
		dropped += n
		h.b.PublishLogs(byJob[id][:len(byJob[id])-n])
	}
	return map[string]int{"accepted": len(entries) - dropped, "dropped": dropped}, nil
}
