package planapply

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// maxPlansInFlight bounds the Raft entries of plans proposed and not yet
// applied. More than one lets Raft write several in one fsync while the
// applier already checks the next batch (Nomad's plan applier overlaps the
// same way).
const maxPlansInFlight = 16

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
	v := &verdicts{batch: batch, errs: make([]error, len(batch))}
	// The entries in flight are captured before the state snapshot: each
	// is then either in the snapshot or counted from the view, even if it
	// applies (and leaves inflight) while the batch is checked.
	flying := inflight.view()
	snap, err := ap.cfg.Snapshot()
	if err != nil {
		v.failRest(err)
		return v.deliver
	}
	req, blocked := ap.checkBatch(newBatchCheck(snap, flying), batch, v.errs)
	ap.countConflicts(v.errs)
	if len(req.Allocs)+len(req.Evals) == 0 {
		// Nothing to commit, but the verdicts may rest on entries still in
		// flight: hand them out once those applied, so a worker that got a
		// conflict schedules again on state that shows what beat it.
		return v.deliverAfter(inflight.pending())
	}
	return ap.commit(req, blocked, inflight, v)
}

// checkBatch checks the batch's plans in order, each in the context of
// what the earlier ones accepted (c), and builds the one request that
// commits what passed: the accepted placements with their evictions, and
// the evaluations newly recorded blocked (blocked counts them). A rejected
// plan's verdict goes to errs at its position.
func (ap *Applier) checkBatch(c *batchCheck, batch []*pendingPlan, errs []error) (req *structs.PlanApplyRequest, blocked int) {
	now := ap.cfg.Now()
	req = &structs.PlanApplyRequest{
		WriteRequest: structs.WriteRequest{Timestamp: now},
		Metrics:      map[string]*structs.PlacementMetrics{},
	}
	for i, pp := range batch {
		p := pp.plan
		if p.Placement == nil {
			if ev := c.blockedEval(p); ev != nil {
				req.Evals = append(req.Evals, ev)
				req.Metrics[p.JobID] = p.Metrics
				blocked++
			}
			continue
		}
		if err := c.checkPlacement(p); err != nil {
			errs[i] = err
			continue
		}
		a := newAlloc(p.Placement, now)
		c.accept(p, a)
		req.Allocs = append(req.Allocs, a)
		req.Metrics[p.JobID] = p.Metrics
		for _, pr := range p.Preemptions {
			req.Preemptions = append(req.Preemptions, &structs.Preemption{AllocID: pr.AllocID, ByAllocID: a.ID, Reason: pr.Reason})
		}
	}
	return req, blocked
}

// newAlloc is the allocation an accepted placement commits: a copy with a
// fresh ID, created now, desired to run, pending on its client.
func newAlloc(placement *structs.Allocation, now time.Time) *structs.Allocation {
	a := placement.Copy()
	a.ID = uuid.NewString()
	a.CreatedAt = now
	a.DesiredStatus = structs.AllocDesiredRun
	a.ClientStatus = structs.AllocClientPending
	return a
}

// countConflicts counts the batch's rejected placements of either kind.
func (ap *Applier) countConflicts(errs []error) {
	conflicts := 0
	for _, err := range errs {
		if IsConflict(err) {
			conflicts++
		}
		if errors.Is(err, ErrPipelineConflict) {
			ap.cfg.Counters.PipelineConflicts.Add(1)
		}
	}
	ap.cfg.Counters.Conflicts.Add(uint64(conflicts))
}

// commit proposes the batch's entry and returns the wait that, once the
// entry applied (or failed), counts it and hands out the verdicts. The
// entry is in flight (counted by the checks of later batches) until then.
func (ap *Applier) commit(req *structs.PlanApplyRequest, blocked int, inflight *inflightPlans, v *verdicts) (wait func()) {
	applied, err := ap.cfg.Propose(req)
	if err != nil {
		ap.notCommitted(v, err)
		return v.deliver
	}
	token := inflight.add(req)
	return func() {
		resp, err := applied()
		inflight.remove(token)
		if err != nil {
			ap.notCommitted(v, err)
		} else {
			ap.countCommitted(req, resp, blocked)
		}
		v.deliver()
	}
}

// notCommitted gives err to every plan of a batch whose entry did not
// apply, but those already rejected.
func (ap *Applier) notCommitted(v *verdicts, err error) {
	ap.cfg.Logger.Debug("plan entry not committed", "plans", len(v.batch), "err", err)
	v.failRest(err)
}

// countCommitted counts an applied entry; resp is what the FSM returned
// (the number of placements it committed).
func (ap *Applier) countCommitted(req *structs.PlanApplyRequest, resp any, blocked int) {
	ap.cfg.Counters.Applies.Add(1)
	if n, ok := resp.(int); ok {
		ap.cfg.Counters.Placements.Add(uint64(n))
	}
	ap.cfg.Counters.EvalsBlocked.Add(uint64(blocked))
	ap.cfg.Counters.Preemptions.Add(uint64(len(req.Preemptions)))
}

// verdicts are the verdicts of one batch's plans, by position (nil:
// committed, or recorded blocked).
type verdicts struct {
	batch []*pendingPlan
	errs  []error
}

// deliver hands every plan its verdict.
func (v *verdicts) deliver() {
	for i, pp := range v.batch {
		pp.done(v.errs[i])
	}
}

// deliverAfter returns a wait that delivers once every channel of earlier
// (the entries in flight) is closed.
func (v *verdicts) deliverAfter(earlier []chan struct{}) (wait func()) {
	return func() {
		for _, ch := range earlier {
			<-ch
		}
		v.deliver()
	}
}

// failRest gives err to every plan without a verdict yet.
func (v *verdicts) failRest(err error) {
	for i := range v.errs {
		if v.errs[i] == nil {
			v.errs[i] = err
		}
	}
}
