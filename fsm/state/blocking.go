package state

import (
	"context"
	"time"

	"github.com/hashicorp/go-memdb"
)

// MaxBlockingWait caps how long a blocking query waits; it is also the wait
// when the caller gives none.
const MaxBlockingWait = 5 * time.Minute

// BlockingQuery runs run and, while minIndex > 0 and the index run returns is
// not above minIndex, waits for something run read (its WatchSet) to change
// and runs it again. It returns the last run's index and error as soon as the
// index is above minIndex, run fails, or the wait ends: on timeout the last
// result is returned with a nil error (it is still the current one); when ctx
// ends, with ctx's error.
//
// Each run gets a read-only view pinned to one point in time, so the rows it
// reads and the index it returns always agree. timeout <= 0 or above
// MaxBlockingWait means MaxBlockingWait. If the store is replaced by a Raft
// snapshot restore while waiting, the query continues on the new store.
func (s *StateStore) BlockingQuery(ctx context.Context, minIndex uint64, timeout time.Duration,
	run func(ws memdb.WatchSet, s *StateStore) (uint64, error)) (uint64, error) {
	if timeout <= 0 || timeout > MaxBlockingWait {
		timeout = MaxBlockingWait
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	store := s
	for {
		ws := memdb.NewWatchSet()
		ws.Add(store.abandonCh)
		index, err := run(ws, store.view())
		if err != nil || minIndex == 0 || index > minIndex {
			return index, err
		}
		if err := ws.WatchCtx(waitCtx); err != nil {
			if ctx.Err() != nil {
				return index, ctx.Err()
			}
			return index, nil // timed out: nothing changed, so the last result is current
		}
		for next := store.next.Load(); next != nil; next = store.next.Load() {
			store = next
		}
	}
}
