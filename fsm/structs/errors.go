package structs

import "errors"

// Errors the FSM and the server return; HTTP maps them to status codes
// (ErrNotFound → 404, ErrConflict and *ErrIllegalTransition → 409).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)
