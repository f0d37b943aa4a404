package server

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-memdb"

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

func newJobView(j *structs.Job) *jobView {
	v := &jobView{Job: j}
	if j.State == structs.JobPending && j.Placement != nil {
		v.Explain = scheduler.Explain(j.Placement)
	}
	return v
}

// pipelineStub is one row of GET /v1/pipelines.
type pipelineStub struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	State       string         `json:"state"`
	Jobs        int            `json:"jobs"`
	JobStates   map[string]int `json:"job_states,omitempty"`
	SubmittedAt any            `json:"submitted_at"`
	FinishedAt  any            `json:"finished_at,omitempty"`
	CreateIndex uint64         `json:"create_index"`
	ModifyIndex uint64         `json:"modify_index"`
}

func (s *Server) handlePipelineSubmit(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.submit(w, r, s.cfg.SpecLimits.ParsePipeline)
}

func (s *Server) handleJobSubmit(w http.ResponseWriter, r *http.Request) (any, error) {
	return s.submit(w, r, s.cfg.SpecLimits.ParseJob)
}

// specRoute caps the body of a route that takes a spec at the spec size
// limit (SpecLimits.SpecBytes, -limit-spec-bytes) instead of maxBodyBytes.
func (s *Server) specRoute(rt route) route {
	rt.maxBody = int64(s.cfg.SpecLimits.SpecBytes)
	return rt
}

// readSpec reads a spec body; past the size limit it answers 413 naming
// the limit and its flag.
func readSpec(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &HTTPError{Code: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("the spec is larger than the %d bytes allowed (the server's -limit-spec-bytes): split the pipeline or shorten its commands", mbe.Limit)}
	}
	return body, err
}

// submit parses a spec body, registers it through Raft and answers 201 with
// the new pipeline, or 200 with the earlier one when the Idempotency-Key
// was used before with the same spec (409 with another spec; see
// idempotencyOf).
func (s *Server) submit(w http.ResponseWriter, r *http.Request, parse func([]byte) (*structs.PipelineSpec, error)) (any, error) {
	body, err := readSpec(r)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, badRequest("empty body: send a pipeline spec as YAML or JSON")
	}
	spec, err := parse(body)
	if err != nil {
		var se structs.SpecErrors
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, badRequest("invalid pipeline spec: %v", err)
	}
	idem, err := s.idempotencyOf(r, spec)
	if err != nil {
		return nil, err
	}
	if err := s.admit(w); err != nil {
		return nil, err
	}
	p, jobs := newPipeline(spec, idem.key)
	now := s.now()
	req := &structs.PipelineRegisterRequest{
		WriteRequest:         structs.WriteRequest{Timestamp: now},
		Pipeline:             p,
		Jobs:                 jobs,
		IdempotencyKey:       idem.key,
		BodyHash:             idem.hash,
		IdempotencyExpiresAt: idem.expiresAt(now),
	}
	if err := registerEntryCheck(req, s.cfg.SpecLimits.RegisterEntryBytes()); err != nil {
		return nil, err
	}
	resp, _, err := s.apply(structs.PipelineRegisterRequestType, req)
	if err != nil {
		return nil, err
	}
	rr, ok := resp.(*structs.PipelineRegisterResponse)
	if !ok {
		return nil, fmt.Errorf("unexpected register response %T", resp)
	}
	view, err := s.pipelineView(nil, s.State(), rr.PipelineID)
	if err != nil {
		return nil, err
	}
	code := http.StatusCreated
	if rr.Existing {
		code = http.StatusOK
	}
	setIndex(w, rr.Index)
	writeJSON(w, code, view)
	return streamed{}, nil
}

// newPipeline builds the records of a submitted spec, with fresh IDs.
func newPipeline(spec *structs.PipelineSpec, key string) (*structs.Pipeline, []*structs.Job) {
	p := &structs.Pipeline{
		ID:             uuid.NewString(),
		Name:           spec.Name,
		Spec:           spec,
		IdempotencyKey: key,
		State:          structs.PipelinePending,
	}
	jobs := make([]*structs.Job, 0, len(spec.Jobs))
	for _, js := range spec.Jobs {
		env := maps.Clone(spec.Env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, js.Env)
		j := &structs.Job{
			ID:         uuid.NewString(),
			PipelineID: p.ID,
			Name:       js.Name,
			Spec:       js,
			Env:        env,
			Priority:   js.Priority,
			State:      structs.JobPending,
			Attempt:    1,
		}
		p.JobIDs = append(p.JobIDs, j.ID)
		jobs = append(jobs, j)
	}
	return p, jobs
}

func (s *Server) pipelineView(ws memdb.WatchSet, st *state.StateStore, id string) (*pipelineView, error) {
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

func (s *Server) handlePipelineGet(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var out *pipelineView
	idx, err := s.State().BlockingQuery(r.Context(), q.index, q.wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		var err error
		out, err = s.pipelineView(ws, st, id)
		if err != nil {
			return 0, err
		}
		return max(st.Index(state.TablePipelines), st.Index(state.TableJobs)), nil
	})
	if err != nil {
		return nil, err
	}
	setIndex(w, idx)
	return out, nil
}

func (s *Server) handlePipelineList(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := parseQuery(r)
	if err != nil {
		return nil, err
	}
	var out []*pipelineStub
	idx, err := s.State().BlockingQuery(r.Context(), q.index, q.wait, func(ws memdb.WatchSet, st *state.StateStore) (uint64, error) {
		ps, err := st.Pipelines(ws)
		if err != nil {
			return 0, err
		}
		out = make([]*pipelineStub, 0, len(ps))
		for _, p := range ps {
			stub := &pipelineStub{
				ID: p.ID, Name: p.Name, State: string(p.State), Jobs: len(p.JobIDs),
				JobStates: map[string]int{}, SubmittedAt: p.SubmittedAt,
				CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex,
			}
			if !p.FinishedAt.IsZero() {
				stub.FinishedAt = p.FinishedAt
			}
			for _, jid := range p.JobIDs {
				if j, _ := st.JobByID(nil, jid); j != nil {
					stub.JobStates[string(j.State)]++
				}
			}
			out = append(out, stub)
		}
		return st.Index(state.TablePipelines), nil
	})
	if err != nil {
		return nil, err
	}
	setIndex(w, idx)
	return out, nil
}

func (s *Server) handlePipelineCancel(w http.ResponseWriter, r *http.Request) (any, error) {
	p, err := s.State().PipelineByIDPrefix(nil, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if p.State.Terminal() {
		return nil, &HTTPError{Code: http.StatusConflict, Msg: fmt.Sprintf("pipeline %s already %s: only a pending or running pipeline can be cancelled", p.ID, p.State)}
	}
	_, idx, err := s.apply(structs.PipelineCancelRequestType, &structs.PipelineCancelRequest{
		WriteRequest: structs.WriteRequest{Timestamp: s.now()},
		PipelineID:   p.ID,
		Reason:       "cancelled by user",
	})
	if err != nil {
		return nil, err
	}
	setIndex(w, idx)
	return s.pipelineView(nil, s.State(), p.ID)
}

// submitIdempotency is what a submit's Idempotency-Key puts in its register
// entry; the zero value is a submit without a key.
type submitIdempotency struct {
	key  string
	hash string // structs.SpecHash of the parsed spec
	ttl  time.Duration
}

// expiresAt is when the key expires for an entry stamped now.
func (i submitIdempotency) expiresAt(now time.Time) time.Time {
	if i.key == "" {
		return time.Time{}
	}
	return now.Add(i.ttl)
}

// idempotencyOf reads and checks a submit's Idempotency-Key header (400
// when it is malformed or given twice) and hashes the parsed spec, here at
// the edge, so the FSM can tell a retry (same key, same spec: the first
// pipeline, 200) from a reuse of the key for another request (409) without
// reading a clock or the body. An empty header is no key.
func (s *Server) idempotencyOf(r *http.Request, spec *structs.PipelineSpec) (submitIdempotency, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 || (len(vals) == 1 && vals[0] == "") {
		return submitIdempotency{}, nil
	}
	if len(vals) > 1 {
		return submitIdempotency{}, badRequest("Idempotency-Key is given %d times: send one", len(vals))
	}
	if err := structs.ValidateIdempotencyKey(vals[0]); err != nil {
		return submitIdempotency{}, badRequest("%v", err)
	}
	hash, err := structs.SpecHash(spec)
	if err != nil {
		return submitIdempotency{}, err
	}
	return submitIdempotency{key: vals[0], hash: hash, ttl: s.cfg.IdempotencyTTL}, nil
}
