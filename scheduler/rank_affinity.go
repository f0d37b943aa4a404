package scheduler

import "github.com/ciplat/ciplat/fsm/structs"

// affinityScorer scores a node by the job's affinities (Nomad's
// NodeAffinityIterator): the sum of the weights of the affinities the node
// matches, divided by the sum of the absolute weights, so −1..1. It applies to
// every node when the job has an affinity with a non-zero weight, including
// nodes that match none (score 0). Nomad leaves a zero score out of the
// average instead, which lets a non-matching but fuller node beat a matching
// one; counting it keeps "prefer" meaning prefer. Affinities use the
// operators of constraints; an invalid one matches no node.
type affinityScorer struct {
	m *matcher
}

// Name names the scorer in Offer.Scores.
func (affinityScorer) Name() string { return "affinity" }

// Score applies when the job has weighted affinities.
func (a affinityScorer) Score(node *structs.Node, job *structs.Job, _ structs.Resources) (float64, bool) {
	if job.Spec == nil {
		return 0, false
	}
	affs := job.Spec.Affinities
	total := affinityWeight(affs)
	if total == 0 {
		return 0, false
	}
	sum := 0
	for i := range affs {
		if affs[i].Weight != 0 && a.m.Match(node, affs[i].Attr, affs[i].Op, affs[i].Value) {
			sum += affs[i].Weight
		}
	}
	return float64(sum) / float64(total), true
}

// affinityWeight is the sum of the absolute weights of affs.
func affinityWeight(affs []structs.Affinity) int {
	total := 0
	for i := range affs {
		if w := affs[i].Weight; w < 0 {
			total -= w
		} else {
			total += w
		}
	}
	return total
}

// bestAffinity is the affinity score of a node that matches every positive
// affinity and no negative one: the most any node can get.
func bestAffinity(affs []structs.Affinity) float64 {
	pos := 0
	for i := range affs {
		pos += max(affs[i].Weight, 0)
	}
	return float64(pos) / float64(affinityWeight(affs))
}
