package httpapi

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

func (a *API) handlePipelineSubmit(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.submit(w, r, a.cfg.SpecLimits.ParsePipeline)
}

func (a *API) handleJobSubmit(w http.ResponseWriter, r *http.Request) (any, error) {
	return a.submit(w, r, a.cfg.SpecLimits.ParseJob)
}

// ReadSpec reads a spec body; past the size limit it answers 413 naming
// the limit and its flag.
func ReadSpec(r *http.Request) ([]byte, error) {
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
func (a *API) submit(w http.ResponseWriter, r *http.Request, parse func([]byte) (*structs.PipelineSpec, error)) (any, error) {
	body, err := ReadSpec(r)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, BadRequest("empty body: send a pipeline spec as YAML or JSON")
	}
	spec, err := parse(body)
	if err != nil {
		var se jobspec.Errors
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, BadRequest("invalid pipeline spec: %v", err)
	}
	idem, err := a.idempotencyOf(r, spec)
	if err != nil {
		return nil, err
	}
	if err := a.b.Admit(w); err != nil {
		return nil, err
	}
	p, jobs := NewPipeline(spec, idem.key)
	now := a.b.Now()
	req := &structs.PipelineRegisterRequest{
		WriteRequest:         structs.WriteRequest{Timestamp: now},
		Pipeline:             p,
		Jobs:                 jobs,
		IdempotencyKey:       idem.key,
		BodyHash:             idem.hash,
		IdempotencyExpiresAt: idem.expiresAt(now),
	}
	if err := registerEntryCheck(req, a.cfg.SpecLimits.RegisterEntryBytes()); err != nil {
		return nil, err
	}
	resp, _, err := a.b.Apply(structs.PipelineRegisterRequestType, req)
	if err != nil {
		return nil, err
	}
	rr, ok := resp.(*structs.PipelineRegisterResponse)
	if !ok {
		return nil, fmt.Errorf("unexpected register response %T", resp)
	}
	view, err := a.pipelineView(nil, a.b.State(), rr.PipelineID)
	if err != nil {
		return nil, err
	}
	code := http.StatusCreated
	if rr.Existing {
		code = http.StatusOK
	}
	SetIndex(w, rr.Index)
	WriteJSON(w, code, view)
	return Streamed{}, nil
}

// NewPipeline builds the records of a submitted spec, with fresh IDs.
func NewPipeline(spec *structs.PipelineSpec, key string) (*structs.Pipeline, []*structs.Job) {
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
func (a *API) idempotencyOf(r *http.Request, spec *structs.PipelineSpec) (submitIdempotency, error) {
	vals := r.Header.Values("Idempotency-Key")
	if len(vals) == 0 || (len(vals) == 1 && vals[0] == "") {
		return submitIdempotency{}, nil
	}
	if len(vals) > 1 {
		return submitIdempotency{}, BadRequest("Idempotency-Key is given %d times: send one", len(vals))
	}
	if err := structs.ValidateIdempotencyKey(vals[0]); err != nil {
		return submitIdempotency{}, BadRequest("%v", err)
	}
	hash, err := structs.SpecHash(spec)
	if err != nil {
		return submitIdempotency{}, err
	}
	return submitIdempotency{key: vals[0], hash: hash, ttl: a.cfg.IdempotencyTTL}, nil
}
