package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// SchedulerConfigView is GET /v1/operator/scheduler: the configuration in
// force. Source says where it comes from: "raft" once an operator stored
// one (it then survives restarts and leader changes), else "agent" (the
// leader's flags). ModifyIndex is what ?cas= must name to replace it.
type SchedulerConfigView struct {
	Algorithm   string `json:"algorithm"`
	Preemption  bool   `json:"preemption"`
	Workers     int    `json:"workers"`
	Source      string `json:"source"`
	ModifyIndex uint64 `json:"modify_index"`
}

// schedulerConfigBody is the body of PUT /v1/operator/scheduler. It
// replaces the whole configuration: an omitted algorithm means binpack,
// omitted preemption false, omitted workers the agent's -scheduler-workers.
type schedulerConfigBody struct {
	Algorithm  string `json:"algorithm"`
	Preemption bool   `json:"preemption"`
	Workers    *int   `json:"workers"`
}

func (a *API) schedulerConfigView(stored *structs.SchedulerConfig) *SchedulerConfigView {
	c := a.b.SchedulerConfig(stored)
	v := &SchedulerConfigView{Algorithm: c.Algorithm, Preemption: c.Preemption, Workers: *c.Workers, Source: "agent"}
	if stored != nil {
		v.Source, v.ModifyIndex = "raft", stored.ModifyIndex
	}
	return v
}

func (a *API) handleSchedulerConfigGet(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	var out *SchedulerConfigView
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		stored, err := st.SchedulerConfig(ws)
		if err != nil {
			return 0, err
		}
		out = a.schedulerConfigView(stored)
		return st.Index(state.TableSchedulerConfig), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

// handleSchedulerConfigPut stores a new configuration through Raft. With
// ?cas=N it applies only if the stored configuration's modify index is N
// (0: never set), else 409.
func (a *API) handleSchedulerConfigPut(w http.ResponseWriter, r *http.Request) (any, error) {
	var body schedulerConfigBody
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	c := &structs.SchedulerConfig{Algorithm: body.Algorithm, Preemption: body.Preemption, Workers: body.Workers}
	if c.Algorithm == "" {
		c.Algorithm = "binpack"
	}
	if err := c.Validate(); err != nil {
		return nil, BadRequest("invalid scheduler configuration: %v", err)
	}
	req := &structs.SchedulerConfigRequest{WriteRequest: structs.WriteRequest{Timestamp: a.b.Now()}, Config: c}
	if v := r.URL.Query().Get("cas"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, BadRequest("invalid cas %q: want the modify_index of GET /v1/operator/scheduler (0 when never set)", v)
		}
		req.CAS, req.CASIndex = true, n
	}
	resp, idx, err := a.b.Apply(structs.SchedulerConfigRequestType, req)
	if err != nil {
		return nil, err
	}
	rr, ok := resp.(*structs.SchedulerConfigResponse)
	if !ok {
		return nil, fmt.Errorf("unexpected scheduler config response %T", resp)
	}
	if !rr.Applied {
		return nil, &HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf(
			"scheduler configuration changed since: its modify_index is %d, not %d; read it again and retry with ?cas=%d",
			rr.Index, req.CASIndex, rr.Index)}
	}
	SetIndex(w, idx)
	stored, err := a.b.State().SchedulerConfig(nil)
	if err != nil {
		return nil, err
	}
	return a.schedulerConfigView(stored), nil
}
