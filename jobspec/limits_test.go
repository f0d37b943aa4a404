package jobspec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// specLimitCase builds a spec holding n of what one limit bounds, and says
// where the error at n = limit+1 must point.
type specLimitCase struct {
	spec  func(n int) string
	field string
	line  int
}

// specLimitCases has one case per row of LimitTable (the test fails
// when a row has none).
var specLimitCases = map[string]specLimitCase{
	"limit-spec-bytes": {spec: func(n int) string {
		s := "name: p\njobs: {j: {steps: [x]}}\n# "
		return s + strings.Repeat("x", n-len(s)-1) + "\n"
	}},
	"limit-jobs-per-pipeline": {spec: func(n int) string {
		var b strings.Builder
		b.WriteString("name: p\njobs:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "  j%d: {steps: [x]}\n", i)
		}
		return b.String()
	}, field: "jobs", line: 3},
	"limit-steps-per-job": {spec: func(n int) string {
		return "name: p\njobs:\n  j:\n    steps:\n" + strings.Repeat("      - x\n", n)
	}, field: "jobs.j.steps", line: 5},
	"limit-needs-per-job": {spec: func(n int) string {
		var b strings.Builder
		b.WriteString("name: p\njobs:\n  last:\n    steps: [x]\n    needs:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "      - j%d\n", i)
		}
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "  j%d: {steps: [x]}\n", i)
		}
		return b.String()
	}, field: "jobs.last.needs", line: 6},
	"limit-matches-per-job": {spec: func(n int) string {
		return "name: p\njobs:\n  j:\n    steps: [x]\n    constraints:\n" + strings.Repeat("      - {attr: os, value: linux}\n", n)
	}, field: "jobs.j.constraints", line: 6},
	"limit-name-bytes": {spec: func(n int) string {
		return "name: p\njobs:\n  j:\n    steps:\n      - name: " + strings.Repeat("s", n) + "\n        run: x\n"
	}, field: "jobs.j.steps[0].name", line: 5},
	"limit-env-entries": {spec: func(n int) string {
		var b strings.Builder
		b.WriteString("name: p\njobs:\n  j:\n    steps: [x]\n    env:\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "      V%d: x\n", i)
		}
		return b.String()
	}, field: "jobs.j.env", line: 6},
	"limit-env-value-bytes": {spec: func(n int) string {
		return "name: p\nenv:\n  BIG: " + strings.Repeat("v", n) + "\njobs: {j: {steps: [x]}}\n"
	}, field: "env.BIG", line: 3},
	"limit-run-bytes": {spec: func(n int) string {
		return "name: p\njobs:\n  j:\n    steps:\n      - " + strings.Repeat("y", n) + "\n"
	}, field: "jobs.j.steps[0].run", line: 5},
	"limit-field-bytes": {spec: func(n int) string {
		return "name: p\njobs:\n  j:\n    image: " + strings.Repeat("i", n) + "\n    steps: [x]\n"
	}, field: "jobs.j.image", line: 4},
}

// TestLimits_AtLimitAndBeyond: every limit of LimitTable, at its
// default and at a value set as its flag would, accepts a spec at the limit
// and refuses one past it with the field, the line and the flag to change.
func TestLimits_AtLimitAndBeyond(t *testing.T) {
	for _, row := range LimitTable {
		c, ok := specLimitCases[row.Flag]
		if !ok {
			t.Errorf("no test case for %s", row.Flag)
			continue
		}
		for _, limit := range []int{row.Default, row.Default / 2} {
			t.Run(fmt.Sprintf("%s=%d", row.Flag, limit), func(t *testing.T) {
				var lim Limits
				*row.Field(&lim) = limit
				if _, err := lim.ParsePipeline([]byte(c.spec(limit))); err != nil {
					t.Fatalf("at the limit: %v", specHead(err))
				}
				_, err := lim.ParsePipeline([]byte(c.spec(limit + 1)))
				var errs Errors
				if !errors.As(err, &errs) {
					t.Fatalf("past the limit: got %v, want Errors", err)
				}
				e := errs[0]
				if len(errs) != 1 || e.Field != c.field || e.Line != c.line ||
					!strings.Contains(e.Msg, fmt.Sprintf("more than the %d allowed (the server's -%s)", limit, row.Flag)) {
					t.Fatalf("past the limit: got %v\nwant one error at line %d, %q naming -%s", specHead(err), c.line, c.field, row.Flag)
				}
				if len(e.Error()) > 300 {
					t.Errorf("error of %d bytes: a message must not quote a huge value", len(e.Error()))
				}
			})
		}
	}
}

// specHead is the start of an error, for failure messages.
func specHead(err error) string {
	s := fmt.Sprint(err)
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// TestLimits_Validate: a spec built in Go (not parsed) is held to the
// same limits by Validate, at the limit and past it.
func TestLimits_Validate(t *testing.T) {
	lim := DefaultLimits()
	spec := func(jobs, steps int, name string) *structs.PipelineSpec {
		s := &structs.PipelineSpec{Name: "p"}
		for i := 0; i < jobs; i++ {
			j := specDefaultJob(fmt.Sprintf("j%d", i))
			for k := 0; k < steps; k++ {
				j.Steps = append(j.Steps, structs.StepSpec{Name: fmt.Sprintf("%s%d", name, k), Run: "x"})
			}
			s.Jobs = append(s.Jobs, j)
		}
		return s
	}
	if err := lim.Validate(spec(lim.JobsPerPipeline, 1, "s")); err != nil {
		t.Errorf("jobs at the limit: %v", specHead(err))
	}
	if err := lim.Validate(spec(lim.JobsPerPipeline+1, 1, "s")); err == nil || !strings.Contains(err.Error(), "jobs: 501 jobs, more than the 500 allowed") {
		t.Errorf("jobs past the limit: %v", specHead(err))
	}
	if err := lim.Validate(spec(1, lim.StepsPerJob, "s")); err != nil {
		t.Errorf("steps at the limit: %v", specHead(err))
	}
	if err := lim.Validate(spec(1, lim.StepsPerJob+1, "s")); err == nil || !strings.Contains(err.Error(), "jobs.j0.steps: 101 steps") {
		t.Errorf("steps past the limit: %v", specHead(err))
	}
	long := strings.Repeat("n", lim.NameBytes-1) // plus the step's digit
	if err := lim.Validate(spec(1, 1, long)); err != nil {
		t.Errorf("name at the limit: %v", specHead(err))
	}
	if err := lim.Validate(spec(1, 1, long+"n")); err == nil || !strings.Contains(err.Error(), "the step name is 129 bytes") {
		t.Errorf("name past the limit: %v", specHead(err))
	}
}

// TestParsePipelineSpec_BadCharacters: names with control or bidi
// characters, NUL in values and commands, unknown YAML tags and driver
// typos are refused with their field and line.
func TestParsePipelineSpec_BadCharacters(t *testing.T) {
	tests := []struct {
		name, spec, want string
	}{
		{"control char in step name", "name: p\njobs:\n  j:\n    steps:\n      - {name: \"a\\x07b\", run: x}\n",
			`line 5, jobs.j.steps[0].name: step name "a\ab" holds the control character U+0007 at byte 1: use printable characters`},
		{"bidi override in step name", "name: p\njobs:\n  j:\n    steps:\n      - {name: \"safe\u202Eexe.sh\", run: x}\n",
			`line 5, jobs.j.steps[0].name: step name "safe\u202eexe.sh" holds the invisible bidirectional control U+202E at byte 4: use printable characters`},
		{"isolate in step name", "name: p\njobs:\n  j:\n    steps:\n      - {name: \"a\u2066b\", run: x}\n",
			`holds the invisible bidirectional control U+2066`},
		{"NUL in step name (JSON)", `{"name": "p", "jobs": {"j": {"steps": [{"name": "a\u0000b", "run": "x"}]}}}`,
			`line 1, jobs.j.steps[0].name: step name "a\x00b" holds a NUL character at byte 1`},
		{"NUL in env value", "name: p\nenv: {A: \"x\\0y\"}\njobs: {j: {steps: [x]}}\n",
			`line 2, env.A: the value holds a NUL character at byte 1, which no process environment can carry`},
		{"NUL in step env value", "name: p\njobs:\n  j:\n    steps:\n      - run: x\n        env: {B: \"\\0\"}\n",
			`line 6, jobs.j.steps[0].env.B: the value holds a NUL character at byte 0`},
		{"NUL in run", "name: p\njobs:\n  j:\n    steps: [\"echo \\0\"]\n",
			`line 4, jobs.j.steps[0].run: the command holds a NUL character at byte 5, which no shell can run`},
		{"control char in image", "name: p\njobs:\n  j:\n    image: \"busybox\\e[31m\"\n    steps: [x]\n",
			`line 4, jobs.j.image: "busybox\x1b[31m" holds the control character U+001B at byte 7: use printable characters`},
		{"binary tag", "name: p\njobs:\n  j:\n    image: !!binary YnVzeWJveA==\n    steps: [x]\n",
			`line 4, jobs.j.image: unknown YAML tag "!!binary": a spec takes plain values (the tags !!str, !!int, !!float, !!bool, !!null, !!map, !!seq are accepted); remove the tag`},
		{"custom tag", "name: p\njobs:\n  j:\n    steps:\n      - !foo make\n",
			`line 5, jobs.j.steps[0]: unknown YAML tag "!foo"`},
		{"custom tag on a key", "name: p\njobs:\n  !foo j:\n    steps: [x]\n",
			`line 3, jobs.j: unknown YAML tag "!foo"`},
		{"custom tag on an ignored field", "name: p\nx-a: !secret s\njobs: {j: {steps: [x]}}\n",
			`line 2: unknown YAML tag "!secret"`},
		{"tag on a mapping", "name: p\njobs:\n  j: !job\n    steps: [x]\n",
			`line 3, jobs.j: unknown YAML tag "!job"`},
		{"driver typo", "name: p\njobs:\n  j:\n    driver: dokcer\n    steps: [x]\n",
			`line 4, jobs.j.driver: unknown driver "dokcer", did you mean "docker"? (built-in drivers: exec, docker, kubernetes, mock; plugin drivers go by their plugin's name)`},
		{"driver in capitals", "name: p\njobs:\n  j:\n    driver: Docker\n    steps: [x]\n",
			`line 4, jobs.j.driver: invalid driver name "Docker": use one of exec, docker, kubernetes, mock, or a plugin driver's name (lower-case letters, digits, '.', '_' or '-'); did you mean "docker"?`},
		{"driver with spaces", "name: p\njobs:\n  j:\n    driver: my driver\n    steps: [x]\n",
			`line 4, jobs.j.driver: invalid driver name "my driver"`},
		{"huge unknown field is not echoed", `{"name": "p", "` + strings.Repeat("f", 5000) + `": 1, "jobs": {"j": {"steps": ["x"]}}}`,
			`line 1, ["ffffffffffffffffffffffffffffffffffffffff"… (5000 bytes)]: unknown field "ffffffffffffffffffffffffffffffffffffffff"… (5000 bytes) (known fields: name, env, reschedule, jobs)`},
		{"huge job name is not echoed", "name: p\njobs:\n  " + strings.Repeat("j", 200) + ": {steps: [x]}\n",
			`line 3, jobs["jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj"… (200 bytes)]: the job name is 200 bytes, more than the 128 allowed (the server's -limit-name-bytes): "jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj"… (200 bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePipelineSpec([]byte(tt.spec))
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.spec)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
	// What stays accepted: explicit core tags, a plugin driver, printable
	// Unicode in step names, newlines and tabs in values and commands.
	ok := "name: p\nenv: {A: !!str 123, B: \"l1\\nl2\\tx\"}\njobs:\n  j:\n    driver: my-plugin.v2\n    priority: !!int 60\n    steps:\n      - name: \"compilar ✓ 構築\"\n        run: \"echo a\\necho b\"\n"
	if _, err := ParsePipelineSpec([]byte(ok)); err != nil {
		t.Errorf("refused:\n%s\n%v", ok, err)
	}
}

// TestParsePipelineSpec_ErrorCap: a spec with thousands of problems gets the
// first 100, the last saying how many more there are.
func TestParsePipelineSpec_ErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: p\njobs:\n")
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&b, "  j%d: {priority: 0, steps: [x]}\n", i)
	}
	_, err := ParsePipelineSpec([]byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v", err)
	}
	if len(errs) != specMaxErrors || !strings.Contains(errs[len(errs)-1].Msg, "and 301 more problems") {
		t.Fatalf("%d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

// TestLimits_Check: a negative limit is refused naming its flag; zero
// takes the default.
func TestLimits_Check(t *testing.T) {
	if err := (Limits{StepsPerJob: -1}).Check(); err == nil || !strings.Contains(err.Error(), "-limit-steps-per-job -1") {
		t.Errorf("Check = %v", err)
	}
	if got := (Limits{}).WithDefaults(); got.JobsPerPipeline != 500 || got.SpecBytes != 1<<20 || got.NameBytes != 128 {
		t.Errorf("defaults %+v", got)
	}
}
