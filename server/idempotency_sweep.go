package server

import (
	"context"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// idempotencySweepBatch bounds how many keys one sweep entry removes: a
// backlog (a leader that was down for a day) becomes several small entries
// rather than one large one. The cost per key grows with the batch (memdb
// tracks the changed radix nodes of one transaction and, past 8,192 per
// index, walks the whole tree at commit): in a table of 100,000 keys, 1,000
// keys take 16 ms, 5,000 take 560 ms (BenchmarkWriteTxn_DeleteExpiredIdempotencyKeys).
const idempotencySweepBatch = 1000

// sweepIdempotencyKeys is the leader duty that forgets expired
// Idempotency-Keys. Every IdempotencySweepInterval it reads the soonest
// expiry in state and, once the server's clock (Config.Now) has passed it,
// proposes IdempotencyKeySweep entries with that clock's time as the
// cutoff until no expired key is left. The FSM reads the cutoff from the
// entry, so every server removes the same keys. An expired key is free for
// a new submit from its expiry on, swept or not: the sweep only bounds how
// much state the keys take.
func (s *Server) sweepIdempotencyKeys(ctx context.Context) {
	tick := time.NewTicker(s.cfg.IdempotencySweepInterval)
	defer tick.Stop()
	for {
		s.sweepExpiredIdempotencyKeys(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sweepExpiredIdempotencyKeys proposes sweep entries while keys expired at
// the clock's now remain. It stops at the first failed or empty sweep (a
// lost leadership, a key that the clock says expired but the entry's
// cutoff did not reach) and tries again at the next tick.
func (s *Server) sweepExpiredIdempotencyKeys(ctx context.Context) {
	for ctx.Err() == nil {
		now := s.now()
		soonest, ok, err := s.State().EarliestIdempotencyExpiry(nil)
		if err != nil {
			s.log.Error("idempotency key sweep: read state", "err", err)
			return
		}
		if !ok || now.Before(soonest) {
			return
		}
		resp, idx, err := s.apply(structs.IdempotencyKeySweepRequestType, &structs.IdempotencyKeySweepRequest{
			WriteRequest: structs.WriteRequest{Timestamp: now},
			Cutoff:       now,
			Limit:        idempotencySweepBatch,
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("idempotency key sweep entry failed", "err", err)
			}
			return
		}
		r, ok := resp.(*structs.IdempotencyKeySweepResponse)
		if !ok || r.Removed == 0 {
			return
		}
		s.log.Debug("expired idempotency keys swept", "removed", r.Removed, "index", idx)
	}
}
