package structs

import "errors"

// Errors the FSM and the server return; HTTP maps them to status codes
// (ErrNotFound → 404, ErrConflict and *ErrIllegalTransition → 409,
// ErrInvalidRequest → 400).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrInvalidRequest marks a Raft entry the FSM refused because it is
	// malformed (it does not decode, or its Validate fails): every server
	// refuses it the same way and nothing of it is written.
	ErrInvalidRequest = errors.New("invalid request")
)
