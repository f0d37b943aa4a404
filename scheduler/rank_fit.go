package scheduler

import (
	"math"

	"github.com/ciplat/ciplat/fsm/structs"
)

// The fit scorers: one of them (Config.Algorithm) ranks every feasible node
// by how full it would be.

// binPackScorer scores best fit: the fuller the node would be after the
// placement, the higher. It is Nomad's ScoreFitBinPack normalised to 0..1:
// with free = 1 − used/capacity per dimension,
//
//	score = (20 − (10^freeCPU + 10^freeMem)) / 18
//
// which is 0 for an idle node and 1 for a node filled exactly. The powers of
// ten make a nearly full dimension count far more than a half-full one.
type binPackScorer struct{}

// Name names the scorer in Offer.Scores.
func (binPackScorer) Name() string { return AlgorithmBinPack }

// Score always applies.
func (binPackScorer) Score(node *structs.Node, _ *structs.Job, util structs.Resources) (float64, bool) {
	return clamp01((20 - fitFreeTotal(node.Capacity(), util)) / 18), true
}

// spreadFitScorer is the fit scorer of the spread algorithm
// (Config.Algorithm "spread"): binPackScorer inverted (Nomad's
// ScoreFitSpread), the emptier the node would be after the placement, the
// higher.
//
//	score = ((10^freeCPU + 10^freeMem) − 2) / 18
//
// It spreads load across nodes; spreading a pipeline's jobs across the
// values of a label (job spec `spread:`) is labelSpreadScorer.
type spreadFitScorer struct{}

// Name names the scorer in Offer.Scores.
func (spreadFitScorer) Name() string { return AlgorithmSpread }

// Score always applies.
func (spreadFitScorer) Score(node *structs.Node, _ *structs.Job, util structs.Resources) (float64, bool) {
	return clamp01((fitFreeTotal(node.Capacity(), util) - 2) / 18), true
}

// fitFreeTotal is 10^freeCPU + 10^freeMem: 2 for a full node, 20 for an idle one.
func fitFreeTotal(capacity, util structs.Resources) float64 {
	return pow10(freeFraction(util.CPU, capacity.CPU)) + pow10(freeFraction(util.MemoryMB, capacity.MemoryMB))
}

// freeFraction is 1 − used/capacity in 0..1; a dimension without capacity is full.
func freeFraction(used, capacity int) float64 {
	if capacity <= 0 {
		return 0
	}
	return clamp01(1 - float64(used)/float64(capacity))
}

// pow10 is 10^x, through Exp, which is cheaper than Pow.
func pow10(x float64) float64 { return math.Exp(x * math.Ln10) }

func clamp01(x float64) float64 {
	switch {
	case x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}
