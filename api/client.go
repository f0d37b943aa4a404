// Package api is the Go client of ciplat's HTTP API (/v1) and its JSON wire
// types. It imports only the standard library, so tools can import it alone;
// the ciplat CLI talks to agents only through it.
//
// Method names follow one style: a read is named after what it returns
// (Pipelines, Pipeline, Job, Nodes, Node, Workers, Worker, NodeAllocations,
// RaftConfiguration, SchedulerConfiguration), its paged form adds Page
// (WorkersPage), a stream of logs is <Thing>Logs; a write or an action is a
// verb then its object (SubmitPipeline, CancelPipeline, DrainNode,
// SetNodeEligibility, StopWorker, RemoveRaftPeer, SaveSnapshot,
// RestoreSnapshot, UpdateAllocations). No Get or List prefixes.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultAddress is used when neither Config.Address nor CIPLAT_ADDR is set.
const DefaultAddress = "http://127.0.0.1:4680"

// Config configures a Client.
type Config struct {
	// Address of an agent's HTTP API; default CIPLAT_ADDR, then DefaultAddress.
	Address string
	// HTTPClient is used for every request; nil means a client with no
	// overall timeout (blocking queries and follows are long) but sane dial
	// and header timeouts.
	HTTPClient *http.Client
}

// DefaultConfig reads CIPLAT_ADDR.
func DefaultConfig() *Config {
	addr := os.Getenv("CIPLAT_ADDR")
	if addr == "" {
		addr = DefaultAddress
	}
	return &Config{Address: addr}
}

// Client talks to one agent. It is safe for concurrent use.
type Client struct {
	base *url.URL
	http *http.Client
}

// NewClient checks the address and builds a client.
func NewClient(cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	addr := cfg.Address
	if addr == "" {
		addr = DefaultConfig().Address
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid agent address %q: want http://host:port", cfg.Address)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		tr.ResponseHeaderTimeout = 0
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: u, http: hc}, nil
}

// Address returns the agent address the client talks to.
func (c *Client) Address() string { return c.base.String() }

// Error is a non-2xx answer from the API.
type Error struct {
	StatusCode int
	Message    string
	// RetryAfter is set from the Retry-After header on 429 and 503.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// IsStatus reports whether err is an *Error with the given status code.
func IsStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == code
}

// QueryOptions make a read a blocking query: it returns once the data's
// index is past WaitIndex, or after WaitTime.
type QueryOptions struct {
	WaitIndex uint64
	WaitTime  time.Duration
	// AllowStale lets any server answer from its own state (?stale)
	// instead of the leader; QueryMeta then tells how current it is.
	AllowStale bool
	Params     map[string]string
}

// QueryMeta is what a read tells besides its data.
type QueryMeta struct {
	// LastIndex is the X-Ciplat-Index of the answer: pass it as the next WaitIndex.
	LastIndex uint64
	// LastContact is how long ago the answering server last heard from
	// the leader (0 on the leader), from X-Ciplat-Last-Contact.
	LastContact time.Duration
	// KnownLeader is whether the answering server knew a leader.
	KnownLeader bool
	// NextToken is the X-Ciplat-Next-Token of a paged list: pass it as
	// the next page's NextToken; empty on the last page.
	NextToken string
}

func (c *Client) url(path string, q *QueryOptions) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	v := url.Values{}
	if q != nil {
		if q.WaitIndex > 0 {
			v.Set("index", strconv.FormatUint(q.WaitIndex, 10))
		}
		if q.WaitTime > 0 {
			v.Set("wait", q.WaitTime.String())
		}
		if q.AllowStale {
			v.Set("stale", "true")
		}
		for k, val := range q.Params {
			v.Set(k, val)
		}
	}
	u.RawQuery = v.Encode()
	return u.String()
}

// do sends a request and returns the response when it is 2xx; otherwise it
// reads the JSON error and returns *Error.
func (c *Client) do(ctx context.Context, method, path string, q *QueryOptions, body io.Reader, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{StatusCode: resp.StatusCode}
	var wire struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &wire) == nil && wire.Error != "" {
		e.Message = wire.Error
	} else {
		e.Message = strings.TrimSpace(string(b))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		}
	}
	return nil, e
}

// get reads JSON into out and returns the index header.
func (c *Client) get(ctx context.Context, path string, q *QueryOptions, out any) (*QueryMeta, error) {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return metaOf(resp), nil
}

// send writes JSON (or raw bytes) and reads JSON into out (out may be nil).
// Every body goes with a Content-Type that is not a form's: the agent
// refuses text/plain, form bodies and untyped bodies with 415.
func (c *Client) send(ctx context.Context, method, path string, in any, out any, hdr http.Header) error {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
		if hdr.Get("Content-Type") == "" {
			// The agent refuses a body without a type (CSRF guard); callers
			// name theirs, this is the fallback.
			if hdr == nil {
				hdr = http.Header{}
			}
			hdr.Set("Content-Type", "application/octet-stream")
		}
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := c.do(ctx, method, path, nil, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func metaOf(resp *http.Response) *QueryMeta {
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Ciplat-Index"), 10, 64)
	ms, _ := strconv.ParseInt(resp.Header.Get("X-Ciplat-Last-Contact"), 10, 64)
	known, _ := strconv.ParseBool(resp.Header.Get("X-Ciplat-Known-Leader"))
	return &QueryMeta{LastIndex: idx, LastContact: time.Duration(ms) * time.Millisecond, KnownLeader: known,
		NextToken: resp.Header.Get("X-Ciplat-Next-Token")}
}
