package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/ciplat/ciplat/server/httpapi"
)

// forwardedHeader marks a request a follower forwarded to the leader; a
// server that receives one and is not the leader (leadership moved in
// between) answers 503 instead of forwarding again, so requests never loop.
const forwardedHeader = "X-Ciplat-Forwarded-By"

// Headers of reads answered locally (always on ?stale reads).
const (
	// lastContactHeader is the milliseconds since this server last heard
	// from the leader (0 on the leader).
	lastContactHeader = "X-Ciplat-Last-Contact"
	// knownLeaderHeader is "true" when this server knows a leader.
	knownLeaderHeader = "X-Ciplat-Known-Leader"
)

// forwarder proxies HTTP requests to the leader's HTTP API (the address
// the leader gossips in its serf tags). Streaming answers (log follows,
// blocking queries) are passed through as they come.
type forwarder struct {
	s  *Server
	tr *http.Transport
}

func newForwarder(s *Server) *forwarder {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &forwarder{s: s, tr: tr}
}

func (f *forwarder) close() { f.tr.CloseIdleConnections() }

// errForwardTimeout is the cause of a forwarded request's cancellation
// when the leader did not start answering within its deadline.
var errForwardTimeout = errors.New("forward deadline passed")

// proxy sends r to the leader (leaderID at httpAddr) and copies its answer
// to w. The leader must start answering (send its status and headers)
// within timeout (forwardTimeout): a leader cut off by a partition, or one
// that accepts and never answers, costs the client timeout and a 504, not
// a request held until the client gives up. Once the answer has started,
// streams (log follows, the event stream, a snapshot download) are bounded
// by their own write deadlines, not by timeout. When the leader cannot be
// reached at all (it just died) the client gets 503. Both carry
// Retry-After; a write may or may not have been committed then, which the
// Idempotency-Key of a submit makes safe to retry.
func (f *forwarder) proxy(w http.ResponseWriter, r *http.Request, leaderID, httpAddr string, timeout time.Duration) {
	target := &url.URL{Scheme: "http", Host: httpAddr}
	client := r.Context()
	ctx, cancel := context.WithCancelCause(client)
	defer cancel(nil)
	deadline := time.AfterFunc(timeout, func() { cancel(errForwardTimeout) })
	defer deadline.Stop()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = r.Host
			pr.Out.Header.Set(forwardedHeader, f.s.cfg.NodeName)
		},
		Transport:     f.tr,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if !deadline.Stop() {
				return errForwardTimeout // fired as the headers came in
			}
			// This server's SecurityHeaders set them on w already.
			httpapi.DropSecurityHeaders(resp.Header)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if client.Err() != nil {
				return // the client went away
			}
			if errors.Is(err, errForwardTimeout) || errors.Is(context.Cause(ctx), errForwardTimeout) {
				w.Header().Set("Retry-After", "1")
				httpapi.WriteError(w, &httpapi.HTTPError{Code: http.StatusGatewayTimeout, Msg: fmt.Sprintf(
					"the leader %s at %s did not answer within %s (-forward-timeout): it may be cut off from this server; retry, or read with ?stale",
					leaderID, httpAddr, timeout)})
				return
			}
			httpapi.WriteError(w, fmt.Errorf("%w: forwarding to the leader %s at %s failed (%v); retry", ErrNoLeader, leaderID, httpAddr, err))
		},
	}
	// The proxy copies the leader's answer (a log follow, the event stream,
	// a snapshot download) to the client under a write deadline
	// (-log-write-timeout): a client that stops reading is dropped, and with
	// it this goroutine and the connection to the leader.
	out := httpapi.NewDeadlineWriter(w, f.s.cfg.Logs.WriteTimeout)
	rp.ServeHTTP(out, r.WithContext(ctx))
	if !out.Failed() {
		out.End()
	}
}

// forwardTimeout is how long the leader has to start answering a request
// this server forwards: ForwardTimeout, plus the wait of a blocking read
// (?index), plus a long upload's read time for routes with a large body
// (a snapshot restore).
func (s *Server) forwardTimeout(r *http.Request, rt httpapi.Route) time.Duration {
	d := s.cfg.ForwardTimeout
	if r.URL.Query().Has("index") {
		if q, err := httpapi.ParseQuery(r); err == nil {
			d += q.Wait
		}
	}
	if rt.LargeBody {
		d += httpapi.LargeBodyReadTimeout
	}
	return d
}

// forwardToLeader handles a request that must be answered by the leader.
// It returns false when this server is the leader with its duties running
// (answer locally); otherwise it proxies the request to the leader, or,
// when no leader appears within ForwardWait (an election in progress, no
// quorum), writes 503 with Retry-After. Either way it returns true then.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request, rt httpapi.Route) bool {
	deadline := time.Now().Add(s.cfg.ForwardWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.IsLeader() {
			if s.leaderReady.Load() {
				return false
			}
		} else if addr, id := s.raft.LeaderWithID(); addr != "" {
			if by := r.Header.Get(forwardedHeader); by != "" {
				httpapi.WriteError(w, fmt.Errorf("%w: %s forwarded this request here as to the leader, but leadership moved to %s; retry", ErrNoLeader, by, id))
				return true
			}
			if m, ok := s.memberByID(string(id)); ok && m.HTTPAddr != "" {
				s.forwarder.proxy(w, r, string(id), m.HTTPAddr, s.forwardTimeout(r, rt))
				return true
			}
		}
		if time.Now().After(deadline) {
			if s.IsLeader() {
				httpapi.WriteError(w, fmt.Errorf("%w: this server was just elected and is still starting its duties (applying the log); retry, or read with ?stale", ErrNoLeader))
				return true
			}
			httpapi.WriteError(w, fmt.Errorf("%w: none elected within %s; check that a majority of servers is up ('ciplat server members'), or read with ?stale", ErrNoLeader, s.cfg.ForwardWait))
			return true
		}
		select {
		case <-r.Context().Done():
			return true
		case <-s.shutdownCtx.Done():
			httpapi.WriteError(w, fmt.Errorf("%w: this server is shutting down", ErrNoLeader))
			return true
		case <-tick.C:
		}
	}
}

// setConsistency writes how current a locally answered read is.
func (s *Server) setConsistency(w http.ResponseWriter) {
	var ms int64
	if !s.IsLeader() {
		if last := s.raft.LastContact(); last.IsZero() {
			ms = -1
		} else {
			ms = time.Since(last).Milliseconds()
		}
	}
	w.Header().Set(lastContactHeader, strconv.FormatInt(max(ms, 0), 10))
	w.Header().Set(knownLeaderHeader, strconv.FormatBool(s.Leader() != ""))
}
