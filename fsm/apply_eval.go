package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyEvalUpdate upserts evaluations as the leader's broker and workers
// change them (blocked, failed, re-queued); CreateIndex is kept.
func applyEvalUpdate(tx *state.WriteTxn, req *structs.EvalUpdateRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	for i, e := range req.Evals {
		if e == nil {
			return nil, fmt.Errorf("eval update: evaluation %d is missing", i)
		}
		if err := tx.UpsertEval(e.Copy()); err != nil {
			return nil, err
		}
	}
	return ac.done(nil)
}
