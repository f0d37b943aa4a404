package server

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/ciplat/ciplat/server/httpapi"
)

// busyRetryAfter is the Retry-After, in seconds, of a submit refused
// because the scheduler is saturated.
const busyRetryAfter = 5

// admit is the scheduler's backpressure on submits (POST /v1/pipelines and
// /v1/jobs, answered on the leader): when the evaluation broker is full,
// or more evaluations wait in state (pending or blocked) than
// Config.MaxPendingEvals, the submit is refused with 429 Too Many Requests
// and a Retry-After header instead of queueing without bound. The counts
// are atomics kept by the broker and the leader's watch loops, so the
// check takes no lock on state.
func (s *Server) admit(w http.ResponseWriter) error {
	reason := ""
	if s.broker.Full() {
		reason = fmt.Sprintf("the evaluation broker holds its limit of %d evaluations", s.broker.Config().MaxEvals)
	} else if n, limit := s.metrics.pendingEvals.Load()+s.metrics.blockedEvals.Load(), int64(s.cfg.maxPendingEvals()); n >= limit {
		reason = fmt.Sprintf("%d evaluations wait for placement (limit %d)", n, limit)
	}
	if reason == "" {
		return nil
	}
	s.metrics.submits429.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
	return &httpapi.HTTPError{Code: http.StatusTooManyRequests, Msg: fmt.Sprintf(
		"cluster is busy: %s; nothing was submitted, retry in %d seconds (Retry-After)", reason, busyRetryAfter)}
}
