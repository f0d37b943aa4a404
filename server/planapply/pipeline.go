package planapply

import (
	"errors"
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// ErrPipelineConflict means a placement of a job with spread or
// anti-affinity was scored on a snapshot that missed a job of the same
// pipeline placed since on the same node (anti-affinity) or value (spread):
// the worker schedules the evaluation again on state that shows it. It is a
// plan conflict (IsConflict) of its own kind, because its retries do not
// use up the scheduler worker's plan retries (they have a bound of their own).
var ErrPipelineConflict = errors.New("plan conflict on spread or anti-affinity")

// IsConflict reports whether a plan verdict is a conflict of either
// kind: schedule again rather than fail.
func IsConflict(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrPipelineConflict)
}

// recheckPipeline is the applier's pipeline re-check of a plan whose
// placement fits on node: the scores of spread and anti-affinity rest on the
// pipeline's other allocations in the plan's snapshot, and a sibling the
// snapshot did not show may make them wrong. Unseen are the pipeline's
// allocations committed after the plan's SnapshotIndex, those of plan
// entries in flight, and those accepted earlier in this batch (batch, by
// pipeline ID). scheduler.PipelineConflict judges; a conflict is returned
// as ErrPipelineConflict with its reason. Jobs without spread or
// anti-affinity cost one job lookup.
func recheckPipeline(snap *state.StateSnapshot, p *structs.Plan, node *structs.Node,
	batch map[string][]*structs.Allocation, inflight inflightView) error {
	a := p.Placement
	if a.PipelineID == "" {
		return nil
	}
	job, err := snap.JobByID(nil, p.JobID)
	if err != nil || job == nil || !scheduler.UsesPipelineCounts(job) {
		// A job gone or moved on is the FSM's to drop: it applies a
		// placement only for the evaluation its job waits on.
		return nil
	}
	var unseen []*structs.Allocation
	if p.SnapshotIndex > 0 {
		committed, err := snap.AllocsByPipeline(a.PipelineID)
		if err != nil {
			return err
		}
		for _, c := range committed {
			if c.CreateIndex > p.SnapshotIndex {
				unseen = append(unseen, c)
			}
		}
	}
	unseen = append(unseen, inflight.pipeline(snap, a.PipelineID)...)
	unseen = append(unseen, batch[a.PipelineID]...)
	if len(unseen) == 0 {
		return nil
	}
	nodeOf := func(id string) *structs.Node {
		n, _ := snap.NodeByID(nil, id)
		return n
	}
	if reason, ok := scheduler.PipelineConflict(job, node, unseen, nodeOf); ok {
		return fmt.Errorf("%w: %s", ErrPipelineConflict, reason)
	}
	return nil
}
