package server

import (
	"sync"
)

// follow of a many-job pipeline reads only those (never polls every file).
//
// Lifecycle: Subscribe, then loop { <-C(); Take() ... } and Close once.
// Concurrency: the store marks from Append; C, Take and Close belong to
// the follower's goroutine.
type LogSubscription struct {
	store *LogStore
	jobs  []*jobLog
	c     chan struct{}

	mu    sync.Mutex
	dirty []int
	seen  []bool
}

// Subscribe starts a subscription to jobIDs; Take's numbers index jobIDs.
func (l *LogStore) Subscribe(jobIDs []string) (*LogSubscription, error) {
	s := &LogSubscription{store: l, c: make(chan struct{}, 1), seen: make([]bool, len(jobIDs))}
	l.followers.Add(1)
	for i, id := range jobIDs {
		j, err := l.lockJob(id)
		if err != nil {
			s.Close()
			return nil, err
		}
		if j.subs == nil {
			j.subs = map[*LogSubscription]int{}
		}
		j.subs[s] = i
		s.jobs = append(s.jobs, j)
		j.mu.Unlock()
	}
	return s, nil
}

// C is signalled (capacity 1) when a job got lines since the last Take.
func (s *LogSubscription) C() <-chan struct{} { return s.c }

// Take returns the positions (in Subscribe's list) of the jobs that got
// lines since the last Take, and forgets them.
func (s *LogSubscription) Take() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.dirty
	s.dirty = nil
	for _, i := range out {
		s.seen[i] = false
	}
	return out
}

func (s *LogSubscription) mark(i int) {
	s.mu.Lock()
	if !s.seen[i] {
		s.seen[i] = true
		s.dirty = append(s.dirty, i)
	}
	s.mu.Unlock()
	select {
	case s.c <- struct{}{}:
	default:
	}
}

// Close ends the subscription.
func (s *LogSubscription) Close() {
	if s.store == nil {
		return
	}
	l := s.store
	l.followers.Add(-1)
	s.store = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range s.jobs {
		j.mu.Lock()
		delete(j.subs, s)
		// A followed job that never logged is forgotten with its last
		// follower, so following does not grow the store.
		if len(j.subs) == 0 && j.seq == 0 && !j.removed && l.jobs[j.id] == j {
			j.removed = true
			delete(l.jobs, j.id)
		}
		j.mu.Unlock()
	}
	s.jobs = nil
}
