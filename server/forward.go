package server

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"
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

// proxy sends r to the leader at httpAddr and copies its answer to w. When
// the leader cannot be reached (it just died) the client gets 503 and
// retries; a write may or may not have been committed then, which the
// Idempotency-Key of a submit makes safe to retry.
func (f *forwarder) proxy(w http.ResponseWriter, r *http.Request, httpAddr string) {
	target := &url.URL{Scheme: "http", Host: httpAddr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = r.Host
			pr.Out.Header.Set(forwardedHeader, f.s.cfg.NodeName)
		},
		Transport:     f.tr,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return
			}
			writeError(w, fmt.Errorf("%w: forwarding to the leader at %s failed (%v); retry", ErrNoLeader, httpAddr, err))
		},
	}
	rp.ServeHTTP(w, r)
}

// forwardToLeader handles a request that must be answered by the leader.
// It returns false when this server is the leader with its duties running
// (answer locally); otherwise it proxies the request to the leader, or,
// when no leader appears within ForwardWait (an election in progress, no
// quorum), writes 503 with Retry-After. Either way it returns true then.
func (s *Server) forwardToLeader(w http.ResponseWriter, r *http.Request) bool {
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
				writeError(w, fmt.Errorf("%w: %s forwarded this request here as to the leader, but leadership moved to %s; retry", ErrNoLeader, by, id))
				return true
			}
			if m, ok := s.memberByID(string(id)); ok && m.HTTPAddr != "" {
				s.forwarder.proxy(w, r, m.HTTPAddr)
				return true
			}
		}
		if time.Now().After(deadline) {
			writeError(w, fmt.Errorf("%w: none elected within %s; check that a majority of servers is up ('ciplat server members'), or read with ?stale", ErrNoLeader, s.cfg.ForwardWait))
			return true
		}
		select {
		case <-r.Context().Done():
			return true
		case <-s.shutdownCtx.Done():
			writeError(w, fmt.Errorf("%w: this server is shutting down", ErrNoLeader))
			return true
		case <-tick.C:
		}
	}
}

// isStale reports whether a read asked to be answered by any server
// (?stale or ?stale=true).
func isStale(r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("stale") {
		return false
	}
	v := q.Get("stale")
	if v == "" {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err == nil && b
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
