// Package scheduler is ciplat's pure placement: given a read-only view of the
// cluster (State), an evaluation and its job, it returns a Plan that names the
// node the job should run on, the offers it weighed and the metrics that say
// why. It imports only fsm/structs and the standard library.
//
// One placement runs a chain of small named steps, as Nomad's
// scheduler/feasible/stack.go does:
//
//	source       random offset and coprime stride over the node slice (no copy, no sort)
//	feasibility  node status → driver → container (an image needs docker or
//	             kubernetes) → constraints (cheap: the node record only)
//	resources    the node's live allocations plus the job's ask must fit its capacity
//	rank         fit: bin-pack or, with the spread algorithm, its inverse
//	             (rank_fit.go); node affinities; a penalty on nodes where a
//	             fault ended an earlier attempt (reschedule); label spread of
//	             a pipeline's jobs across a label's values
//	             (rank_label_spread.go); anti-affinity within a pipeline;
//	             their average is the score
//	limit        stop once Limit feasible nodes have been scored
//	max          the best score wins; the best few are kept as offers
//
// Every rejected node is counted with its reason in the plan's metrics, so
// "why is this job pending?" always has an answer (see Explain).
//
// When nothing fits and the operator turned preemption on, Preempt (over a
// PreemptionState, which also gives each allocation's job) runs the same
// chain on views of each node without its lower-priority allocations and
// returns the plan of the cheapest eviction; the server only applies it.
//
// The scheduler never writes: no state, no clock, no I/O. Randomness comes
// from the caller's rng, so the same state, job and seed give the same plan.
// Plans are optimistic: the plan applier re-checks each placement against the
// newest state with AllocsFit (capacity) and PipelineConflict (spread and
// anti-affinity against siblings the plan's snapshot missed) before it
// commits.
package scheduler

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"

	"github.com/ciplat/ciplat/fsm/structs"
)

// State is the read-only view of the cluster the scheduler needs; the state
// store's snapshot satisfies it.
//
// Concurrency: Place calls it from many workers at once, each usually on its
// own snapshot; an implementation must allow concurrent reads. Nothing it
// returns is ever written by the scheduler.
type State interface {
	// Nodes returns every node, sorted by ID. The slice is shared and
	// read-only: the scheduler neither copies nor sorts it.
	Nodes() ([]*structs.Node, error)
	// AllocsByNode returns the node's allocations, live and finished.
	AllocsByNode(nodeID string) ([]*structs.Allocation, error)
}

// Algorithm names accepted in Config.Algorithm.
const (
	// AlgorithmBinPack fills the fullest node that still fits (best fit), so
	// idle nodes stay idle and large jobs still find room. The default.
	AlgorithmBinPack = "binpack"
	// AlgorithmSpread prefers the emptiest node, spreading load.
	AlgorithmSpread = "spread"
)

// AffinityLimit is the most feasible nodes scored for a job with affinities
// (or spread, or anti-affinity) when Config.Limit is 0. Nomad's stack raises its log2 limit to 100 for such
// jobs, since with only a handful of nodes sampled a preferred node would
// rarely be among them. Place widens the sample only as far as it must: past
// the log2 limit it stops as soon as it has scored a node that matches the
// affinities perfectly (every positive one, no negative one), so a common
// preference costs little more than no preference and a rare one is still
// found.
const AffinityLimit = 100

// Config chooses how the scheduler ranks nodes.
type Config struct {
	// Algorithm is "binpack" (the default when empty) or "spread".
	Algorithm string
	// Limit is how many feasible nodes are scored per placement before the
	// best is taken:
	//
	//	> 0  that many (or every node, in a smaller cluster)
	//	  0  Nomad's rule: max(2, ceil(log2(#nodes))); for a job with
	//	     affinities, up to AffinityLimit until a node matching them
	//	     perfectly has been scored
	//	< 0  every feasible node (exhaustive; tests and small clusters)
	Limit int
}

// Validate reports a configuration New cannot use, naming the field.
func (c Config) Validate() error {
	if _, ok := fitScorers[c.algorithm()]; !ok {
		return fmt.Errorf("scheduler: unknown algorithm %q in Config.Algorithm: want %q or %q",
			c.Algorithm, AlgorithmBinPack, AlgorithmSpread)
	}
	return nil
}

func (c Config) algorithm() string {
	if c.Algorithm == "" {
		return AlgorithmBinPack
	}
	return c.Algorithm
}

// fitScorers is the explicit registry of the scorers Config.Algorithm names.
var fitScorers = map[string]scorer{
	AlgorithmBinPack: binPackScorer{},
	AlgorithmSpread:  spreadFitScorer{},
}

// Scheduler places jobs. It holds no cluster state, only its configuration
// and caches of compiled constraint operands, so one Scheduler is shared by
// every worker: Place is safe for concurrent use.
type Scheduler struct {
	cfg     Config
	err     error // from Config.Validate; returned by every Place
	checks  []feasibilityCheck
	fit     resourceCheck
	scorers []scorer
	// pipeScorers read the pipeline's live allocations (see
	// pipelineCounts); their parts follow those of scorers in a candidate.
	pipeScorers []pipelineScorer
	// values caches the distinct values of spread attributes per node list.
	values attrValues
}

// New returns a scheduler for cfg. An invalid cfg (see Config.Validate) makes
// every Place call return the validation error.
func New(cfg Config) *Scheduler {
	m := newMatcher()
	s := &Scheduler{
		cfg: cfg,
		err: cfg.Validate(),
		checks: []feasibilityCheck{
			nodeStatusCheck{},
			driverCheck{m: m},
			containerCheck{m: m}, // feasible_driver.go
			constraintCheck{m: m},
		},
	}
	fit := fitScorers[cfg.algorithm()]
	if fit == nil {
		fit = binPackScorer{}
	}
	// affinity at affinityIndex, the reschedule penalty at penaltyIndex
	s.scorers = []scorer{fit, affinityScorer{m: m}, reschedulePenaltyScorer{}}
	s.pipeScorers = []pipelineScorer{labelSpreadScorer{}, antiAffinityScorer{}}
	return s
}

// Place computes where job should run. It never writes anything and is safe
// for concurrent use by many workers, each with its own rng; the same state,
// job and rng seed give the same plan.
//
// The plan's Placement is nil when nothing fits, and its Metrics say why (see
// Explain). Otherwise Placement has NodeID, JobID, PipelineID, EvalID,
// Attempt, Resources and Score filled, DesiredStatus "run" and ClientStatus
// "pending"; the caller fills ID and CreatedAt. Plan.Offers and
// Metrics.TopOffers are the same read-only slice, best first.
func (s *Scheduler) Place(st State, eval *structs.Evaluation, job *structs.Job, rng *rand.Rand) (*structs.Plan, error) {
	if err := s.checkArgs(st, eval, job, rng); err != nil {
		return nil, err
	}
	nodes, err := st.Nodes()
	if err != nil {
		return nil, fmt.Errorf("scheduler: list nodes: %w", err)
	}

	blk := new(planBlock)
	m := &blk.metrics
	plan := &blk.plan
	*plan = structs.Plan{EvalID: eval.ID, JobID: job.ID, Priority: eval.Priority, Metrics: m}
	if len(nodes) == 0 {
		return plan, nil
	}

	pc, err := countPipeline(st, nodes, job)
	if err != nil {
		return nil, err
	}
	pc.learnMin(nodes, job, &s.values)
	ask := job.Spec.Resources
	limit, widest := s.limits(len(nodes), job)
	perfect := false // a scored node met the job's preferences perfectly
	var top topOffers
	src := newNodeSource(len(nodes), rng)
	for scored := 0; scored < widest && (scored < limit || !perfect); {
		i, ok := src.Next()
		if !ok {
			break
		}
		node := nodes[i]
		if node == nil {
			continue
		}
		m.NodesEvaluated++
		if ok, reason := s.feasible(node, job); !ok {
			m.NodesFiltered++
			count(&m.FilteredBy, reason)
			continue
		}
		// Only a node that passed the cheap checks costs an alloc walk.
		allocs, err := st.AllocsByNode(node.ID)
		if err != nil {
			return nil, fmt.Errorf("scheduler: allocations of node %s: %w", node.ID, err)
		}
		used := liveUsage(allocs)
		if ok, dim := s.fit.Fit(node, used, ask); !ok {
			m.NodesExhausted++
			count(&m.ExhaustedBy, dim)
			continue
		}
		c := s.rank(node, job, used.Add(ask), pc)
		perfect = perfect || c.perfect
		top.push(c)
		scored++
	}

	if top.n == 0 {
		return plan, nil
	}
	offers := s.offers(&top, blk.offers[:top.n:top.n])
	plan.Offers, m.TopOffers = offers, offers
	best := top.c[0]
	plan.Placement = &blk.alloc
	*plan.Placement = structs.Allocation{
		JobID:         job.ID,
		PipelineID:    job.PipelineID,
		NodeID:        best.node.ID,
		EvalID:        eval.ID,
		Attempt:       job.Attempt,
		Resources:     ask,
		DesiredStatus: structs.AllocDesiredRun,
		ClientStatus:  structs.AllocClientPending,
		Score:         best.score,
	}
	return plan, nil
}

// checkArgs returns the configuration error, or names the argument of
// Place or Preempt that is missing.
func (s *Scheduler) checkArgs(st State, eval *structs.Evaluation, job *structs.Job, rng *rand.Rand) error {
	if s.err != nil {
		return s.err
	}
	switch {
	case st == nil:
		return errors.New("scheduler: Place needs a State")
	case eval == nil:
		return errors.New("scheduler: Place needs an evaluation")
	case job == nil:
		return fmt.Errorf("scheduler: evaluation %s has no job", eval.ID)
	case job.Spec == nil:
		return fmt.Errorf("scheduler: job %s has no spec", job.ID)
	case rng == nil:
		return errors.New("scheduler: Place needs a random source")
	}
	return nil
}

// planBlock holds what one Place call returns, so it costs one allocation
// instead of four. A plan is short-lived (the applier re-checks it and encodes
// it into a Raft entry), so holding its parts together costs no memory.
type planBlock struct {
	plan    structs.Plan
	metrics structs.PlacementMetrics
	alloc   structs.Allocation
	offers  [maxOffers]structs.Offer
}

// limits says how many feasible nodes to score in a cluster of n (see
// Config.Limit and AffinityLimit): limit always, up to widest while no node
// matching the job's affinities perfectly has been scored.
func (s *Scheduler) limits(n int, job *structs.Job) (limit, widest int) {
	switch {
	case s.cfg.Limit > 0:
		return s.cfg.Limit, s.cfg.Limit
	case s.cfg.Limit < 0:
		return n, n
	}
	limit = max(2, bits.Len(uint(n-1))) // ceil(log2(n)) for n ≥ 2
	if affinityWeight(job.Spec.Affinities) > 0 || needsPipelineCounts(job) || rescheduledBefore(job) {
		return limit, max(limit, AffinityLimit)
	}
	return limit, limit
}

// feasible runs the cheap checks in order and returns the first rejection.
func (s *Scheduler) feasible(node *structs.Node, job *structs.Job) (bool, string) {
	for _, c := range s.checks {
		if ok, reason := c.Feasible(node, job); !ok {
			return false, reason
		}
	}
	return true, ""
}

// count adds one to (*m)[key], creating the map on first use.
func count(m *map[string]int, key string) {
	if *m == nil {
		*m = make(map[string]int, 4)
	}
	(*m)[key]++
}
