package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

// ErrNoLeader is returned for writes while the cluster has no leader; the
// error writer answers it (and errors wrapping it) with 503 and Retry-After.
// Package server re-exports it as server.ErrNoLeader.
var ErrNoLeader = errors.New("no cluster leader")

// Streamed is returned by handlers that wrote their response themselves.
type Streamed struct{}

// HTTPError is an error with an HTTP status.
type HTTPError struct {
	Code int
	Msg  string
	// RetryAfter adds Retry-After: 1 (a 503 the client may retry).
	RetryAfter bool
}

func (e *HTTPError) Error() string { return e.Msg }

// BadRequest is a 400 with a formatted message.
func BadRequest(format string, args ...any) error {
	return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// WriteJSON writes v as the JSON body of a code answer.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// WriteError maps errors to statuses and writes {"error": "..."}.
func WriteError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *HTTPError
	var mbe *http.MaxBytesError
	var ite *structs.ErrIllegalTransition
	var se jobspec.Errors
	switch {
	case errors.As(err, &he):
		code = he.Code
		if he.RetryAfter {
			w.Header().Set("Retry-After", "1")
		}
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
		err = fmt.Errorf("request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &se), errors.Is(err, structs.ErrInvalidRequest), errors.Is(err, state.ErrAmbiguousPrefix):
		code = http.StatusBadRequest
	case errors.Is(err, structs.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, structs.ErrConflict), errors.As(err, &ite):
		code = http.StatusConflict
	case errors.Is(err, ErrNoLeader):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	WriteJSON(w, code, map[string]string{"error": err.Error()})
}
