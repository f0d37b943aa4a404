package client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ciplat/ciplat/api"
)

// dialTimeout bounds connecting to one server, so a server whose host is
// gone (no answer at all) costs seconds, not the OS's minutes, before the
// next one is tried.
const dialTimeout = 3 * time.Second

// NewAPIClient returns an api.Client that talks to the first reachable
// server of servers (HTTP addresses, "host:port" or URLs).
//
// Each request goes to the current server. When it cannot be reached (the
// connection is refused or times out; for a read, also when it breaks
// before an answer) or answers 502/503/504 (no leader there, or a proxy in
// front of a dead one), the same request is sent at once to the next
// server, and so on once around the list; the server that answered becomes
// the current one. Only when
// every server failed does the request fail (with the last 503 answer, if
// any, for its Retry-After), and the client's retry loops
// wait with exponential backoff and jitter before trying again (backoff.go),
// so many clients that lost the same server do not come back in step.
// Followers forward to the leader, so any living server will do, across a
// leader change too.
func NewAPIClient(servers []string) (*api.Client, error) {
	if len(servers) == 0 {
		return nil, errors.New("client: no server address")
	}
	ft := &failoverTransport{base: baseTransport()}
	for _, s := range servers {
		u, err := parseServer(s)
		if err != nil {
			return nil, err
		}
		ft.servers = append(ft.servers, u)
	}
	return api.NewClient(&api.Config{Address: ft.servers[0].String(), HTTPClient: &http.Client{Transport: ft}})
}

func parseServer(s string) (*url.URL, error) {
	addr := s
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("client: invalid server address %q: want host:port or http://host:port", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func baseTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = 64
	tr.ResponseHeaderTimeout = 0 // blocking queries wait minutes for an answer
	return tr
}

// failoverTransport sends each request to the current server and moves on
// to the next one when it fails. Safe for concurrent use.
type failoverTransport struct {
	base    http.RoundTripper
	servers []*url.URL
	cur     atomic.Int32
}

var _ http.RoundTripper = (*failoverTransport)(nil)

// Current is the address requests go to now.
func (t *failoverTransport) Current() string { return t.servers[t.cur.Load()].Host }

func (t *failoverTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := int(t.cur.Load())
	n := len(t.servers)
	var lastErr error
	var unavailableResp *http.Response // the last 502/503/504, kept for its Retry-After
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = t.servers[idx].Scheme, t.servers[idx].Host, ""
		if i > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				break // the body cannot be sent twice
			}
			b, err := req.GetBody()
			if err != nil {
				break
			}
			r.Body = b
		}
		resp, err := t.base.RoundTrip(r)
		switch {
		case err == nil && !unavailable(resp.StatusCode):
			t.cur.Store(int32(idx))
			if unavailableResp != nil {
				drain(unavailableResp)
			}
			return resp, nil
		case err == nil: // no leader there: nothing was written
			if unavailableResp != nil {
				drain(unavailableResp)
			}
			unavailableResp = resp
		case req.Context().Err() != nil || !unreachable(err, req.Method):
			if unavailableResp != nil {
				drain(unavailableResp)
			}
			return nil, err
		default:
			lastErr = err
		}
		// Requests go to the next server from now on.
		t.cur.Store(int32((idx + 1) % n))
	}
	if unavailableResp != nil {
		return unavailableResp, nil
	}
	if lastErr == nil {
		lastErr = errors.New("client: no server could take the request")
	}
	return nil, lastErr
}

// unavailable reports statuses that mean "try another server".
func unavailable(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// unreachable reports errors that mean the request did not reach the
// server: dialing failed. A GET may also be resent when the connection
// broke before an answer; a write may not (it may have been applied).
func unreachable(err error, method string) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if method != http.MethodGet {
		return false
	}
	return errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "server closed")
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
