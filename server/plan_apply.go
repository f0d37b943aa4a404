package server

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// errPlanConflict means a placement no longer fit when the applier
// re-checked it: the worker schedules the evaluation again.
var errPlanConflict = errors.New("plan conflict: the node's capacity was taken")

// maxPlanBatch bounds how many plans one Raft entry commits.
const maxPlanBatch = 256

// maxPlansInFlight bounds the Raft entries of plans proposed and not yet
// applied. More than one lets Raft write several in one fsync while the
// applier already checks the next batch (Nomad's plan applier overlaps the
// same way).
const maxPlansInFlight = 16

// pendingPlan is a plan waiting for the applier's verdict; done receives
// it and must not block (the applier calls it).
type pendingPlan struct {
	plan *structs.Plan
	done func(error)
}

// PlanQueue carries plans from scheduler workers to the single applier.
// Submit is safe for concurrent use; only the applier calls next.
type PlanQueue struct {
	ch chan *pendingPlan
}

// NewPlanQueue returns an empty queue.
func NewPlanQueue() *PlanQueue {
	return &PlanQueue{ch: make(chan *pendingPlan, maxPlanBatch)}
}

// Submit queues a plan and waits for the applier's verdict: nil when
// committed (or recorded as blocked), errPlanConflict when it no longer fit.
func (q *PlanQueue) Submit(ctx context.Context, p *structs.Plan) error {
	result := make(chan error, 1)
	if err := q.SubmitAsync(ctx, p, func(err error) { result <- err }); err != nil {
		return err
	}
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SubmitAsync queues a plan; the applier calls done with its verdict
// later, from its own goroutine, so done must not block.
func (q *PlanQueue) SubmitAsync(ctx context.Context, p *structs.Plan, done func(error)) error {
	select {
	case q.ch <- &pendingPlan{plan: p, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next blocks for one plan, then takes whatever else is already queued.
func (q *PlanQueue) next(ctx context.Context) []*pendingPlan {
	var batch []*pendingPlan
	select {
	case p := <-q.ch:
		batch = append(batch, p)
	case <-ctx.Done():
		return nil
	}
	for len(batch) < maxPlanBatch {
		select {
		case p := <-q.ch:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// planApplier is the one goroutine that commits plans. It re-checks every
// placement against the newest state, plus the placements of batches
// proposed to Raft and not yet applied, plus what it accepted earlier in
// the same batch (optimistic concurrency: nothing is double-booked), and
// commits a whole batch in one Raft entry. Up to maxPlansInFlight entries
// are in flight; each batch's verdicts go to its workers once it applied.
func (s *Server) planApplier(ctx context.Context) {
	inflight := newInflightPlans()
	slots := make(chan struct{}, maxPlansInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		batch := s.plans.next(ctx)
		if batch == nil {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			for _, p := range batch {
				p.done(ctx.Err())
			}
			return
		}
		wait := s.applyPlans(batch, inflight)
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait()
			<-slots
		}()
	}
}

// applyPlans checks a batch and proposes what still fits in one Raft
// entry. It returns a function that waits for the entry to apply, then
// hands every plan its verdict.
func (s *Server) applyPlans(batch []*pendingPlan, inflight *inflightPlans) (wait func()) {
	verdict := make([]error, len(batch))
	deliver := func() {
		for i, pp := range batch {
			pp.done(verdict[i])
		}
	}
	// The entries in flight are captured before the state snapshot: each
	// is then either in the snapshot or counted from the view, even if it
	// applies (and leaves inflight) while the batch is checked.
	flying := inflight.view()
	snap, err := s.State().Snapshot()
	if err != nil {
		for i := range verdict {
			verdict[i] = err
		}
		return deliver
	}
	now := s.now()
	req := &structs.PlanApplyRequest{
		WriteRequest: structs.WriteRequest{Timestamp: now},
		Metrics:      map[string]*structs.PlacementMetrics{},
	}
	// taken is what placements accepted earlier in the batch hold per node;
	// evicted the allocations their preemptions claimed.
	taken := map[string]structs.Resources{}
	evicted := map[string]bool{}
	// batchSiblings are the placements accepted earlier in the batch, by
	// pipeline: the pipeline re-check counts them as unseen by later plans.
	batchSiblings := map[string][]*structs.Allocation{}
	blocked := 0
	for i, pp := range batch {
		p := pp.plan
		if p.Placement == nil {
			ev, _ := snap.EvalByID(nil, p.EvalID)
			if ev == nil {
				continue
			}
			desc := "no node can run it: " + scheduler.Explain(p.Metrics)
			if ev.Status == structs.EvalBlocked && ev.StatusDescription == desc {
				continue // already recorded
			}
			ev = ev.Copy()
			ev.Status = structs.EvalBlocked
			ev.StatusDescription = desc
			req.Evals = append(req.Evals, ev)
			req.Metrics[p.JobID] = p.Metrics
			blocked++
			continue
		}
		a := p.Placement
		node, _ := snap.NodeByID(nil, a.NodeID)
		if node == nil || !node.Schedulable() {
			verdict[i] = errPlanConflict
			continue
		}
		allocs, err := snap.AllocsByNode(a.NodeID)
		if err != nil {
			verdict[i] = err
			continue
		}
		victims, ok := checkPreemptions(snap, p, allocs, evicted, flying)
		if !ok {
			verdict[i] = errPlanConflict
			continue
		}
		if len(victims) > 0 {
			allocs = slices.DeleteFunc(slices.Clone(allocs), func(x *structs.Allocation) bool { return victims[x.ID] })
		}
		extra := taken[a.NodeID].Add(a.Resources)
		if ok, _ := scheduler.AllocsFit(node, allocs, extra.Add(flying.held(snap, a.NodeID))); !ok {
			verdict[i] = errPlanConflict
			continue
		}
		if err := recheckPipeline(snap, p, node, batchSiblings, flying); err != nil {
			verdict[i] = err
			continue
		}
		taken[a.NodeID] = extra
		a = a.Copy()
		a.ID = uuid.NewString()
		a.CreatedAt = now
		a.DesiredStatus = structs.AllocDesiredRun
		a.ClientStatus = structs.AllocClientPending
		req.Allocs = append(req.Allocs, a)
		if a.PipelineID != "" {
			batchSiblings[a.PipelineID] = append(batchSiblings[a.PipelineID], a)
		}
		req.Metrics[p.JobID] = p.Metrics
		for _, pr := range p.Preemptions {
			evicted[pr.AllocID] = true
			req.Preemptions = append(req.Preemptions, &structs.Preemption{AllocID: pr.AllocID, ByAllocID: a.ID, Reason: pr.Reason})
		}
	}
	conflicts := 0
	for _, v := range verdict {
		if isPlanConflict(v) {
			conflicts++
		}
		if errors.Is(v, errPipelineConflict) {
			s.metrics.pipelineConflicts.Add(1)
		}
	}
	s.metrics.planConflicts.Add(uint64(conflicts))
	if len(req.Allocs)+len(req.Evals) == 0 {
		// Nothing to commit, but the verdicts may rest on entries still in
		// flight: hand them out once those applied, so a worker that got a
		// conflict schedules again on state that shows what beat it.
		earlier := inflight.pending()
		return func() {
			for _, ch := range earlier {
				<-ch
			}
			deliver()
		}
	}
	fail := func(err error) {
		for i := range verdict {
			if verdict[i] == nil {
				verdict[i] = err
			}
		}
	}
	future, err := s.proposePlan(req)
	if err != nil {
		fail(err)
		return deliver
	}
	token := inflight.add(req)
	return func() {
		resp, err := future()
		inflight.remove(token)
		if err != nil {
			fail(err)
		} else {
			s.metrics.planApplies.Add(1)
			if n, ok := resp.(int); ok {
				s.metrics.placements.Add(uint64(n))
			}
			s.metrics.evalsBlocked.Add(uint64(blocked))
			s.metrics.preemptions.Add(uint64(len(req.Preemptions)))
		}
		deliver()
	}
}

// proposePlan proposes a plan entry to Raft without waiting; the returned
// function waits for it to apply and returns what the FSM returned, as
// Server.apply does.
func (s *Server) proposePlan(req *structs.PlanApplyRequest) (func() (any, error), error) {
	if s.raft.State() != raft.Leader {
		return nil, ErrNoLeader
	}
	req.StampRules()
	buf, err := structs.Encode(structs.PlanApplyRequestType, req)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(buf, 30*time.Second)
	return func() (any, error) {
		if err := s.waitRaft(f); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
				return nil, ErrNoLeader
			}
			return nil, err
		}
		resp := f.Response()
		if e, ok := resp.(error); ok {
			return nil, e
		}
		return resp, nil
	}, nil
}

// checkPreemptions re-checks a plan's evictions against the applier's
// snapshot: each must be a live allocation on the plan's node, of a job
// with a lower priority than the plan's, not claimed by an earlier plan of
// the batch or of an entry in flight. It returns the evicted allocation
// IDs, or false when one no longer qualifies (the plan is a conflict:
// schedule again).
func checkPreemptions(snap *state.StateSnapshot, p *structs.Plan, allocs []*structs.Allocation,
	evicted map[string]bool, inflight inflightView) (map[string]bool, bool) {
	if len(p.Preemptions) == 0 {
		return nil, true
	}
	onNode := make(map[string]*structs.Allocation, len(allocs))
	for _, a := range allocs {
		onNode[a.ID] = a
	}
	out := make(map[string]bool, len(p.Preemptions))
	for _, pr := range p.Preemptions {
		a := onNode[pr.AllocID]
		if a == nil || !a.Live() || evicted[pr.AllocID] || inflight.evicting(pr.AllocID) {
			return nil, false
		}
		j, err := snap.JobByID(nil, a.JobID)
		if err != nil || j == nil || j.Priority >= p.Priority {
			return nil, false
		}
		out[pr.AllocID] = true
	}
	return out, true
}

// inflightPlans are the placements and evictions of plan entries proposed
// to Raft and not yet applied. The applier counts them on top of its
// snapshot; an entry's allocations that the snapshot already shows are
// not counted twice. Evictions in flight free nothing yet (conservative)
// but may not be claimed again.
type inflightPlans struct {
	mu      sync.Mutex
	next    uint64
	entries map[uint64]*inflightEntry
}

// inflightEntry is one proposed plan entry, indexed for the checks.
type inflightEntry struct {
	byNode map[string][]*structs.Allocation
	// byPipeline holds the placements of pipelines (ID non-empty).
	byPipeline map[string][]*structs.Allocation
	evicts     map[string]bool
	// applied is closed once the entry applied (or failed).
	applied chan struct{}
}

func newInflightPlans() *inflightPlans {
	return &inflightPlans{entries: map[uint64]*inflightEntry{}}
}

func (f *inflightPlans) add(req *structs.PlanApplyRequest) uint64 {
	e := &inflightEntry{byNode: map[string][]*structs.Allocation{}, byPipeline: map[string][]*structs.Allocation{},
		evicts: map[string]bool{}, applied: make(chan struct{})}
	for _, a := range req.Allocs {
		e.byNode[a.NodeID] = append(e.byNode[a.NodeID], a)
		if a.PipelineID != "" {
			e.byPipeline[a.PipelineID] = append(e.byPipeline[a.PipelineID], a)
		}
	}
	for _, p := range req.Preemptions {
		e.evicts[p.AllocID] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.entries[f.next] = e
	return f.next
}

func (f *inflightPlans) remove(token uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.entries[token]; e != nil {
		close(e.applied)
		delete(f.entries, token)
	}
}

// pending returns channels closed when the entries in flight now applied.
func (f *inflightPlans) pending() []chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]chan struct{}, 0, len(f.entries))
	for _, e := range f.entries {
		out = append(out, e.applied)
	}
	return out
}

// view returns the entries in flight now. An entry is never changed once
// added, so the view is read without the lock.
func (f *inflightPlans) view() inflightView {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(inflightView, 0, len(f.entries))
	for _, e := range f.entries {
		out = append(out, e)
	}
	return out
}

// inflightView is the plan entries in flight when the applier began a
// batch, captured before its state snapshot (see applyPlans).
type inflightView []*inflightEntry

// held is what in-flight placements not yet in snap hold on the node.
func (v inflightView) held(snap *state.StateSnapshot, nodeID string) structs.Resources {
	var r structs.Resources
	for _, e := range v {
		for _, a := range e.byNode[nodeID] {
			if got, _ := snap.AllocByID(nil, a.ID); got == nil {
				r = r.Add(a.Resources)
			}
		}
	}
	return r
}

// pipeline returns the in-flight placements of the pipeline not yet in
// snap (those in snap the re-check finds there, by create index).
func (v inflightView) pipeline(snap *state.StateSnapshot, pipelineID string) []*structs.Allocation {
	var out []*structs.Allocation
	for _, e := range v {
		for _, a := range e.byPipeline[pipelineID] {
			if got, _ := snap.AllocByID(nil, a.ID); got == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// evicting reports whether an in-flight entry evicts the allocation.
func (v inflightView) evicting(allocID string) bool {
	for _, e := range v {
		if e.evicts[allocID] {
			return true
		}
	}
	return false
}
