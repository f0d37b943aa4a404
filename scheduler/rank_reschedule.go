package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// reschedulePenaltyScorer steers a rescheduled job away from the nodes
// where an infrastructure fault ended one of its earlier attempts (node
// lost, worker lost, worker not created, preempted), as Nomad's
// NodeReschedulingPenaltyIterator does: such a node scores −1, any other 0.
// It applies only to a job with such an attempt in its history (records of
// kind reschedule), so the first placement and plain retries are ranked as
// before. It is a preference, not a constraint: when only such nodes fit,
// the job still runs on one of them. While the job has penalised nodes,
// Place widens its sample (see Scheduler.limits) until it has scored a node
// without a penalty.
type reschedulePenaltyScorer struct{}

var _ scorer = reschedulePenaltyScorer{}

// Name names the scorer in Offer.Scores.
func (reschedulePenaltyScorer) Name() string { return "reschedule_penalty" }

// Score applies when the job was rescheduled off some node before.
func (reschedulePenaltyScorer) Score(node *structs.Node, job *structs.Job, _ structs.Resources) (float64, bool) {
	if !rescheduledBefore(job) {
		return 0, false
	}
	if faultedOn(job, node.ID) {
		return -1, true
	}
	return 0, true
}

// rescheduledBefore reports whether an earlier attempt of the job ended by
// an infrastructure fault on a known node.
func rescheduledBefore(job *structs.Job) bool {
	for i := range job.History {
		if r := &job.History[i]; r.Kind == structs.AttemptReschedule && r.NodeID != "" {
			return true
		}
	}
	return false
}

// faultedOn reports whether an infrastructure fault ended an earlier
// attempt of the job on the node.
func faultedOn(job *structs.Job, nodeID string) bool {
	for i := range job.History {
		if r := &job.History[i]; r.Kind == structs.AttemptReschedule && r.NodeID == nodeID {
			return true
		}
	}
	return false
}
