package server

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// schedMetrics are the scheduler's counters and gauges. Workers, the plan
// applier and the leader's watch loops bump them with atomics (no lock on
// the hot path); GET /v1/metrics reads them. The broker keeps its own
// (broker.Metrics).
type schedMetrics struct {
	placements    atomic.Uint64 // allocations committed
	planConflicts atomic.Uint64 // placements rejected by the plan applier's re-check
	planRetries   atomic.Uint64 // worker re-runs on fresh state after a conflict
	planApplies   atomic.Uint64 // Raft entries the plan applier committed
	evalsBlocked  atomic.Uint64 // evaluations recorded blocked (fits nowhere)
	evalsFailed   atomic.Uint64 // evaluations recorded failed (delivery limit)
	preemptions   atomic.Uint64 // allocations evicted for a higher-priority job
	submits429    atomic.Uint64 // submits refused with 429 (backpressure)
	// pipelineConflicts are the planConflicts of the pipeline re-check
	// (spread, anti-affinity): a sibling placed since the plan's snapshot.
	pipelineConflicts atomic.Uint64
	// evalsUnblocked counts blocked evaluations offered again because a
	// change may let them run (see unblockable).
	evalsUnblocked atomic.Uint64
	// Gauges the leader's watch loops set from state.
	pendingEvals atomic.Int64
	blockedEvals atomic.Int64
	workers      atomic.Int64
	// workersLive counts scheduler worker goroutines, including stopped
	// ones still finishing the evaluations they hold; workersIndex is the
	// scheduler_config index the worker count was last set for. Together
	// they tell when a configuration change took full effect (tests
	// pause scheduling on them).
	workersLive  atomic.Int64
	workersIndex atomic.Uint64
	// latency is dequeue → plan committed, per placement.
	latency histogram
}

// latencyBuckets are the placement latency histogram's upper bounds.
var latencyBuckets = []time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// histogram is a fixed-bucket histogram of atomic counters: Observe never
// locks. counts[i] counts observations in (bound[i-1], bound[i]]; the last
// slot is +Inf.
type histogram struct {
	counts [14]atomic.Uint64 // len(latencyBuckets) + 1
	sumNs  atomic.Uint64
}

// Observe records one duration.
func (h *histogram) Observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
}

// snapshot returns the cumulative bucket counts (Prometheus' form), their
// total and the sum. Counters are read one by one, so a snapshot taken
// during observations may be off by those in flight, never inconsistent.
func (h *histogram) snapshot() (cum []uint64, count uint64, sum time.Duration) {
	cum = make([]uint64, len(h.counts))
	for i := range h.counts {
		count += h.counts[i].Load()
		cum[i] = count
	}
	return cum, count, time.Duration(h.sumNs.Load())
}

// handleMetrics is GET /v1/metrics: this server's scheduler and broker
// metrics in the Prometheus text format (version 0.0.4). Followers report
// an empty broker.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) (any, error) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	s.writeMetrics(bw)
	_ = bw.Flush()
	return httpapi.Streamed{}, nil
}

// promWriter writes Prometheus text exposition.
type promWriter struct{ w *bufio.Writer }

func (p promWriter) head(name, typ, help string) {
	_, _ = fmt.Fprintf(p.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (p promWriter) value(name, labels string, v float64) {
	if labels != "" {
		labels = "{" + labels + "}"
	}
	_, _ = fmt.Fprintf(p.w, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
}

func (p promWriter) one(name, typ, help string, v float64) {
	p.head(name, typ, help)
	p.value(name, "", v)
}

func (s *Server) writeMetrics(w *bufio.Writer) {
	p := promWriter{w}
	s.writeWSMetrics(p) // metrics_http.go
	bm := s.broker.Metrics()
	m := s.metrics
	s.writeLogMetrics(p) // log_retention.go

	p.head("ciplat_broker_ready_evals", "gauge", "Evaluations ready to be handed out, per job priority.")
	total := int64(0)
	for prio := range bm.Ready {
		if n := bm.Ready[prio]; n != 0 {
			p.value("ciplat_broker_ready_evals", fmt.Sprintf("priority=%q", strconv.Itoa(prio)), float64(n))
			total += n
		}
	}
	if total == 0 {
		p.value("ciplat_broker_ready_evals", `priority="50"`, 0)
	}
	p.one("ciplat_broker_delayed_evals", "gauge", "Evaluations waiting for their WaitUntil (retry backoff).", float64(bm.Delayed))
	p.one("ciplat_broker_unacked_evals", "gauge", "Evaluations handed out to a worker and not acked yet.", float64(bm.Unacked))
	p.one("ciplat_broker_max_evals", "gauge", "Most evaluations the broker holds before submits get 429.", float64(s.broker.Config().MaxEvals))
	p.one("ciplat_broker_delivered_total", "counter", "Evaluations handed out to workers.", float64(bm.Delivered))
	p.one("ciplat_broker_nacked_total", "counter", "Evaluations a worker gave back (nack).", float64(bm.Nacked))
	p.one("ciplat_broker_redelivered_total", "counter", "Evaluations handed out again after the redelivery timeout.", float64(bm.TimedOut))
	p.one("ciplat_broker_failed_total", "counter", "Evaluations that reached the delivery limit.", float64(bm.Failed))
	p.one("ciplat_broker_refused_total", "counter", "Evaluations the full broker turned away (left pending in state).", float64(bm.Refused))

	p.one("ciplat_sched_placements_total", "counter", "Allocations committed by the plan applier.", float64(m.placements.Load()))
	p.one("ciplat_sched_plan_conflicts_total", "counter", "Placements the plan applier rejected on re-check (capacity taken, or a pipeline sibling placed, meanwhile).", float64(m.planConflicts.Load()))
	p.one("ciplat_sched_plan_pipeline_conflicts_total", "counter", "Plan conflicts of spread or anti-affinity: a job of the same pipeline was placed since the plan's snapshot.", float64(m.pipelineConflicts.Load()))
	p.one("ciplat_sched_plan_applies_total", "counter", "Raft entries the plan applier committed (each a batch of plans).", float64(m.planApplies.Load()))
	p.one("ciplat_sched_plan_retries_total", "counter", "Evaluations scheduled again on fresh state after a plan conflict.", float64(m.planRetries.Load()))
	p.one("ciplat_sched_evals_blocked_total", "counter", "Evaluations recorded blocked: the job fits on no node now.", float64(m.evalsBlocked.Load()))
	p.one("ciplat_sched_evals_unblocked_total", "counter", "Blocked evaluations offered again because a node, allocation or configuration change may let them run.", float64(m.evalsUnblocked.Load()))
	p.one("ciplat_sched_evals_failed_total", "counter", "Evaluations recorded failed after the delivery limit.", float64(m.evalsFailed.Load()))
	p.one("ciplat_sched_preemptions_total", "counter", "Allocations evicted for a higher-priority job.", float64(m.preemptions.Load()))
	p.one("ciplat_sched_submits_rejected_total", "counter", "Submits refused with 429 (backpressure).", float64(m.submits429.Load()))
	p.one("ciplat_sched_pending_evals", "gauge", "Pending evaluations in state (leader only).", float64(m.pendingEvals.Load()))
	p.one("ciplat_sched_blocked_evals", "gauge", "Blocked evaluations in state, waiting for capacity (leader only).", float64(m.blockedEvals.Load()))
	p.one("ciplat_sched_workers", "gauge", "Scheduler workers running (leader only).", float64(m.workers.Load()))

	const h = "ciplat_sched_placement_latency_seconds"
	p.head(h, "histogram", "Time from an evaluation's dequeue to its placement's commit.")
	cum, count, sum := m.latency.snapshot()
	for i, b := range latencyBuckets {
		p.value(h+"_bucket", fmt.Sprintf("le=%q", strconv.FormatFloat(b.Seconds(), 'g', -1, 64)), float64(cum[i]))
	}
	p.value(h+"_bucket", `le="+Inf"`, float64(count))
	p.value(h+"_sum", "", sum.Seconds())
	p.value(h+"_count", "", float64(count))
}
