// Package planapply is the leader's single plan applier: the queue that
// carries plans from the scheduler workers (Queue), the re-check of each
// plan against the newest state (optimistic concurrency: nothing is
// double-booked), the accounting of plan entries proposed to Raft and not
// yet applied (in flight), and the commit of a batch of accepted plans in
// one Raft entry.
//
// A batch goes through named steps (applier.go): capture the entries in
// flight, then a state snapshot; check each plan — a pure function of the
// snapshot, the entries in flight and what earlier plans of the batch
// accepted (check.go) — into one request; propose it; and once it applied
// hand every plan its verdict: nil, ErrConflict, ErrPipelineConflict, or
// the error that kept the entry from applying.
//
// It owns no state, Raft or clock of its own: the server gives it a
// snapshot source, a way to propose an entry and wait for it, a clock,
// its metrics counters and a logger (Config, whose doc says from which
// goroutines each is called). It may import fsm/state, fsm/structs and
// scheduler (whose checks it re-runs), never a server package (depguard in
// .golangci.yml).
//
// Concurrency: Queue.Submit and Queue.SubmitAsync are safe for concurrent
// use; Applier.Run runs at most once at a time and is the only reader of
// the queue.
package planapply
