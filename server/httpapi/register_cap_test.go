package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/jobspec"
)

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

// TestRegisterEntryCheck_AtLimit: an entry of exactly the cap passes, one
// byte more is refused with 413.
func TestRegisterEntryCheck_AtLimit(t *testing.T) {
	spec, err := jobspec.ParsePipelineSpec([]byte(specWideEnv(5, 100)))
	if err != nil {
		t.Fatal(err)
	}
	p, jobs := NewPipeline(spec, "")
	req := &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := registerEntryCheck(req, len(b)); err != nil {
		t.Fatalf("at the limit (%d bytes): %v", len(b), err)
	}
	err = registerEntryCheck(req, len(b)-1)
	var he *HTTPError
	if !errors.As(err, &he) || he.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("one byte past the limit: %v, want a 413", err)
	}
}

// TestRegisterEntryCheck_WideEnvNotEncoded: an entry whose merged envs alone
// pass the limit (500 jobs × a 32 KiB pipeline env: ≈ 16 MB) is refused
// from the envs' sizes, without encoding it: the check allocates far less
// than the entry it refuses.
func TestRegisterEntryCheck_WideEnvNotEncoded(t *testing.T) {
	spec, err := jobspec.ParsePipelineSpec([]byte(specWideEnv(500, 32<<10)))
	if err != nil {
		t.Fatal(err)
	}
	p, jobs := NewPipeline(spec, "")
	req := &structs.PipelineRegisterRequest{Pipeline: p, Jobs: jobs}
	var err2 error
	allocs := testing.AllocsPerRun(1, func() { err2 = registerEntryCheck(req, 1<<20) })
	var he *HTTPError
	if !errors.As(err2, &he) || he.Code != http.StatusRequestEntityTooLarge || !strings.Contains(he.Msg, "at least") {
		t.Fatalf("wide env: %v, want a 413 from the envs' sizes", err2)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_ = registerEntryCheck(req, 1<<20)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("the check allocated %d bytes (%v allocs) to refuse the entry; want it refused without encoding", got, allocs)
	}
}
