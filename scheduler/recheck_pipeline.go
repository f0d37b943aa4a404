package scheduler

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/structs"
)

// UsesPipelineCounts reports whether Place ranks the job by its pipeline's
// other allocations (spread or anti-affinity), so that a plan for it can go
// stale when a sibling is placed after the plan's snapshot (see
// PipelineConflict). Jobs without either pay for no re-check.
func UsesPipelineCounts(job *structs.Job) bool { return needsPipelineCounts(job) }

// PipelineConflict is the pipeline half of the plan applier's re-check, as
// AllocsFit is the resource half. A placement of job on node was scored on a
// snapshot; unseen are allocations the snapshot did not show (committed or
// proposed since, or accepted earlier in the applier's batch), and nodeOf
// returns a node by ID (nil when gone). It reports a conflict, with a reason
// naming the scorer, node and sibling, when one of them is a live allocation
// of another job of the pipeline that would have lowered node's score had
// Place seen it:
//
//   - anti-affinity: the sibling runs on node;
//   - spread: the sibling's node has node's value of a spread attribute
//     (weight > 0). A sibling elsewhere only raises node's spread score
//     relative to its value's rivals, so it cannot make the choice worse.
//
// A conflict means "score again on state that shows the sibling", not
// "never here": a placement re-scored on such a state sees nothing unseen
// and commits even if it picks the same node (the scorers are preferences;
// with fewer nodes than jobs, jobs share nodes). Each conflict rests on a
// sibling placed since, so re-scoring ends. It is pure and cheap for jobs
// without spread or anti-affinity (false at once).
func PipelineConflict(job *structs.Job, node *structs.Node, unseen []*structs.Allocation,
	nodeOf func(id string) *structs.Node) (string, bool) {
	if node == nil || !needsPipelineCounts(job) {
		return "", false
	}
	for _, a := range unseen {
		if !countsForPipeline(job, a) {
			continue
		}
		if job.Spec.AntiAffinity && a.NodeID == node.ID {
			return fmt.Sprintf("anti_affinity: job %s of the pipeline was placed on node %s after this plan's snapshot",
				a.JobID, node.ID), true
		}
		if len(job.Spec.Spread) == 0 || nodeOf == nil {
			continue
		}
		other := nodeOf(a.NodeID)
		if other == nil {
			continue // gone: its allocation counts for no value (as in countPipeline)
		}
		for _, sp := range job.Spec.Spread {
			if sp.Weight <= 0 {
				continue
			}
			v, ok := lookupAttr(node, sp.Attr)
			if !ok {
				continue
			}
			if w, ok := lookupAttr(other, sp.Attr); ok && w == v {
				return fmt.Sprintf("label_spread: job %s of the pipeline was placed in %s = %s (node %s) after this plan's snapshot",
					a.JobID, sp.Attr, v, other.ID), true
			}
		}
	}
	return "", false
}

// countsForPipeline reports whether allocation a counts in job's
// pipelineCounts: a live allocation of another job of the same pipeline
// (the job's own earlier attempts are left out).
func countsForPipeline(job *structs.Job, a *structs.Allocation) bool {
	return a != nil && a.PipelineID == job.PipelineID && a.JobID != job.ID && a.Live()
}
