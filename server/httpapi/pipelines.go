package httpapi

import (
	"fmt"
	"net/http"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// pipelineView is GET /v1/pipelines/{id}: the pipeline with its jobs.
type pipelineView struct {
	*structs.Pipeline
	Jobs []*jobView `json:"jobs"`
}

// jobView is a job as the API shows it, with its placement explained in words.
type jobView struct {
	*structs.Job
	Explain string `json:"explain,omitempty"`
}

// newJobView is the API view of j.
func newJobView(j *structs.Job) *jobView {
	v := &jobView{Job: j}
	if j.State == structs.JobPending && j.Placement != nil {
		v.Explain = scheduler.Explain(j.Placement)
	}
	return v
}

// pipelineRow is a pipeline as every server-side list shows it: a row of
// GET /v1/pipelines and of GET /v1/ui/pipelines, and the payload of the
// WebSocket feed's "pipeline" messages. It is the wire type the Go client
// decodes, so the lists and the client never drift apart.
type pipelineRow = api.PipelineStub

// newPipelineRow summarizes p with its jobs' states read from st.
func newPipelineRow(st *state.StateStore, p *structs.Pipeline) *pipelineRow {
	row := &pipelineRow{
		ID: p.ID, Name: p.Name, State: string(p.State), CancelRequested: p.CancelRequested,
		Jobs: len(p.JobIDs), JobStates: map[string]int{},
		SubmittedAt: p.SubmittedAt, FinishedAt: p.FinishedAt,
		CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex,
	}
	for _, id := range p.JobIDs {
		if j, _ := st.JobByID(nil, id); j != nil {
			row.JobStates[string(j.State)]++
		}
	}
	return row
}

func (a *API) pipelineView(ws memdb.WatchSet, st *state.StateStore, id string) (*pipelineView, error) {
	p, err := st.PipelineByIDPrefix(ws, id)
	if err != nil {
		return nil, err
	}
	jobs, err := st.JobsByPipeline(ws, p.ID)
	if err != nil {
		return nil, err
	}
	v := &pipelineView{Pipeline: p, Jobs: make([]*jobView, 0, len(jobs))}
	for _, j := range jobs {
		v.Jobs = append(v.Jobs, newJobView(j))
	}
	return v, nil
}

func (a *API) handlePipelineGet(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var out *pipelineView
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		var err error
		out, err = a.pipelineView(ws, st, id)
		if err != nil {
			return 0, err
		}
		return max(st.Index(state.TablePipelines), st.Index(state.TableJobs)), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

func (a *API) handlePipelineList(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := ParseQuery(r)
	if err != nil {
		return nil, err
	}
	var out []*pipelineRow
	idx, err := a.b.State().BlockingQuery(r.Context(), q.Index, q.Wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		ps, err := st.Pipelines(ws)
		if err != nil {
			return 0, err
		}
		out = make([]*pipelineRow, 0, len(ps))
		for _, p := range ps {
			out = append(out, newPipelineRow(st, p))
		}
		return st.Index(state.TablePipelines), nil
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return out, nil
}

func (a *API) handlePipelineCancel(w http.ResponseWriter, r *http.Request) (any, error) {
	p, err := a.b.State().PipelineByIDPrefix(nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if p.State.Terminal() {
		return nil, &HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("pipeline %s already %s: only a pending or running pipeline can be cancelled", p.ID, p.State)}
	}
	_, idx, err := a.b.Apply(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{
		WriteRequest: structs.WriteRequest{Timestamp: a.b.Now()},
		PipelineID:   p.ID,
		Reason:       "cancelled by user",
	})
	if err != nil {
		return nil, err
	}
	SetIndex(w, idx)
	return a.pipelineView(nil, a.b.State(), p.ID)
}
