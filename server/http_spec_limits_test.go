package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/jobspec"
)

// specWithJobs is a pipeline of n one-step jobs, padded with a comment to
// exactly size bytes when size > 0.
func specWithJobs(n, size int) string {
	var b strings.Builder
	b.WriteString("name: p\njobs:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  j%d: {steps: ['true']}\n", i)
	}
	if size > 0 {
		b.WriteString("# ")
		b.WriteString(strings.Repeat("x", size-b.Len()-1))
		b.WriteString("\n")
	}
	return b.String()
}

// TestServer_SpecLimits: the submit routes apply the server's SpecLimits:
// a spec at a limit is accepted, one past it gets 400 naming the field, its
// line and the flag, a body past the size limit 413; nothing is written to
// Raft for a refused spec.
func TestServer_SpecLimits(t *testing.T) {
	ts := newSchedServer(t, "", func(c *Config) {
		c.SpecLimits = jobspec.Limits{JobsPerPipeline: 3, StepsPerJob: 2, SpecBytes: 2000}
	})
	cases := []struct {
		name, path, body string
		code             int
		contains         []string
	}{
		{"jobs at the limit", "/v1/pipelines", specWithJobs(3, 0), 201, nil},
		{"jobs past the limit", "/v1/pipelines", specWithJobs(4, 0), 400,
			[]string{"line 3, jobs: 4 jobs, more than the 3 allowed (the server's -limit-jobs-per-pipeline)"}},
		{"size at the limit", "/v1/pipelines", specWithJobs(1, 2000), 201, nil},
		{"size past the limit", "/v1/pipelines", specWithJobs(1, 2001), 413,
			[]string{"larger than the 2000 bytes allowed (the server's -limit-spec-bytes)"}},
		{"job body: steps at the limit", "/v1/jobs", "name: j\nsteps: [a, b]\n", 201, nil},
		{"job body: steps past the limit", "/v1/jobs", "name: j\nsteps: [a, b, c]\n", 400,
			[]string{"line 2, steps: 3 steps, more than the 2 allowed (the server's -limit-steps-per-job)"}},
		{"job body: size past the limit", "/v1/jobs", "name: j\nsteps: [a]\n#" + strings.Repeat("x", 2000), 413,
			[]string{"-limit-spec-bytes"}},
		{"dry run: steps past the limit", "/v1/schedule", "name: j\nsteps: [a, b, c]\n", 400,
			[]string{"-limit-steps-per-job"}},
		{"dry run: size past the limit", "/v1/schedule", "name: j\nsteps: [a]\n#" + strings.Repeat("x", 2000), 413,
			[]string{"-limit-spec-bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ts.pipelineCount()
			var e map[string]any
			resp := ts.do("POST", c.path, []byte(c.body), nil, &e)
			if resp.StatusCode != c.code {
				t.Fatalf("HTTP %d, want %d (%v)", resp.StatusCode, c.code, e)
			}
			for _, want := range c.contains {
				if msg, _ := e["error"].(string); !strings.Contains(msg, want) {
					t.Fatalf("error %q does not contain %q", msg, want)
				}
			}
			if c.code >= 400 {
				if after := ts.pipelineCount(); after != before {
					t.Errorf("a refused spec made pipelines: %d before, %d after", before, after)
				}
			}
		})
	}
}

// TestServer_SpecLimitsDefaults: with the default limits, the request of
// issue 12 (20,000 one-step jobs in 249 KB) is refused with 400, and a
// spec body larger than the default 1 MiB is accepted once
// -limit-spec-bytes allows it (the route's cap comes from the table, not
// from maxBodyBytes).
func TestServer_SpecLimitsDefaults(t *testing.T) {
	ts := newTestServer(t, "")
	var e map[string]any
	resp := ts.do("POST", "/v1/pipelines", []byte(specWithJobs(20000, 0)), nil, &e)
	if msg, _ := e["error"].(string); resp.StatusCode != 400 || !strings.Contains(msg, "20000 jobs, more than the 500 allowed") {
		t.Fatalf("20,000 jobs: HTTP %d %v", resp.StatusCode, e)
	}

	big := newSchedServer(t, "", func(c *Config) { c.SpecLimits.SpecBytes = 2 << 20 })
	resp = big.do("POST", "/v1/pipelines", []byte(specWithJobs(1, 3<<19)), nil, &e) // 1.5 MiB
	if resp.StatusCode != 201 {
		t.Fatalf("1.5 MiB spec under a 2 MiB limit: HTTP %d %v", resp.StatusCode, e)
	}
}

// pipelineCount is how many pipelines GET /v1/pipelines lists.
func (ts *testServer) pipelineCount() int {
	ts.t.Helper()
	var list []map[string]any
	ts.do("GET", "/v1/pipelines", nil, nil, &list)
	return len(list)
}

// specWideEnv is a pipeline of jobs one-step jobs under a pipeline env of
// one value of envBytes, which every job's record copies.
func specWideEnv(jobs, envBytes int) string {
	var b strings.Builder
	b.WriteString("name: p\nenv: {E: " + strings.Repeat("e", envBytes) + "}\njobs:\n")
	for i := 0; i < jobs; i++ {
		fmt.Fprintf(&b, "  j%d: {steps: ['true']}\n", i)
	}
	return b.String()
}

// TestServer_RegisterEntryCap: a spec within every parser limit whose
// register entry would pass 16 × -limit-spec-bytes (the pipeline env copied
// into each of its jobs) gets 413 naming the flag, and nothing reaches Raft;
// a spec of the full size limit still passes.
func TestServer_RegisterEntryCap(t *testing.T) {
	ts := newSchedServer(t, "", func(c *Config) {
		c.SpecLimits = jobspec.Limits{SpecBytes: 2000}
	})
	body := specWideEnv(36, 1000)
	if len(body) > 2000 {
		t.Fatalf("the test spec is %d bytes, over the 2000 limit", len(body))
	}
	var e map[string]any
	resp := ts.do("POST", "/v1/pipelines", []byte(body), nil, &e)
	msg, _ := e["error"].(string)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "-limit-spec-bytes") || !strings.Contains(msg, "more than the 32000 allowed") {
		t.Fatalf("env copied into 36 jobs: HTTP %d %q, want 413 naming -limit-spec-bytes", resp.StatusCode, msg)
	}
	if n := ts.pipelineCount(); n != 0 {
		t.Fatalf("a refused spec made %d pipelines", n)
	}
	resp = ts.do("POST", "/v1/pipelines", []byte(specWideEnv(3, 2000-130)), nil, &e)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("an honest spec near the size limit: HTTP %d %v", resp.StatusCode, e)
	}
}
