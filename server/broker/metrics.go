package broker

import "sync/atomic"

// MaxPriority is the highest job priority a spec may give (1–100); the
// ready gauges of Metrics are indexed by priority up to it.
const MaxPriority = 100

// Metrics are the broker's gauges and counters at one moment. Each is read
// with an atomic load, without the broker's lock, so two of them may be a
// change apart; none is ever torn.
type Metrics struct {
	// Ready counts ready evaluations per priority (0–MaxPriority; others
	// clamp).
	Ready [MaxPriority + 1]int64
	// Delayed and Unacked are the evaluations waiting for their WaitUntil
	// and those handed out and not acked yet.
	Delayed, Unacked int64
	// Counters: evaluations handed out, nacked, handed out again after the
	// redelivery timeout, failed at the delivery limit, and turned away by
	// a full broker.
	Delivered, Nacked, TimedOut, Failed, Refused uint64
}

// Metrics returns the broker's gauges and counters (for /v1/metrics).
func (b *Broker) Metrics() Metrics {
	m := &b.m
	var out Metrics
	for i := range m.ready {
		out.Ready[i] = m.ready[i].Load()
	}
	out.Delayed, out.Unacked = m.delayed.Load(), m.unacked.Load()
	out.Delivered, out.Nacked, out.TimedOut = m.delivered.Load(), m.nacked.Load(), m.timedOut.Load()
	out.Failed, out.Refused = m.failed.Load(), m.refused.Load()
	return out
}

// brokerMetrics are the broker's gauges and counters. The broker changes
// them under its lock; readers (the metrics endpoint) load them without it.
type brokerMetrics struct {
	// ready counts ready evaluations per priority (0–100; others clamp).
	ready     [MaxPriority + 1]atomic.Int64
	delayed   atomic.Int64
	unacked   atomic.Int64
	delivered atomic.Uint64
	nacked    atomic.Uint64
	timedOut  atomic.Uint64
	failed    atomic.Uint64
	refused   atomic.Uint64
}

func (m *brokerMetrics) readyAdd(priority int, d int64) {
	m.ready[min(max(priority, 0), MaxPriority)].Add(d)
}

// reset zeroes the gauges (the broker was emptied); counters keep counting.
func (m *brokerMetrics) reset() {
	for i := range m.ready {
		m.ready[i].Store(0)
	}
	m.delayed.Store(0)
	m.unacked.Store(0)
}
