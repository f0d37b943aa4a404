package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// readiness says whether this server can answer reads and writes now, and
// when it cannot, why. It is the rule behind GET /v1/status/ready and GET
// /v1/status/leader (both 503 until it holds) and WaitForLeader:
//
//   - the leader is ready once its duties run: the barrier applied
//     everything committed before its election, the broker is enabled and
//     the plan applier and scheduler workers started (leaderLoop);
//   - a follower is ready when it knows a leader, has heard from it within
//     twice the Raft heartbeat timeout, and Raft's applied index has
//     reached the commit index it knows. That applied index
//     (raft.AppliedIndex) counts entries handed to the FSM goroutine, not
//     entries the FSM finished: the last batch may still be applying when
//     readiness turns true, so a ?stale read right then can lag by that
//     batch (milliseconds); its forwarded requests find the leader. The
//     state's own LatestIndex is not compared instead: Raft's no-op and
//     configuration entries never reach the state's tables, so it can stay
//     below the commit index for good. A follower cannot see whether the leader's
//     own duties started; a request it forwards in that window waits on
//     the leader up to ForwardWait, as on the leader itself.
func (s *Server) readiness() (ready bool, role, reason string) {
	if s.IsLeader() {
		if s.leaderReady.Load() {
			return true, "leader", ""
		}
		return false, "leader", "this server was just elected leader and is still applying the log and starting its duties"
	}
	addr, id := s.raft.LeaderWithID()
	if addr == "" {
		return false, "follower", "no leader is known: an election is in progress, or a majority of servers is not up ('ciplat server members')"
	}
	limit := 2 * s.raft.ReloadableConfig().HeartbeatTimeout
	if last := s.raft.LastContact(); last.IsZero() || time.Since(last) > limit {
		return false, "follower", fmt.Sprintf("the leader %s has not been heard from within %s", id, limit)
	}
	if applied, committed := s.raft.AppliedIndex(), s.raft.CommitIndex(); applied < committed {
		return false, "follower", fmt.Sprintf("catching up with the leader %s: applied index %d of %d committed", id, applied, committed)
	}
	return true, "follower", ""
}

// readyView is GET /v1/status/ready's answer (with 200 or 503).
type readyView struct {
	Ready bool `json:"ready"`
	// Role is "leader" or "follower" (a candidate counts as a follower).
	Role string `json:"role"`
	// Leader is the leader's Raft address, "" when none is known.
	Leader string `json:"leader"`
	// Error says why the server is not ready (also the reason a client's
	// generic error handling shows).
	Error string `json:"error,omitempty"`
}

// notReadyRetry is the Retry-After, in seconds, of a not-ready answer.
const notReadyRetry = "1"

// handleStatusReady is GET /v1/status/ready: 200 when this server can
// serve, else 503 with Retry-After and the reason, for load balancers and
// scripts that must not send traffic to a server still starting.
func (s *Server) handleStatusReady(w http.ResponseWriter, r *http.Request) (any, error) {
	ready, role, reason := s.readiness()
	v := &readyView{Ready: ready, Role: role, Leader: s.Leader(), Error: reason}
	if !ready {
		w.Header().Set("Retry-After", notReadyRetry)
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, v)
		return httpapi.Streamed{}, nil
	}
	return v, nil
}

// handleStatusLeader is GET /v1/status/leader: the leader's Raft address,
// once this server is ready (readiness); before, 503 with the reason, so
// a client that waits for "a leader" does not then meet 503s on reads.
func (s *Server) handleStatusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	if ready, _, reason := s.readiness(); !ready {
		w.Header().Set("Retry-After", notReadyRetry)
		return nil, &httpapi.HTTPError{Code: http.StatusServiceUnavailable, Msg: "not ready: " + reason}
	}
	return s.Leader(), nil
}
