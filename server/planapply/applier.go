package planapply

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/scheduler"
)

// ErrConflict means a placement no longer fit when the applier
// re-checked it: the worker schedules the evaluation again.
var ErrConflict = errors.New("plan conflict: the node's capacity was taken")

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

// Queue carries plans from scheduler workers to the single applier.
// Submit is safe for concurrent use; only the applier calls next.
type Queue struct {
	ch chan *pendingPlan
}

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{ch: make(chan *pendingPlan, maxPlanBatch)}
}

// Submit queues a plan and waits for the applier's verdict: nil when
// committed (or recorded as blocked), ErrConflict when it no longer fit.
func (q *Queue) Submit(ctx context.Context, p *structs.Plan) error {
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
func (q *Queue) SubmitAsync(ctx context.Context, p *structs.Plan, done func(error)) error {
	select {
	case q.ch <- &pendingPlan{plan: p, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// next blocks for one plan, then takes whatever else is already queued.
func (q *Queue) next(ctx context.Context) []*pendingPlan {
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

// Config is what the applier needs from the server that holds it. Every
// field is required but Logger.
//
// The applier calls these from its own goroutines only: Snapshot, Now and
// Propose from the one goroutine of Run, in batch order; the wait function
// that Propose returns from a goroutine per batch in flight (up to
// maxPlansInFlight at once). Snapshot and Now must not block for long, and
// Propose must not wait for the entry to apply: that is the wait
// function's work.
type Config struct {
	// Queue is where scheduler workers submit plans; only the applier takes
	// from it.
	Queue *Queue
	// Snapshot returns a snapshot of the newest state.
	Snapshot func() (*state.StateSnapshot, error)
	// Propose proposes one plan entry to Raft without waiting; the
	// returned wait function blocks until the entry applied and returns
	// what the FSM returned (an error the FSM returned is its error). The
	// wait must end once Raft shut down or leadership was lost (the
	// server waits on Raft futures through its waitRaft, never a bare
	// Future.Error, which hashicorp/raft may leave unanswered at
	// shutdown). Propose fails at once when this server is not the leader.
	Propose func(*structs.PlanApplyRequest) (wait func() (any, error), err error)
	// Now is the clock: the entry's timestamp and the placements'
	// CreatedAt.
	Now func() time.Time
	// Counters are the server's metrics the applier adds to.
	Counters Counters
	// Logger logs what the applier could not commit (default: discard).
	Logger *slog.Logger
}

// Counters are the metrics the applier bumps, owned by the server (which
// reads them for /v1/metrics). Each is added to atomically, from any of
// the applier's goroutines. Every field is required.
type Counters struct {
	// Placements counts allocations committed.
	Placements *atomic.Uint64
	// Conflicts counts placements the re-check rejected (either kind);
	// PipelineConflicts those of the pipeline re-check.
	Conflicts, PipelineConflicts *atomic.Uint64
	// Applies counts plan entries applied.
	Applies *atomic.Uint64
	// EvalsBlocked counts evaluations recorded blocked; Preemptions the
	// allocations evicted.
	EvalsBlocked, Preemptions *atomic.Uint64
}

// Applier is the single plan applier of a leader. It re-checks every
// placement against the newest state, plus the placements of batches
// proposed to Raft and not yet applied, plus what it accepted earlier in
// the same batch (optimistic concurrency: nothing is double-booked), and
// commits a whole batch in one Raft entry. Up to maxPlansInFlight entries
// are in flight; each batch's verdicts go to its workers once it applied.
//
// Lifecycle: New once per server; Run once per leadership term (it starts
// with no entry in flight and returns, after every batch in flight got its
// verdicts, when ctx ends). At most one Run at a time.
type Applier struct {
	cfg Config
}

// New returns an applier over cfg (see Config).
func New(cfg Config) *Applier {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Applier{cfg: cfg}
}

// Run applies plans from the queue until ctx ends.
func (ap *Applier) Run(ctx context.Context) {
	inflight := newInflightPlans()
	slots := make(chan struct{}, maxPlansInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		batch := ap.cfg.Queue.next(ctx)
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
		wait := ap.applyPlans(batch, inflight)
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
func (ap *Applier) applyPlans(batch []*pendingPlan, inflight *inflightPlans) (wait func()) {
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
	snap, err := ap.cfg.Snapshot()
	if err != nil {
		for i := range verdict {
			verdict[i] = err
		}
		return deliver
	}
	now := ap.cfg.Now()
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
			verdict[i] = ErrConflict
			continue
		}
		allocs, err := snap.AllocsByNode(a.NodeID)
		if err != nil {
			verdict[i] = err
			continue
		}
		victims, ok := checkPreemptions(snap, p, allocs, evicted, flying)
		if !ok {
			verdict[i] = ErrConflict
			continue
		}
		if len(victims) > 0 {
			allocs = slices.DeleteFunc(slices.Clone(allocs), func(x *structs.Allocation) bool { return victims[x.ID] })
		}
		extra := taken[a.NodeID].Add(a.Resources)
		if ok, _ := scheduler.AllocsFit(node, allocs, extra.Add(flying.held(snap, a.NodeID))); !ok {
			verdict[i] = ErrConflict
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
		if IsConflict(v) {
			conflicts++
		}
		if errors.Is(v, ErrPipelineConflict) {
			ap.cfg.Counters.PipelineConflicts.Add(1)
		}
	}
	ap.cfg.Counters.Conflicts.Add(uint64(conflicts))
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
	future, err := ap.cfg.Propose(req)
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
			ap.cfg.Counters.Applies.Add(1)
			if n, ok := resp.(int); ok {
				ap.cfg.Counters.Placements.Add(uint64(n))
			}
			ap.cfg.Counters.EvalsBlocked.Add(uint64(blocked))
			ap.cfg.Counters.Preemptions.Add(uint64(len(req.Preemptions)))
		}
		deliver()
	}
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
