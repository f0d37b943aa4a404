package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// The /v1/client routes are how client agents talk to servers.

func decodeBody(r *http.Request, out any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		if strings.Contains(err.Error(), "http: request body too large") {
			return err
		}
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

func (s *Server) handleClientNodeRegister(w http.ResponseWriter, r *http.Request) (any, error) {
	var n structs.Node
	if err := decodeBody(r, &n); err != nil {
		return nil, err
	}
	if n.ID == "" || !safeID.MatchString(n.ID) {
		return nil, badRequest("node id is required (letters, digits, '-', '_', '.')")
	}
	if n.Resources.CPU <= 0 || n.Resources.MemoryMB <= 0 {
		return nil, badRequest("node resources must be positive: cpu (millicores) and memory (MiB)")
	}
	if n.Reserved.CPU < 0 || n.Reserved.MemoryMB < 0 {
		return nil, badRequest("node reserved resources must not be negative: cpu (millicores) and memory (MiB)")
	}
	for name, d := range n.Drivers {
		switch {
		case name == "":
			return nil, badRequest("drivers: a driver has an empty name")
		case d == nil:
			return nil, badRequest("drivers.%s is null: want an object such as {\"detected\": true, \"healthy\": true}", structs.ShowKey(name))
		}
	}
	if n.Name == "" {
		n.Name = n.ID
	}
	st := s.State()
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
	n.StatusUpdatedAt = s.now()
	_, idx, err := s.apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{
		WriteRequest: structs.WriteRequest{Timestamp: s.now()},
		Node:         &n,
	})
	if err != nil {
		return nil, err
	}
	setIndex(w, idx)
	return s.State().NodeByID(nil, n.ID)
}

// clientAlloc is an allocation with its job, so a client needs one read.
type clientAlloc struct {
	*structs.Allocation
	Job *structs.Job `json:"job"`
}

func (s *Server) handleClientAllocs(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	nodeID := r.PathValue("id")
	var out []*clientAlloc
	idx, err := s.State().BlockingQuery(r.Context(), q.index, q.wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
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
			out = append(out, &clientAlloc{Allocation: a, Job: j})
		}
		return st.Index(state.TableAllocs), nil
	})
	if err != nil {
		return nil, err
	}
	setIndex(w, idx)
	if out == nil {
		out = []*clientAlloc{}
	}
	return out, nil
}

func (s *Server) handleClientAllocUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	var updates []*structs.AllocUpdate
	if err := decodeBody(r, &updates); err != nil {
		return nil, err
	}
	if len(updates) == 0 {
		return nil, badRequest("no allocation updates in body")
	}
	for i, u := range updates {
		// The FSM's own check, so the client hears 400 before anything
		// reaches Raft.
		if err := u.Validate(fmt.Sprintf("updates[%d]", i)); err != nil {
			return nil, badRequest("%v", strings.TrimPrefix(err.Error(), structs.ErrInvalidRequest.Error()+": "))
		}
		if !structs.ValidClientCause(u.Cause) {
			return nil, badRequest("updates[%d].cause %q: a client reports %s, or none for the job's own failure",
				i, u.Cause, strings.Join(structs.ClientCauses, " or "))
		}
		if u.Cause != "" && u.JobState != structs.JobFailed {
			return nil, badRequest("updates[%d].cause %q: a cause goes with job_state FAILED, got %q", i, u.Cause, u.JobState)
		}
	}
	_, idx, err := s.apply(structs.AllocClientUpdateRequestType, &structs.AllocClientUpdateRequest{
		WriteRequest: structs.WriteRequest{Timestamp: s.now()},
		Updates:      updates,
	})
	if err != nil {
		return nil, err
	}
	setIndex(w, idx)
	return map[string]uint64{"index": idx}, nil
}

func (s *Server) handleClientLogs(w http.ResponseWriter, r *http.Request) (any, error) {
	var entries []*api.LogEntry
	if err := decodeBody(r, &entries); err != nil {
		return nil, err
	}
	byJob := map[string][]*api.LogEntry{}
	var order []string
	for i, e := range entries {
		if e == nil {
			return nil, badRequest("entries[%d] is null: want a log entry object", i)
		}
		if e.JobID == "" || !safeID.MatchString(e.JobID) {
			return nil, badRequest("entries[%d].job_id is required", i)
		}
		if _, ok := byJob[e.JobID]; !ok {
			order = append(order, e.JobID)
		}
		byJob[e.JobID] = append(byJob[e.JobID], e)
	}
	if err := s.checkLogJobs(order); err != nil {
		return nil, err
	}
	dropped := 0
	for _, id := range order {
		n, err := s.logs.Append(id, byJob[id])
		if err != nil {
			return nil, err
		}
		dropped += n
		s.publishLogs(byJob[id][:len(byJob[id])-n])
	}
	return map[string]int{"accepted": len(entries) - dropped, "dropped": dropped}, nil
}
