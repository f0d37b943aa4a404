package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// labelSpreadScorer spreads a pipeline's jobs across the values of node
// attributes (job spec `spread: [{attr: label.zone, weight: 50}]`), as
// Nomad's spread stanza does for even spread. For each spread, a node whose
// attribute value runs c live allocations of the pipeline, when the busiest
// value runs max, scores 1 − c/max (1 when the pipeline runs nowhere yet): the
// value with the fewest allocations scores highest. A node without the
// attribute scores −1. The spreads are averaged by weight, so −1..1.
//
// It is not the spread algorithm (spreadFitScorer, Config.Algorithm
// "spread"), which spreads load across nodes whatever their labels.
type labelSpreadScorer struct{}

// Name names the scorer in Offer.Scores.
func (labelSpreadScorer) Name() string { return "label_spread" }

// Score applies when the job has spreads.
func (labelSpreadScorer) Score(node *structs.Node, job *structs.Job, pc *pipelineCounts) (float64, bool) {
	if job.Spec == nil || len(job.Spec.Spread) == 0 || pc == nil {
		return 0, false
	}
	sum, total := 0.0, 0
	for i, sp := range job.Spec.Spread {
		w := max(sp.Weight, 0)
		if w == 0 {
			continue
		}
		total += w
		v, ok := lookupAttr(node, sp.Attr)
		if !ok {
			sum -= float64(w)
			continue
		}
		if m := pc.maxValue[i]; m == 0 {
			sum += float64(w)
		} else {
			sum += float64(w) * (1 - float64(pc.byValue[i][v])/float64(m))
		}
	}
	if total == 0 {
		return 0, false
	}
	return sum / float64(total), true
}

// Best holds when, for every weighted spread, the node's value runs as few
// live allocations of the pipeline as the least-used value of the cluster
// (none, while some value runs none).
func (labelSpreadScorer) Best(node *structs.Node, job *structs.Job, pc *pipelineCounts, _ float64) bool {
	for i, sp := range job.Spec.Spread {
		if sp.Weight <= 0 {
			continue
		}
		v, ok := lookupAttr(node, sp.Attr)
		if !ok || pc.byValue[i][v] != pc.minValue[i] {
			return false
		}
	}
	return true
}
