// Package workerset is the bookkeeping every driver keeps in memory about
// its workers: the steps in flight in each, so that DestroyWorker can stop
// them and wait for them, and a tombstone while a worker is destroyed, so
// that no step starts in it meanwhile. The drivers (exec, docker,
// kubernetes, mock) hold the worker itself (a directory, a container, a
// Pod, a simulated one); this package only counts and signals.
//
// It imports only drivers. A Set is safe for concurrent use; its zero value
// is empty and ready.
package workerset

import (
	"context"
	"sync"
)

// Set is a driver's workers by ID, each with its steps in flight and M,
// what the driver keeps about it (its record; struct{} when nothing).
//
// A worker is in the Set in one of three ways: added by Add or Load (kept
// until a destroy forgets it), tracked only while steps run in it
// (StartTracked: a driver whose workers live outside it, a container or a
// Pod, needs nothing of an idle one), or a tombstone (Destroy has begun:
// no step may start in it until Forget).
type Set[M any] struct {
	mu      sync.Mutex
	workers map[string]*worker[M]
}

// worker is one worker of a Set. Guarded by Set.mu.
type worker[M any] struct {
	id        string
	meta      M
	kept      bool // added by Add or Load: kept while no step runs
	destroyed bool // Destroy has begun; no new step may start
	steps     map[*Step]struct{}
}

func newWorker[M any](id string, meta M, kept bool) *worker[M] {
	return &worker[M]{id: id, meta: meta, kept: kept, steps: make(map[*Step]struct{})}
}

// Step is one RunStep in flight, so that a Destroy can stop it. The
// driver's RunStep must call Finish when it returns.
type Step struct {
	kill   chan struct{} // closed by Destroy
	killed bool          // kill is closed; guarded by Set.mu
	done   chan struct{} // closed by Finish
	finish func()
}

// Killed is closed when the worker is destroyed: stop the step now and
// return an error wrapping drivers.ErrWorkerNotFound.
func (s *Step) Killed() <-chan struct{} { return s.kill }

// Finish unregisters the step and tells a Destroy waiting for it. Call it
// exactly once, when RunStep returns.
func (s *Step) Finish() {
	s.finish()
	close(s.done)
}

// Add adds worker id with meta, unless a live worker with that ID is
// there (then it returns false). It replaces a tombstone: a worker
// created again once its destroy has begun is a new worker.
func (s *Set[M]) Add(id string, meta M) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[id]; w != nil && !w.destroyed {
		return false
	}
	s.put(newWorker(id, meta, true))
	return true
}

// Put adds worker id with meta, replacing whatever the Set had under id.
func (s *Set[M]) Put(id string, meta M) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(newWorker(id, meta, true))
}

// Load adds worker id with meta when the Set has nothing under id (not
// even a tombstone): how a driver takes in a worker an earlier agent
// created. It returns false when there was something.
func (s *Set[M]) Load(id string, meta M) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workers[id] != nil {
		return false
	}
	s.put(newWorker(id, meta, true))
	return true
}

// put adds w, replacing what was under its ID. s.mu is held.
func (s *Set[M]) put(w *worker[M]) {
	if s.workers == nil {
		s.workers = make(map[string]*worker[M])
	}
	s.workers[w.id] = w
}

// Get returns live worker id's meta; false when the Set does not have it
// or it is being destroyed.
func (s *Set[M]) Get(id string) (M, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.workers[id]; w != nil && !w.destroyed {
		return w.meta, true
	}
	var zero M
	return zero, false
}

// Known reports whether the Set has anything under id: a live worker or
// a tombstone.
func (s *Set[M]) Known(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers[id] != nil
}

// Live returns the meta of every live worker, in no order.
func (s *Set[M]) Live() []M {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]M, 0, len(s.workers))
	for _, w := range s.workers {
		if !w.destroyed {
			out = append(out, w.meta)
		}
	}
	return out
}

// Start registers a step about to run in worker id, added by Add, Put or
// Load, and returns its meta. It returns false when the Set does not have
// the worker or it is being destroyed: the step must not run.
func (s *Set[M]) Start(id string) (M, *Step, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var zero M
	w := s.workers[id]
	if w == nil || w.destroyed {
		return zero, nil, false
	}
	return w.meta, s.start(w), true
}

// StartTracked registers a step about to run in worker id, tracking the
// worker while steps run in it when the Set does not have it. It returns
// false when the worker is being destroyed: the step must not run.
func (s *Set[M]) StartTracked(id string) (*Step, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workers[id]
	if w == nil {
		var zero M
		w = newWorker(id, zero, false)
		s.put(w)
	}
	if w.destroyed {
		return nil, false
	}
	return s.start(w), true
}

// start registers a step in w. s.mu is held.
func (s *Set[M]) start(w *worker[M]) *Step {
	st := &Step{kill: make(chan struct{}), done: make(chan struct{})}
	w.steps[st] = struct{}{}
	st.finish = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(w.steps, st)
		if len(w.steps) == 0 && !w.kept && !w.destroyed {
			s.forget(w)
		}
	}
	return st
}

// forget drops w from the Set if it is still there. s.mu is held.
func (s *Set[M]) forget(w *worker[M]) {
	if s.workers[w.id] == w {
		delete(s.workers, w.id)
	}
}

// Destroy begins destroying worker id: it marks it a tombstone (adding
// one when the Set does not have it, a worker an earlier agent created),
// so no step starts in it, and closes the Killed channel of each of its
// steps. The driver then removes the worker, waits for the steps (Wait)
// and, once the worker is gone, calls Forget.
func (s *Set[M]) Destroy(id string) *Tombstone {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workers[id]
	if w == nil {
		var zero M
		w = newWorker(id, zero, false)
		s.put(w)
	}
	t := &Tombstone{wasLive: !w.destroyed && w.kept}
	w.destroyed = true
	for st := range w.steps {
		if !st.killed {
			st.killed = true
			close(st.kill)
		}
		t.steps = append(t.steps, st)
	}
	t.forget = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.forget(w)
	}
	return t
}

// Tombstone is one destroy of a worker, begun by Set.Destroy.
type Tombstone struct {
	steps   []*Step
	wasLive bool
	forget  func()
}

// Steps is the number of steps the destroy interrupted.
func (t *Tombstone) Steps() int { return len(t.steps) }

// WasLive reports whether the worker had been added (Add, Put, Load) and
// was not being destroyed already when the destroy began.
func (t *Tombstone) WasLive() bool { return t.wasLive }

// Wait waits until every interrupted step has called Finish, or until ctx
// ends (then it returns ctx's error and the steps are still stopping).
func (t *Tombstone) Wait(ctx context.Context) error {
	for _, st := range t.steps {
		select {
		case <-st.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Forget drops the tombstone once the worker is gone, unless the worker
// has been added again since. Until then no step starts under its ID.
func (t *Tombstone) Forget() { t.forget() }
