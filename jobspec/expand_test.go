package jobspec

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// specRunBomb is the review's spec of issue 12: one command of runBytes
// anchored under x-a, a list of steps steps that each alias it, and jobs
// jobs that each alias the list. Every field stays within its limit.
func specRunBomb(runBytes, steps, jobs int) string {
	var b strings.Builder
	b.WriteString("x-a:\n  r: &r " + strings.Repeat("x", runBytes) + "\n  s: &s\n")
	for i := 0; i < steps; i++ {
		b.WriteString("    - {run: *r}\n")
	}
	b.WriteString("name: p\njobs:\n")
	for i := 0; i < jobs; i++ {
		fmt.Fprintf(&b, "  j%d: {steps: *s}\n", i)
	}
	return b.String()
}

// specHonestMax is a spec without aliases of exactly size bytes: jobs of
// long commands, padded with a comment.
func specHonestMax(size int) string {
	var b strings.Builder
	b.WriteString("name: p\njobs:\n")
	run := strings.Repeat("r", 60000)
	for i := 0; b.Len()+len(run)+200 < size; i++ {
		fmt.Fprintf(&b, "  j%d:\n    steps:\n      - %s\n", i, run)
	}
	b.WriteString("# ")
	b.WriteString(strings.Repeat("c", size-b.Len()-1))
	b.WriteString("\n")
	return b.String()
}

func TestParsePipelineSpec_AliasBombRefused(t *testing.T) {
	data := []byte(specRunBomb(60000, 100, 30))
	if len(data) > 64<<10 {
		t.Fatalf("the repro is %d bytes, want about 63 KB", len(data))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	spec, err := DefaultLimits().ParsePipeline(data)
	runtime.ReadMemStats(&after)
	if err == nil {
		b, _ := json.Marshal(spec)
		t.Fatalf("a %d-byte spec expanding to %d bytes of JSON was accepted", len(data), len(b))
	}
	msg := err.Error()
	for _, want := range []string{"too large once its YAML aliases are expanded", "-limit-spec-bytes", fmt.Sprint(DefaultLimits().ExpandedBytes())} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("parsing the refused spec allocated %d MB, want < 64", alloc>>20)
	}
}

func TestParsePipelineSpec_HonestMaxSizePasses(t *testing.T) {
	lim := DefaultLimits()
	data := specHonestMax(lim.SpecBytes)
	if len(data) != lim.SpecBytes {
		t.Fatalf("built %d bytes, want %d", len(data), lim.SpecBytes)
	}
	spec, err := lim.ParsePipeline([]byte(data))
	if err != nil {
		t.Fatalf("an honest spec of -limit-spec-bytes was refused: %v", err)
	}
	// The same spec as JSON (which cannot alias), at most the size limit.
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(js) > lim.SpecBytes {
		t.Fatalf("the JSON form is %d bytes, over the %d limit; shrink the test spec", len(js), lim.SpecBytes)
	}
	if _, err := lim.ParsePipeline(js); err != nil {
		t.Fatalf("the honest spec as JSON was refused: %v", err)
	}
}

// TestParsePipelineSpec_ExpandedBytesAtLimit finds the exact budget a small
// aliased spec needs, and holds it passing at that budget and refused at one
// byte less; the budget counts every alias's use of the anchored value.
func TestParsePipelineSpec_ExpandedBytesAtLimit(t *testing.T) {
	const runBytes, steps, jobs = 1000, 10, 5
	data := []byte(specRunBomb(runBytes, steps, jobs))
	lim := Limits{SpecBytes: 1 << 30}.WithDefaults()
	lo, hi := 0, 1<<24 // refused at lo, accepted at hi
	if _, err := specParseBudget(data, false, lim, hi); err != nil {
		t.Fatalf("refused with a large budget: %v", err)
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if _, err := specParseBudget(data, false, lim, mid); err == nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	need := hi
	if min := runBytes * steps * jobs; need < min {
		t.Fatalf("the spec needs a budget of %d bytes, less than the %d its aliases expand to", need, min)
	}
	if _, err := specParseBudget(data, false, lim, need); err != nil {
		t.Fatalf("at the limit (%d bytes): %v", need, err)
	}
	_, err := specParseBudget(data, false, lim, need-1)
	if err == nil || !strings.Contains(err.Error(), "too large once its YAML aliases are expanded") {
		t.Fatalf("at limit-1 (%d bytes): got %v, want the expanded-size error", need-1, err)
	}
	// Through the flag: -limit-spec-bytes S allows 4*S bytes of values.
	if need%specExpandFactor == 0 {
		s := need / specExpandFactor
		if _, err := (Limits{SpecBytes: s}).ParsePipeline(data); len(data) <= s && err != nil {
			t.Fatalf("-limit-spec-bytes %d: %v", s, err)
		}
	}
}
