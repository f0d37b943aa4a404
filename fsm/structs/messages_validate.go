package structs

import "fmt"

// The Validate methods below check one Raft request on its own, without
// state: every pointer the apply function or a later reader follows is
// set, every slice element and map value is non-nil, IDs are not empty and
// enumerations hold a known value. The FSM runs them before an entry's
// apply function and refuses a failing entry with ErrInvalidRequest, the
// same way on every server, so nothing a client sends can crash Apply. The
// HTTP layer runs the same checks (or stricter ones) to answer 400 first.
//
// They must accept every entry a correct server proposes, so checks that
// need state (does the job exist?) stay in the apply functions.

// maxTimestampYear bounds an entry's timestamp: Apply adds at most
// ~146 years (a saturated retry backoff) to it, and the snapshot's JSON
// cannot write a year past 9999.
const maxTimestampYear = 9000

// RequestValidator is a Raft request that checks itself (see above).
type RequestValidator interface {
	Validate() error
}

// invalid builds an ErrInvalidRequest naming a field by its JSON path.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidRequest, field, fmt.Sprintf(format, args...))
}

// Validate checks the entry's timestamp.
func (w *WriteRequest) Validate() error {
	if y := w.Timestamp.UTC().Year(); y > maxTimestampYear {
		return invalid("timestamp", "year %d is past %d", y, maxTimestampYear)
	}
	return nil
}

// Validate implements RequestValidator.
func (r *PipelineRegisterRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	p := r.Pipeline
	switch {
	case p == nil:
		return invalid("pipeline", "missing")
	case p.ID == "":
		return invalid("pipeline.id", "empty")
	case p.Spec == nil:
		return invalid("pipeline.spec", "missing")
	}
	for i, j := range p.Spec.Jobs {
		if j == nil {
			return invalid(fmt.Sprintf("pipeline.spec.jobs[%d]", i), "null")
		}
	}
	for i, j := range r.Jobs {
		f := fmt.Sprintf("jobs[%d]", i)
		switch {
		case j == nil:
			return invalid(f, "null")
		case j.ID == "":
			return invalid(f+".id", "empty")
		case j.Spec == nil:
			return invalid(f+".spec", "missing")
		}
	}
	return nil
}

// Validate implements RequestValidator.
func (r *PlanApplyRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	for i, a := range r.Allocs {
		f := fmt.Sprintf("allocs[%d]", i)
		switch {
		case a == nil:
			return invalid(f, "null")
		case a.ID == "":
			return invalid(f+".id", "empty")
		case a.NodeID == "":
			return invalid(f+".node_id", "empty")
		case a.JobID == "":
			return invalid(f+".job_id", "empty")
		}
	}
	for i, e := range r.Evals {
		if err := validateEval(fmt.Sprintf("evals[%d]", i), e); err != nil {
			return err
		}
	}
	for i, p := range r.Preemptions {
		f := fmt.Sprintf("preemptions[%d]", i)
		switch {
		case p == nil:
			return invalid(f, "null")
		case p.AllocID == "":
			return invalid(f+".alloc_id", "empty")
		case p.ByAllocID == "":
			return invalid(f+".by_alloc_id", "empty")
		}
	}
	return nil
}

// validateEval checks an evaluation an entry upserts.
func validateEval(f string, e *Evaluation) error {
	switch {
	case e == nil:
		return invalid(f, "null")
	case e.ID == "":
		return invalid(f+".id", "empty")
	case e.JobID == "":
		return invalid(f+".job_id", "empty")
	}
	switch e.Status {
	case EvalPending, EvalBlocked, EvalComplete, EvalFailed, EvalCancelled:
	default:
		return invalid(f+".status", "%s is not one of pending, blocked, complete, failed, cancelled", ShowValue(e.Status))
	}
	return nil
}

// Validate implements RequestValidator.
func (r *AllocClientUpdateRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	for i, u := range r.Updates {
		if err := u.Validate(fmt.Sprintf("updates[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks one allocation report; field prefixes the names in its
// errors ("updates[3]").
func (u *AllocUpdate) Validate(field string) error {
	if u == nil {
		return invalid(field, "null")
	}
	if u.AllocID == "" {
		return invalid(field+".alloc_id", "empty")
	}
	switch u.ClientStatus {
	case "", AllocClientPending, AllocClientRunning, AllocClientComplete, AllocClientFailed, AllocClientLost:
	default:
		return invalid(field+".client_status", "%s is not one of pending, running, complete, failed, lost", ShowValue(u.ClientStatus))
	}
	switch u.JobState {
	case "", JobRunning, JobSucceeded, JobFailed:
	default:
		return invalid(field+".job_state", "%s is not one a client may report (RUNNING, SUCCEEDED or FAILED)", ShowValue(string(u.JobState)))
	}
	for i, s := range u.Steps {
		switch s.State {
		case StepPending, StepRunning, StepSucceeded, StepFailed, StepSkipped:
		default:
			return invalid(fmt.Sprintf("%s.steps[%d].state", field, i),
				"%s is not one of PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED", ShowValue(string(s.State)))
		}
	}
	return nil
}

// Validate implements RequestValidator.
func (r *PipelineCancelRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.PipelineID == "" {
		return invalid("pipeline_id", "empty")
	}
	return nil
}

// Validate implements RequestValidator.
func (r *NodeRegisterRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.Node == nil {
		return invalid("node", "missing")
	}
	return r.Node.Validate("node")
}

// Validate implements RequestValidator.
func (r *NodeStatusUpdateRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.NodeID == "" {
		return invalid("node_id", "empty")
	}
	return validateNodeStatus("status", r.Status)
}

// Validate implements RequestValidator.
func (r *EvalUpdateRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	for i, e := range r.Evals {
		if err := validateEval(fmt.Sprintf("evals[%d]", i), e); err != nil {
			return err
		}
	}
	return nil
}

// Validate implements RequestValidator.
func (r *StateRestoreRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if len(r.State) == 0 {
		return invalid("state", "empty")
	}
	return nil
}

// Validate implements RequestValidator.
func (r *WorkerStopRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.AllocID == "" {
		return invalid("alloc_id", "empty")
	}
	return nil
}

// Validate implements RequestValidator.
func (r *NodeDrainRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.NodeID == "" {
		return invalid("node_id", "empty")
	}
	if r.Enable && r.Complete {
		return invalid("complete", "set with enable: a drain is either started or completed")
	}
	if y := r.Deadline.UTC().Year(); y > maxTimestampYear {
		return invalid("deadline", "year %d is past %d", y, maxTimestampYear)
	}
	return nil
}

// Validate implements RequestValidator.
func (r *NodeEligibilityRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.NodeID == "" {
		return invalid("node_id", "empty")
	}
	return nil
}

// Validate implements RequestValidator.
func (r *NodeDrainDeadlineRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.NodeID == "" {
		return invalid("node_id", "empty")
	}
	return nil
}

// Validate implements RequestValidator.
func (r *SchedulerConfigRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.Config == nil {
		return invalid("config", "missing")
	}
	if err := r.Config.Validate(); err != nil {
		return fmt.Errorf("%w: config.%w", ErrInvalidRequest, err)
	}
	return nil
}

// Validate checks a node record; field prefixes the names in its errors
// ("node"). A nil DriverInfo is refused: Copy, the scheduler and the
// liveness check read every entry.
func (n *Node) Validate(field string) error {
	if n == nil {
		return invalid(field, "null")
	}
	if n.ID == "" {
		return invalid(field+".id", "empty")
	}
	if err := validateNodeStatus(field+".status", n.Status); err != nil {
		return err
	}
	for name, d := range n.Drivers {
		f := field + ".drivers." + ShowKey(name)
		if name == "" {
			return invalid(field+".drivers", "a driver has an empty name")
		}
		if d == nil {
			return invalid(f, "null: want an object such as {\"detected\": true, \"healthy\": true}")
		}
	}
	if y := n.DrainDeadline.UTC().Year(); y > maxTimestampYear {
		return invalid(field+".drain_deadline", "year %d is past %d", y, maxTimestampYear)
	}
	return nil
}

func validateNodeStatus(field, s string) error {
	if s != NodeStatusReady && s != NodeStatusDown {
		return invalid(field, "%s is not %q or %q", ShowValue(s), NodeStatusReady, NodeStatusDown)
	}
	return nil
}

// compile-time: every request type the FSM applies checks itself.
var (
	_ RequestValidator = (*PipelineRegisterRequest)(nil)
	_ RequestValidator = (*PlanApplyRequest)(nil)
	_ RequestValidator = (*AllocClientUpdateRequest)(nil)
	_ RequestValidator = (*PipelineCancelRequest)(nil)
	_ RequestValidator = (*NodeRegisterRequest)(nil)
	_ RequestValidator = (*NodeStatusUpdateRequest)(nil)
	_ RequestValidator = (*EvalUpdateRequest)(nil)
	_ RequestValidator = (*StateRestoreRequest)(nil)
	_ RequestValidator = (*NodeDrainRequest)(nil)
	_ RequestValidator = (*NodeEligibilityRequest)(nil)
	_ RequestValidator = (*NodeDrainDeadlineRequest)(nil)
	_ RequestValidator = (*SchedulerConfigRequest)(nil)
	_ RequestValidator = (*WorkerStopRequest)(nil)
	_ RequestValidator = (*IdempotencyKeySweepRequest)(nil)
)
