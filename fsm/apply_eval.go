package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyEvalUpdate upserts evaluations as the leader's broker and workers
// change them (blocked, failed, re-queued); CreateIndex is kept. A PENDING
// job follows its evaluations: when the evaluation it waits on fails or is
// blocked, the job's reason says why; a follow-up of that evaluation
// (PreviousEval) becomes the one the job waits on, and its WaitUntil the
// job's RetryAt.
func applyEvalUpdate(tx *state.WriteTxn, req *structs.EvalUpdateRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	for i, e := range req.Evals {
		if e == nil {
			return nil, fmt.Errorf("eval update: evaluation %d is missing", i)
		}
		if err := tx.UpsertEval(e.Copy()); err != nil {
			return nil, err
		}
		if err := ac.followEval(e); err != nil {
			return nil, err
		}
	}
	return ac.done(nil)
}

// followEval updates the PENDING job of e as applyEvalUpdate says.
func (ac *applyCtx) followEval(e *structs.Evaluation) error {
	j, err := ac.tx.JobByID(e.JobID)
	if err != nil || j == nil || j.State != structs.JobPending || j.EvalID == "" {
		return err
	}
	waiting := e.Status == structs.EvalPending || e.Status == structs.EvalBlocked
	c := j.Copy()
	switch {
	case e.PreviousEval != "" && e.PreviousEval == j.EvalID && waiting:
		c.EvalID = e.ID
		c.RetryAt = e.WaitUntil
	case e.ID == j.EvalID && e.StatusDescription != "" &&
		(e.Status == structs.EvalFailed || e.Status == structs.EvalBlocked):
		c.Reason = e.StatusDescription
	default:
		return nil
	}
	return ac.putJob(c)
}
