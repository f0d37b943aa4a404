package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// antiAffinityScorer keeps the jobs of one pipeline apart when a job asks for
// it (job spec `anti_affinity: true`): a node already running a live
// allocation of another job of the same pipeline scores −1, any other 0. The
// choice is per job, not per pipeline, so a pipeline can keep its small jobs
// together and push only its heavy ones apart. It is a preference, not a
// constraint: when only such nodes fit, the job still runs on one of them.
// Siblings scheduled at the same moment (on snapshots that show none of each
// other) are kept apart by the plan applier's re-check, PipelineConflict.
type antiAffinityScorer struct{}

// Name names the scorer in Offer.Scores.
func (antiAffinityScorer) Name() string { return "anti_affinity" }

// Score applies when the job asks for anti-affinity.
func (antiAffinityScorer) Score(node *structs.Node, job *structs.Job, pc *pipelineCounts) (float64, bool) {
	if job.Spec == nil || !job.Spec.AntiAffinity || pc == nil {
		return 0, false
	}
	if pc.byNode[node.ID] > 0 {
		return -1, true
	}
	return 0, true
}

// Best holds on a node running nothing of the pipeline.
func (antiAffinityScorer) Best(_ *structs.Node, _ *structs.Job, _ *pipelineCounts, score float64) bool {
	return score == 0
}
