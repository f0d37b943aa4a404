package structs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// MaxIdempotencyKeyLen is the longest Idempotency-Key a submit may carry,
// in bytes. Keys are made of printable ASCII (space to tilde), so bytes
// and characters are the same.
const MaxIdempotencyKeyLen = 128

// DefaultIdempotencyTTL is how long an Idempotency-Key is remembered when
// the agent sets no -idempotency-ttl. A register entry written without an
// expiry (by a server older than the key table) gets its timestamp plus
// this, so every server computes the same expiry.
const DefaultIdempotencyTTL = 24 * time.Hour

// IdempotencyKey remembers one Idempotency-Key of a pipeline submit until it
// expires: which pipeline it registered and a hash of the spec it was sent
// with, so a retry with the same spec gets that pipeline back and a
// different spec under the same key is refused instead of silently
// answered with someone else's pipeline. Keys are unique per (Namespace,
// Key); Namespace is "" until namespaces exist.
type IdempotencyKey struct {
	Namespace string `json:"namespace,omitempty"`
	Key       string `json:"key"`
	// BodyHash is SpecHash of the submitted spec, computed by the server
	// that took the HTTP request. "" (an entry from an older server)
	// matches any spec.
	BodyHash   string `json:"body_hash,omitempty"`
	PipelineID string `json:"pipeline_id"`
	// ExpiresAt is when the key may be used again for another spec. From
	// then on a register entry treats the key as absent and the next
	// sweep removes it.
	ExpiresAt   time.Time `json:"expires_at"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// IdempotencyNeverExpires is the ExpiresAt of a key that never expires: one
// an entry without Rules (written before keys expired) registered with no
// expiry. Its time is after every entry's (maxTimestampYear) and its index
// sorts last, so Expired is false for it and no sweep removes it.
var IdempotencyNeverExpires = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Expired reports whether the key no longer holds at time t (t is at or
// after ExpiresAt).
func (k *IdempotencyKey) Expired(t time.Time) bool { return !t.Before(k.ExpiresAt) }

// Copy returns a copy the caller may change.
func (k *IdempotencyKey) Copy() *IdempotencyKey {
	if k == nil {
		return nil
	}
	c := *k
	return &c
}

// ValidateIdempotencyKey checks an Idempotency-Key as a client sent it:
// 1 to MaxIdempotencyKeyLen characters of printable ASCII. The error says
// what is wrong and what is expected.
func ValidateIdempotencyKey(key string) error {
	if key == "" {
		return fmt.Errorf("Idempotency-Key is empty: want 1 to %d printable ASCII characters", MaxIdempotencyKeyLen)
	}
	if len(key) > MaxIdempotencyKeyLen {
		return fmt.Errorf("Idempotency-Key is %d characters long: at most %d are allowed", len(key), MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("Idempotency-Key has byte 0x%02x at position %d: only printable ASCII (space to ~) is allowed", c, i+1)
		}
	}
	return nil
}

// SpecHash is the BodyHash of a submitted spec: "sha256:" and the hex
// SHA-256 of the spec's canonical JSON (the parsed spec, not the bytes
// sent), so the same pipeline sent as YAML or JSON, or with other
// whitespace or comments, hashes the same.
func SpecHash(spec *PipelineSpec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("hash spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// IdempotencyConflictError is a submit whose Idempotency-Key is still held
// by a pipeline registered from a different spec. It is an ErrConflict
// (HTTP 409).
type IdempotencyConflictError struct {
	Key        string
	PipelineID string
}

func (e *IdempotencyConflictError) Error() string {
	return fmt.Sprintf("Idempotency-Key %q was used for a different request (pipeline %s); use a new key", e.Key, e.PipelineID)
}

// Unwrap makes the error an ErrConflict for errors.Is.
func (e *IdempotencyConflictError) Unwrap() error { return ErrConflict }

// IdempotencyKeySweepRequest removes the Idempotency-Keys that expired by
// Cutoff (ExpiresAt at or before it), oldest first, at most Limit of them
// (0: all). The leader proposes it with its clock's time as Cutoff; Apply
// reads no clock.
type IdempotencyKeySweepRequest struct {
	WriteRequest
	Cutoff time.Time `json:"cutoff"`
	Limit  int       `json:"limit,omitempty"`
}

// Validate implements RequestValidator: it refuses (ErrInvalidRequest) a
// malformed sweep: a bad timestamp, no cutoff, or a negative limit.
func (r *IdempotencyKeySweepRequest) Validate() error {
	if err := r.WriteRequest.Validate(); err != nil {
		return err
	}
	if r.Cutoff.IsZero() {
		return invalid("cutoff", "missing; want the leader's time")
	}
	if r.Limit < 0 {
		return invalid("limit", "%d is negative; want 0 (all) or more", r.Limit)
	}
	return nil
}

// IdempotencyKeySweepResponse is what Apply returns for a sweep entry.
type IdempotencyKeySweepResponse struct {
	// Removed is how many keys the entry removed.
	Removed int
	Index   uint64
}
