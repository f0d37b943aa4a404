package scheduler

import (
	"github.com/ciplat/ciplat/fsm/structs"
)

// scorer ranks a feasible node (Kubernetes calls it a Score plugin, Nomad a
// rank iterator). util is what the node would hold after the placement, its
// live allocations plus the job's ask. applies is false when the scorer has
// nothing to say about this job (no affinities), which leaves it out of the
// average. Scores are normalised: fit scorers give 0..1, affinity −1..1.
// Implementations must not allocate and must be safe for concurrent use.
type scorer interface {
	Name() string
	Score(node *structs.Node, job *structs.Job, util structs.Resources) (score float64, applies bool)
}

// Compile-time proof that every scorer implements the interface.
var (
	_ scorer = binPackScorer{}
	_ scorer = spreadFitScorer{}
	_ scorer = affinityScorer{}
	_ scorer = reschedulePenaltyScorer{}
)

// pipelineScorer is a scorer that also reads the live allocations of the
// job's pipeline (pipelineCounts), counted once per placement.
type pipelineScorer interface {
	Name() string
	Score(node *structs.Node, job *structs.Job, pc *pipelineCounts) (score float64, applies bool)
	// Best reports whether score, this scorer's score of node, is the best
	// any node of the cluster can get: then Place need not widen its
	// sample for this scorer's sake.
	Best(node *structs.Node, job *structs.Job, pc *pipelineCounts, score float64) bool
}

// Compile-time proof that every pipeline scorer implements the interface.
var (
	_ pipelineScorer = labelSpreadScorer{}
	_ pipelineScorer = antiAffinityScorer{}
)

// maxScorers bounds the scorers of one chain (Scheduler.scorers followed by
// Scheduler.pipeScorers); maxOffers the offers kept; affinityIndex and
// penaltyIndex are the affinity and reschedule penalty scorers' places in
// Scheduler.scorers.
const (
	maxScorers    = 5
	maxOffers     = 5
	affinityIndex = 1
	penaltyIndex  = 2
)

// candidate is a scored node, with the score of each scorer.
type candidate struct {
	node    *structs.Node
	score   float64
	parts   [maxScorers]float64
	applies [maxScorers]bool
	// perfectAffinity: the node matches every positive affinity of the job
	// and no negative one (false for a job without affinities).
	perfectAffinity bool
	// perfect: the node is as good as a node can be for every preference of
	// the job that applies (affinity, spread, anti-affinity); false when
	// none applies.
	perfect bool
}

// rank runs the scorers on a feasible node; the node's score is the average
// of the scores that apply (Nomad's ScoreNormalizationIterator).
// pc holds the pipeline's counts for the pipeline scorers (nil when the job
// has none).
func (s *Scheduler) rank(node *structs.Node, job *structs.Job, util structs.Resources, pc *pipelineCounts) candidate {
	c := candidate{node: node}
	sum, n := 0.0, 0
	for i, sc := range s.scorers {
		v, ok := sc.Score(node, job, util)
		if !ok {
			continue
		}
		c.parts[i], c.applies[i] = v, true
		sum += v
		n++
	}
	base := len(s.scorers)
	prefs, best := 0, 0
	for i, sc := range s.pipeScorers {
		v, ok := sc.Score(node, job, pc)
		if !ok {
			continue
		}
		c.parts[base+i], c.applies[base+i] = v, true
		sum += v
		n++
		prefs++
		if sc.Best(node, job, pc, v) {
			best++
		}
	}
	if n > 0 {
		c.score = sum / float64(n)
	}
	if c.applies[affinityIndex] {
		c.perfectAffinity = c.parts[affinityIndex] == bestAffinity(job.Spec.Affinities)
		prefs++
		if c.perfectAffinity {
			best++
		}
	}
	if c.applies[penaltyIndex] {
		prefs++
		if c.parts[penaltyIndex] == 0 {
			best++
		}
	}
	c.perfect = prefs > 0 && best == prefs
	return c
}

// topOffers keeps the best maxOffers candidates, best first. A tie keeps the
// node visited first, so the choice depends only on the rng's visiting order.
type topOffers struct {
	c [maxOffers]candidate
	n int
}

func (t *topOffers) push(c candidate) {
	i := t.n
	for i > 0 && c.score > t.c[i-1].score {
		i--
	}
	if i == maxOffers {
		return
	}
	end := min(t.n, maxOffers-1)
	copy(t.c[i+1:end+1], t.c[i:end])
	t.c[i] = c
	if t.n < maxOffers {
		t.n++
	}
}

// offers fills out (len t.n) with the kept candidates, each applicable
// scorer's part in Scores, and returns it.
func (s *Scheduler) offers(t *topOffers, out []structs.Offer) []structs.Offer {
	for i := range t.n {
		c := &t.c[i]
		scores := make(map[string]float64, len(s.scorers)+len(s.pipeScorers))
		for j, sc := range s.scorers {
			if c.applies[j] {
				scores[sc.Name()] = c.parts[j]
			}
		}
		for j, sc := range s.pipeScorers {
			if k := len(s.scorers) + j; c.applies[k] {
				scores[sc.Name()] = c.parts[k]
			}
		}
		out[i] = structs.Offer{NodeID: c.node.ID, Score: c.score, Scores: scores}
	}
	return out
}
