package fsm

import (
	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// idempotencyNamespace is the namespace of every Idempotency-Key until
// namespaces exist; then the register entry carries its own.
const idempotencyNamespace = ""

// heldIdempotencyKey returns the pipeline ID a register entry's
// Idempotency-Key still holds, or "" when the key is free: never used,
// expired at the entry's time, or naming a pipeline no longer stored. A key
// held for another spec (both hashes known and different) refuses the
// entry with an *IdempotencyConflictError.
func heldIdempotencyKey(tx *state.WriteTxn, req *structs.PipelineRegisterRequest, key string) (string, error) {
	if key == "" {
		return "", nil
	}
	// The key's shape is checked at the edge (ValidateIdempotencyKey), not
	// here: entries written before that check (keys up to 256 bytes) must
	// still replay, and any string is a safe memdb index.
	rec, err := tx.IdempotencyKey(idempotencyNamespace, key)
	if err != nil || rec == nil || rec.Expired(req.Timestamp) {
		return "", err
	}
	if p, err := tx.PipelineByID(rec.PipelineID); err != nil || p == nil {
		return "", err
	}
	if rec.BodyHash != "" && req.BodyHash != "" && rec.BodyHash != req.BodyHash {
		return "", &structs.IdempotencyConflictError{Key: key, PipelineID: rec.PipelineID}
	}
	return rec.PipelineID, nil
}

// storeIdempotencyKey remembers that key registered pipelineID, until the
// entry's expiry (or, when the entry has none, its timestamp plus the
// default TTL; for an entry without Rules, never: IdempotencyNeverExpires),
// replacing an expired record of the same key.
func storeIdempotencyKey(tx *state.WriteTxn, req *structs.PipelineRegisterRequest, key, pipelineID string) error {
	if key == "" {
		return nil
	}
	expires := req.IdempotencyExpiresAt
	switch {
	case !expires.IsZero():
	case req.Rules < structs.RulesV1:
		expires = structs.IdempotencyNeverExpires
	default:
		expires = req.Timestamp.Add(structs.DefaultIdempotencyTTL)
	}
	return tx.UpsertIdempotencyKey(&structs.IdempotencyKey{
		Namespace:  idempotencyNamespace,
		Key:        key,
		BodyHash:   req.BodyHash,
		PipelineID: pipelineID,
		ExpiresAt:  expires,
	})
}

// applyIdempotencyKeySweep removes the keys expired at the entry's Cutoff,
// at most its Limit. It reads the cutoff from the entry, never a clock, so
// every server removes the same keys.
func applyIdempotencyKeySweep(tx *state.WriteTxn, req *structs.IdempotencyKeySweepRequest) (any, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	n, err := tx.DeleteExpiredIdempotencyKeys(req.Cutoff, req.Limit)
	if err != nil {
		return nil, err
	}
	return &structs.IdempotencyKeySweepResponse{Removed: n, Index: tx.Index()}, nil
}
