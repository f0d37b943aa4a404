package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ciplat/ciplat/api"
	"github.com/ciplat/ciplat/fsm/state"
)

// settableClock is a Config.Now that tests move by hand; safe for the
// server's goroutines.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// submitErr submits a spec and returns the pipeline (on 200/201), the
// status and the JSON error message.
func submitErr(ts *testServer, spec string, hdr map[string]string) (*api.Pipeline, int, string) {
	ts.t.Helper()
	resp := ts.do("POST", "/v1/pipelines", []byte(spec), hdr, nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e map[string]string
		if err := json.Unmarshal(b, &e); err != nil {
			ts.t.Fatalf("HTTP %d with a body that is not a JSON error: %q", resp.StatusCode, b)
		}
		return nil, resp.StatusCode, e["error"]
	}
	var p api.Pipeline
	if err := json.Unmarshal(b, &p); err != nil {
		ts.t.Fatalf("decode %q: %v", b, err)
	}
	return &p, resp.StatusCode, ""
}

const otherSpec = "name: other\njobs:\n  a:\n    steps: [ { name: s1, run: \"true\" } ]\n"

func TestServer_IdempotencyKey_Body(t *testing.T) {
	ts := newTestServer(t, "")
	key := map[string]string{"Idempotency-Key": "deploy-7"}
	p1, c1, _ := submitErr(ts, twoJobs, key)
	if c1 != http.StatusCreated {
		t.Fatalf("first submit: HTTP %d, want 201", c1)
	}

	t.Run("same key same body", func(t *testing.T) {
		p, c, msg := submitErr(ts, twoJobs, key)
		if c != http.StatusOK || p.ID != p1.ID {
			t.Fatalf("retry: HTTP %d %q, pipeline %v; want 200 with %s", c, msg, p, p1.ID)
		}
	})
	t.Run("same key same spec written differently", func(t *testing.T) {
		// Comments, spacing and JSON instead of YAML do not change the spec.
		spec := "# retried by a script\n" + twoJobs
		p, c, msg := submitErr(ts, spec, key)
		if c != http.StatusOK || p.ID != p1.ID {
			t.Fatalf("retry: HTTP %d %q; want 200 with %s", c, msg, p1.ID)
		}
	})
	t.Run("same key different body", func(t *testing.T) {
		_, c, msg := submitErr(ts, otherSpec, key)
		want := fmt.Sprintf("Idempotency-Key %q was used for a different request (pipeline %s); use a new key", "deploy-7", p1.ID)
		if c != http.StatusConflict || msg != want {
			t.Fatalf("HTTP %d %q; want 409 %q", c, msg, want)
		}
	})
	t.Run("different keys same body", func(t *testing.T) {
		a, ca, _ := submitErr(ts, otherSpec, map[string]string{"Idempotency-Key": "k-a"})
		b, cb, _ := submitErr(ts, otherSpec, map[string]string{"Idempotency-Key": "k-b"})
		if ca != http.StatusCreated || cb != http.StatusCreated || a.ID == b.ID {
			t.Fatalf("HTTP %d, %d, pipelines %s, %s; want two new pipelines", ca, cb, a.ID, b.ID)
		}
	})
	var list []api.PipelineStub
	ts.do("GET", "/v1/pipelines", nil, nil, &list)
	if len(list) != 3 {
		t.Fatalf("%d pipelines, want 3 (the keyed one and two with other keys)", len(list))
	}
}

func TestServer_IdempotencyKey_Validation(t *testing.T) {
	ts := newTestServer(t, "")
	tests := []struct {
		name string
		key  string
		code int
		want string
	}{
		{"at the limit", strings.Repeat("k", 128), http.StatusCreated, ""},
		{"one over the limit", strings.Repeat("k", 129), http.StatusBadRequest, "Idempotency-Key is 129 characters long: at most 128"},
		{"not ASCII", "café", http.StatusBadRequest, "only printable ASCII"},
		{"empty is no key", "", http.StatusCreated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c, msg := submitErr(ts, otherSpec, map[string]string{"Idempotency-Key": tt.key})
			if c != tt.code || !strings.Contains(msg, tt.want) {
				t.Fatalf("HTTP %d %q; want %d %q", c, msg, tt.code, tt.want)
			}
		})
	}
	t.Run("given twice", func(t *testing.T) {
		req, _ := http.NewRequest("POST", ts.web.URL+"/v1/pipelines", strings.NewReader(otherSpec))
		req.Header.Set("Content-Type", "application/yaml")
		req.Header.Add("Idempotency-Key", "a")
		req.Header.Add("Idempotency-Key", "b")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "given 2 times") {
			t.Fatalf("HTTP %d %s; want 400 given 2 times", resp.StatusCode, b)
		}
	})
}

// TestServer_IdempotencyKey_Expiry drives the server's clock past the key's
// TTL: the leader's sweep loop proposes a sweep entry that removes the key,
// and the key can then be used for another spec.
func TestServer_IdempotencyKey_Expiry(t *testing.T) {
	clk := &settableClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ts := newLiveServer(t, func(c *Config) {
		c.Now = clk.now
		c.IdempotencyTTL = time.Hour
		c.IdempotencySweepInterval = 5 * time.Millisecond
	})
	key := map[string]string{"Idempotency-Key": "nightly"}
	p1, c1, _ := submitErr(ts, twoJobs, key)
	if c1 != http.StatusCreated {
		t.Fatalf("first submit: HTTP %d", c1)
	}
	rec, _ := ts.srv.State().IdempotencyKey(nil, "", "nightly")
	if rec == nil || !rec.ExpiresAt.Equal(clk.now().Add(time.Hour)) || rec.PipelineID != p1.ID {
		t.Fatalf("key record = %+v; want pipeline %s, expiring in 1h", rec, p1.ID)
	}

	// Within the window the key still holds.
	clk.advance(time.Hour - time.Second)
	if _, c, _ := submitErr(ts, otherSpec, key); c != http.StatusConflict {
		t.Fatalf("other body within the TTL: HTTP %d, want 409", c)
	}
	if p, c, _ := submitErr(ts, twoJobs, key); c != http.StatusOK || p.ID != p1.ID {
		t.Fatalf("retry within the TTL: HTTP %d, want 200 with %s", c, p1.ID)
	}
	before := ts.srv.State().Index(state.TableIdempotencyKeys)

	clk.advance(time.Second)
	waitFor(t, "the leader to sweep the expired key", func() bool {
		k, _ := ts.srv.State().IdempotencyKey(nil, "", "nightly")
		return k == nil
	})
	if after := ts.srv.State().Index(state.TableIdempotencyKeys); after <= before {
		t.Fatalf("key gone but the table index stayed at %d", after)
	}
	p2, c2, msg := submitErr(ts, otherSpec, key)
	if c2 != http.StatusCreated || p2.ID == p1.ID {
		t.Fatalf("reused key after expiry: HTTP %d %q; want 201 with a new pipeline", c2, msg)
	}
}

// TestServer_SweepExpiredIdempotencyKeys runs one pass of the leader's sweep
// on the injected clock (the loop's ticker is an hour, so only the test
// sweeps): before the expiry it proposes nothing, at the expiry one entry
// removes the key.
func TestServer_SweepExpiredIdempotencyKeys(t *testing.T) {
	clk := &settableClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ts := newLiveServer(t, func(c *Config) {
		c.Now = clk.now
		c.IdempotencyTTL = 10 * time.Minute
		c.IdempotencySweepInterval = time.Hour
	})
	if _, c, _ := submitErr(ts, twoJobs, map[string]string{"Idempotency-Key": "k"}); c != http.StatusCreated {
		t.Fatalf("submit: HTTP %d", c)
	}
	st := ts.srv.State
	registered := st().Index(state.TableIdempotencyKeys)

	clk.advance(10*time.Minute - time.Nanosecond)
	ts.srv.sweepExpiredIdempotencyKeys(context.Background())
	if k, _ := st().IdempotencyKey(nil, "", "k"); k == nil || st().Index(state.TableIdempotencyKeys) != registered {
		t.Fatalf("sweep before the expiry: key %v, table index %d → %d; want the key kept, the table untouched",
			k, registered, st().Index(state.TableIdempotencyKeys))
	}

	clk.advance(time.Nanosecond)
	ts.srv.sweepExpiredIdempotencyKeys(context.Background())
	if k, _ := st().IdempotencyKey(nil, "", "k"); k != nil {
		t.Fatalf("sweep at the expiry left the key: %+v", k)
	}
	if got := st().Index(state.TableIdempotencyKeys); got <= registered {
		t.Fatalf("idempotency_keys index = %d after the sweep, want past %d", got, registered)
	}
}
