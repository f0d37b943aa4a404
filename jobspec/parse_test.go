package jobspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// designExample is the spec DESIGN.md's example parses to.
func designExample() *structs.PipelineSpec {
	return &structs.PipelineSpec{
		Name: "hello",
		Env:  map[string]string{"GREETING": "hello"},
		Jobs: []*structs.JobSpec{
			{
				Name:        "build",
				Image:       "busybox:latest",
				Priority:    structs.DefaultPriority,
				Resources:   structs.Resources{CPU: 250, MemoryMB: 64},
				Constraints: []structs.Constraint{{Attr: "label.arch", Op: "=", Value: "amd64"}},
				Affinities:  []structs.Affinity{{Attr: "label.zone", Op: "=", Value: "a", Weight: 50}},
				Retry:       structs.RetryPolicy{Attempts: 2, Backoff: structs.Duration(2 * time.Second)},
				Timeout:     structs.Duration(10 * time.Minute),
				Steps:       []structs.StepSpec{{Name: "greet", Run: `echo "$GREETING from build"`}},
			},
			{
				Name:      "test",
				Needs:     []string{"build"},
				Priority:  structs.DefaultPriority,
				Resources: structs.Resources{CPU: structs.DefaultCPU, MemoryMB: structs.DefaultMemoryMB},
				Retry:     structs.RetryPolicy{Backoff: structs.Duration(time.Second)},
				Steps:     []structs.StepSpec{{Name: "step-1", Run: "echo testing"}},
			},
		},
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, data []byte) *structs.PipelineSpec {
	t.Helper()
	spec, err := ParsePipelineSpec(data)
	if err != nil {
		t.Fatalf("ParsePipelineSpec: unexpected error:\n%v", err)
	}
	return spec
}

func specJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePipelineSpec_DesignExample(t *testing.T) {
	want := designExample()
	for _, file := range []string{"design_example.yml", "design_example.json"} {
		t.Run(file, func(t *testing.T) {
			got := mustParse(t, readTestdata(t, file))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%s\nwant\n%s", specJSON(t, got), specJSON(t, want))
			}
		})
	}
}

// The JSON PipelineSpec marshals to is itself a spec that parses back to the
// same value, so a stored spec can be submitted again.
func TestParsePipelineSpec_RoundTripThroughJSON(t *testing.T) {
	for _, file := range []string{"design_example.yml", "full.yml", "jobs_list.json"} {
		t.Run(file, func(t *testing.T) {
			spec := mustParse(t, readTestdata(t, file))
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			again := mustParse(t, b)
			if !reflect.DeepEqual(again, spec) {
				t.Errorf("round trip changed the spec:\nbefore\n%s\nafter\n%s", specJSON(t, spec), specJSON(t, again))
			}
		})
	}
}

func TestParsePipelineSpec_Full(t *testing.T) {
	got := mustParse(t, readTestdata(t, "full.yml"))
	defaults := func(j *structs.JobSpec) *structs.JobSpec {
		j.Image, j.Driver = "golang:1.26", "docker"
		return j
	}
	want := &structs.PipelineSpec{
		Name: "full.pipeline_1",
		Env:  map[string]string{"PORT": "8080", "DEBUG": "yes", "RATIO": "0.5", "EMPTY": ""},
		Jobs: []*structs.JobSpec{
			defaults(&structs.JobSpec{
				Name:      "lint",
				Priority:  70,
				Resources: structs.Resources{CPU: 500, MemoryMB: 1024},
				Retry:     structs.RetryPolicy{Attempts: 2, Backoff: structs.Duration(time.Second)},
				Env:       map[string]string{"GOFLAGS": "-mod=mod"},
				Steps: []structs.StepSpec{
					{Name: "step-1", Run: "go vet ./..."},
					{Name: "staticcheck", Run: "staticcheck ./...\n", Timeout: structs.Duration(5 * time.Minute)},
				},
			}),
			defaults(&structs.JobSpec{
				Name:      "test",
				Needs:     []string{"lint"},
				Priority:  structs.DefaultPriority,
				Resources: structs.Resources{CPU: 1500, MemoryMB: 256},
				Constraints: []structs.Constraint{
					{Attr: "os", Op: "=", Value: "linux"},
					{Attr: "label.zone", Op: "regexp", Value: "^eu-"},
					{Attr: "driver.docker", Op: "is_set"},
				},
				Affinities: []structs.Affinity{
					{Attr: "label.ssd", Op: "=", Value: "true", Weight: 30},
					{Attr: "label.spot", Op: "=", Value: "true", Weight: -60},
				},
				Retry:   structs.RetryPolicy{Attempts: 3, Backoff: structs.Duration(500 * time.Millisecond)},
				Timeout: structs.Duration(90 * time.Minute),
				Steps: []structs.StepSpec{
					{Name: "step-1", Run: "go test ./..."},
					{Name: "race", Run: "go test -race ./...", Env: map[string]string{"CGO_ENABLED": "1"}},
					{Name: "step-3", Run: "42"},
				},
			}),
			{
				Name:      "deploy",
				Needs:     []string{"lint", "test"},
				Priority:  structs.DefaultPriority,
				Resources: structs.Resources{CPU: structs.DefaultCPU, MemoryMB: structs.DefaultMemoryMB},
				Retry:     structs.RetryPolicy{Backoff: structs.Duration(time.Second)},
				Steps:     []structs.StepSpec{{Name: "step-1", Run: "./deploy.sh"}},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", specJSON(t, got), specJSON(t, want))
	}
}

func TestParsePipelineSpec_JobsAsList(t *testing.T) {
	got := mustParse(t, readTestdata(t, "jobs_list.json"))
	if len(got.Jobs) != 2 || got.Jobs[0].Name != "build" || got.Jobs[1].Name != "publish" {
		t.Fatalf("jobs: got %s", specJSON(t, got.Jobs))
	}
	if got.Jobs[0].Retry.Backoff != 0 {
		t.Errorf("an explicit backoff of 0s must stay 0, got %v", got.Jobs[0].Retry.Backoff.D())
	}
	// JSON escapes YAML does not have: \/ and a surrogate pair.
	if run := got.Jobs[0].Steps[0].Run; run != "go build ./... && echo /done" {
		t.Errorf("run: got %q", run)
	}
	if emoji := got.Jobs[1].Env["EMOJI"]; emoji != "🚀" {
		t.Errorf("env EMOJI: got %q", emoji)
	}
}

// Each case is a small valid spec and the job it must produce; the spec
// around it is "name: p" and one job "j" unless the input says otherwise.
func TestParsePipelineSpec_Valid(t *testing.T) {
	base := func(mod func(j *structs.JobSpec)) *structs.JobSpec {
		j := &structs.JobSpec{
			Name:      "j",
			Priority:  structs.DefaultPriority,
			Resources: structs.Resources{CPU: structs.DefaultCPU, MemoryMB: structs.DefaultMemoryMB},
			Retry:     structs.RetryPolicy{Backoff: structs.Duration(time.Second)},
			Steps:     []structs.StepSpec{{Name: "step-1", Run: "make"}},
		}
		mod(j)
		return j
	}
	cases := []struct {
		name string
		job  string // the body of job j, indented under "  j:"
		want *structs.JobSpec
	}{
		{"defaults", "steps: [make]", base(func(j *structs.JobSpec) {})},
		{"bare string step", "steps:\n  - make", base(func(j *structs.JobSpec) {})},
		{"numeric run is kept as written", "steps: [0x1F]", base(func(j *structs.JobSpec) { j.Steps[0].Run = "0x1F" })},
		{"cpu millicores suffix", "resources: {cpu: 500m}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.CPU = 500 })},
		{"cpu cores", `resources: {cpu: "0.5"}` + "\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.CPU = 500 })},
		{"cpu cores as YAML float", "resources: {cpu: 1.25}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.CPU = 1250 })},
		{"cpu integer string", `resources: {cpu: "750"}` + "\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.CPU = 750 })},
		{"memory Mi", "resources: {memory: 512Mi}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.MemoryMB = 512 })},
		{"memory Gi", "resources: {memory: 1Gi}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.MemoryMB = 1024 })},
		{"memory MB means MiB", "resources: {memory: 256MB}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.MemoryMB = 256 })},
		{"memory fractional G", "resources: {memory: 1.5G}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Resources.MemoryMB = 1536 })},
		{"retry as a number", "retry: 3\nsteps: [make]", base(func(j *structs.JobSpec) { j.Retry.Attempts = 3 })},
		{"retry backoff zero", "retry: {attempts: 1, backoff: 0}\nsteps: [make]", base(func(j *structs.JobSpec) { j.Retry = structs.RetryPolicy{Attempts: 1} })},
		{"priority as a string", `priority: "80"` + "\nsteps: [make]", base(func(j *structs.JobSpec) { j.Priority = 80 })},
		{"null fields are left out", "image: ~\nresources:\nsteps: [make]", base(func(j *structs.JobSpec) {})},
		{"negative affinity", "affinities: [{attr: label.spot, value: \"true\", weight: -100}]\nsteps: [make]",
			base(func(j *structs.JobSpec) {
				j.Affinities = []structs.Affinity{{Attr: "label.spot", Op: "=", Value: "true", Weight: -100}}
			})},
		{"spread and anti-affinity", "spread: [{attr: label.zone, weight: 30}, {attr: label.rack}]\nanti_affinity: true\nsteps: [make]",
			base(func(j *structs.JobSpec) {
				j.Spread = []structs.Spread{{Attr: "label.zone", Weight: 30}, {Attr: "label.rack", Weight: structs.DefaultSpreadWeight}}
				j.AntiAffinity = true
			})},
		{"anti-affinity false", "anti_affinity: false\nsteps: [make]", base(func(j *structs.JobSpec) {})},
		{"is_not_set takes no value", "constraints: [{attr: label.gpu, op: is_not_set}]\nsteps: [make]",
			base(func(j *structs.JobSpec) { j.Constraints = []structs.Constraint{{Attr: "label.gpu", Op: "is_not_set"}} })},
		{"step env stringified", "steps: [{run: make, env: {N: 3, ON: true, F: 1.50}}]",
			base(func(j *structs.JobSpec) { j.Steps[0].Env = map[string]string{"N": "3", "ON": "true", "F": "1.50"} })},
		{"empty lists and maps are nil", "needs: []\nconstraints: []\nenv: {}\nsteps: [make]", base(func(j *structs.JobSpec) {})},
		{"literal block run", "steps:\n  - run: |\n      make\n      make test", base(func(j *structs.JobSpec) { j.Steps[0].Run = "make\nmake test\n" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := "name: p\njobs:\n  j:\n    " + strings.ReplaceAll(tc.job, "\n", "\n    ") + "\n"
			got := mustParse(t, []byte(in))
			want := &structs.PipelineSpec{Name: "p", Jobs: []*structs.JobSpec{tc.want}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("input:\n%s\ngot\n%s\nwant\n%s", in, specJSON(t, got), specJSON(t, want))
			}
		})
	}
}

func TestParsePipelineSpec_Documents(t *testing.T) {
	for name, in := range map[string]string{
		"byte order mark":  "\xef\xbb\xbfname: p\njobs: {j: {steps: [make]}}\n",
		"leading ---":      "---\nname: p\njobs: {j: {steps: [make]}}\n",
		"trailing ---":     "name: p\njobs: {j: {steps: [make]}}\n---\n",
		"end marker":       "name: p\njobs: {j: {steps: [make]}}\n...\n",
		"JSON with tabs":   "{\n\t\"name\": \"p\",\n\t\"jobs\": {\"j\": {\"steps\": [\"make\"]}}\n}",
		"flow YAML":        "{name: p, jobs: {j: {steps: [make]}}}",
		"x- extension key": "x-anything: [1, {a: b}]\nname: p\njobs: {j: {steps: [make]}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			got := mustParse(t, []byte(in))
			if got.Name != "p" || len(got.Jobs) != 1 || got.Jobs[0].Steps[0].Run != "make" {
				t.Errorf("got %s", specJSON(t, got))
			}
		})
	}
}

// specErrorLines returns the lines of an Errors, failing when err is not one.
func specErrorLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("expected Errors, got %T: %v", err, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(errs) {
		t.Fatalf("Error() has %d lines for %d errors", len(lines), len(errs))
	}
	return lines
}

// One case per kind of problem, each checking every error reported: its
// line, its field path and its message.
func TestParsePipelineSpec_Errors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{
			`the spec is empty: expected a YAML or JSON document with name and jobs`}},
		{"only comments", "# nothing\n\n", []string{
			`the spec is empty: expected a YAML or JSON document with name and jobs`}},
		{"not a mapping", "- build\n- test\n", []string{
			`line 1: expected a mapping with name and jobs at the top of the spec, got a list`}},
		{"scalar document", "hello\n", []string{
			`line 1: expected a mapping with name and jobs at the top of the spec, got "hello"`}},
		{"two documents", "name: a\njobs: {j: {steps: [x]}}\n---\nname: b\n", []string{
			`line 3: found a second YAML document (after ---): a spec holds exactly one pipeline`}},
		{"YAML syntax", "name: p\njobs:\n  j:\n    steps: [make\n", []string{
			`line 4: invalid YAML: did not find expected ',' or ']'`}},
		{"tab indentation", "name: p\njobs:\n\tj: {}\n", []string{
			`line 3: invalid YAML: found character that cannot start any token (YAML indents with spaces, not tabs)`}},
		{"bad indentation", "name: p\njobs:\n  j:\n    image: x\n    steps: [x]\n   bad: 1\n", []string{
			`line 6: invalid YAML: did not find expected key (check the indentation of this line against the lines above)`}},
		{"colon in a plain value", "name: p\njobs:\n  j:\n    steps:\n      - run: echo a: b\n", []string{
			`line 5: invalid YAML: mapping values are not allowed in this context (quote a value that contains ": ", e.g. run: "echo a: b")`}},
		{"invalid UTF-8", "name: p\njobs:\n  j:\n    steps: [\"\xff\"]\n", []string{
			`line 4: invalid YAML: invalid leading UTF-8 octet`}},
		{"control character", "name: p\njobs:\n  j:\n    steps: [\"a\x01\"]\n", []string{
			`line 4: invalid YAML: control characters are not allowed`}},
		{"unknown anchor", "name: p\njobs:\n  j:\n    steps: *nope\n", []string{
			`line 4: invalid YAML: unknown anchor 'nope' referenced`}},
		{"mapping merged into itself", "name: p\njobs:\n  j: &a {<<: *a, steps: [x]}\n", []string{
			`line 3, jobs.j: YAML merge keys (<<) nested more than 8 deep, or a mapping merged into itself`}},
		{"list aliased into itself", "name: p\njobs:\n  j:\n    steps: &s [*s]\n", []string{
			`line 4, jobs.j.steps[0]: expected a step (a command, or a mapping with run), got a list`}},
		{"anchor outside x-", "name: p\ncommon: &c {image: x}\njobs: {j: {<<: *c, steps: [x]}}\n", []string{
			`line 2, common: unknown field "common" (known fields: name, env, reschedule, jobs); top-level fields starting with x- are ignored, a place for YAML anchors`}},
		{"unknown top-level field", "name: p\njbos: {}\n", []string{
			`line 1, jobs: a pipeline needs at least one job, e.g. jobs: {build: {steps: ["make"]}}`,
			`line 2, jbos: unknown field "jbos", did you mean "jobs"?`}},
		{"unknown field without suggestion", "name: p\njobs: {j: {steps: [x], colour: red}}\n", []string{
			`line 2, jobs.j.colour: unknown field "colour" (known fields: image, driver, needs, priority, resources, constraints, affinities, spread, anti_affinity, retry, reschedule, timeout, env, steps)`}},
		{"field from another CI system", "name: p\njobs:\n  j:\n    commands: [make]\n", []string{
			`line 3, jobs.j.steps: a job needs at least one step, e.g. steps: ["make test"]`,
			`line 4, jobs.j.commands: unknown field "commands": ciplat calls this "steps", e.g. steps: ["make", "make test"]`}},
		{"name in a job of the mapping", "name: p\njobs:\n  j:\n    name: j\n    steps: [x]\n", []string{
			`line 4, jobs.j.name: unknown field "name": a job's name is its key under jobs`}},
		{"missing name and jobs", "env: {A: b}\n", []string{
			`line 1, name: is required: the pipeline's name, such as "hello"`,
			`line 1, jobs: a pipeline needs at least one job, e.g. jobs: {build: {steps: ["make"]}}`}},
		{"invalid pipeline name", "name: -bad name\njobs: {j: {steps: [x]}}\n", []string{
			`line 1, name: invalid pipeline name "-bad name": use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`}},
		{"name is a mapping", "name: {first: a}\njobs: {j: {steps: [x]}}\n", []string{
			`line 1, name: expected a string, got a mapping`}},
		{"jobs is a list of strings", "name: p\njobs: [build]\n", []string{
			`line 2, jobs[0]: expected a job (a mapping with name and steps), got "build"`}},
		{"jobs is a string", "name: p\njobs: build\n", []string{
			`line 2, jobs: expected a mapping of job names to jobs, got "build"`}},
		{"invalid job name", "name: p\njobs:\n  bad.job: {steps: [x]}\n", []string{
			`line 3, jobs["bad.job"]: invalid job name "bad.job": use up to 63 letters, digits, '_' or '-'`}},
		{"duplicate job", "name: p\njobs:\n  j: {steps: [x]}\n  j: {steps: [y]}\n", []string{
			`line 4, jobs.j: duplicate job "j" (first at line 3)`}},
		{"duplicate field", "name: p\njobs:\n  j:\n    image: a\n    image: b\n    steps: [x]\n", []string{
			`line 5, jobs.j.image: duplicate field "image" (first at line 4)`}},
		{"job is a string", "name: p\njobs:\n  j: make\n", []string{
			`line 3, jobs.j: expected a job (a mapping with steps), got "make"`}},
		{"env name", "name: p\nenv:\n  MY-VAR: x\njobs: {j: {steps: [x]}}\n", []string{
			`line 3, env.MY-VAR: invalid variable name "MY-VAR": use letters, digits and '_', not starting with a digit`}},
		{"env value is a list", "name: p\njobs:\n  j:\n    env: {PATHS: [a, b]}\n    steps: [x]\n", []string{
			`line 4, jobs.j.env.PATHS: expected a string, got a list`}},
		{"env is a list", "name: p\nenv: [A=b]\njobs: {j: {steps: [x]}}\n", []string{
			`line 2, env: expected a mapping of variable names to values, got a list`}},
		{"priority out of range", "name: p\njobs:\n  j:\n    priority: 101\n    steps: [x]\n", []string{
			`line 4, jobs.j.priority: expected an integer from 1 to 100, got 101`}},
		{"priority not a number", "name: p\njobs:\n  j:\n    priority: high\n    steps: [x]\n", []string{
			`line 4, jobs.j.priority: expected an integer from 1 to 100, got "high"`}},
		{"cpu not a number", "name: p\njobs:\n  build:\n    resources:\n      cpu: abc\n    steps: [x]\n", []string{
			`line 5, jobs.build.resources.cpu: expected a positive integer (millicores), got "abc"; "500m" and "0.5" (cores) work too`}},
		{"cpu zero", "name: p\njobs:\n  j:\n    resources: {cpu: 0}\n    steps: [x]\n", []string{
			`line 4, jobs.j.resources.cpu: expected a positive integer (millicores), got 0`}},
		{"cpu finer than a millicore", "name: p\njobs:\n  j:\n    resources: {cpu: \"0.0005\"}\n    steps: [x]\n", []string{
			`line 4, jobs.j.resources.cpu: expected a positive integer (millicores), got "0.0005"; "500m" and "0.5" (cores) work too`}},
		{"memory unit", "name: p\njobs:\n  j:\n    resources: {memory: 2XB}\n    steps: [x]\n", []string{
			`line 4, jobs.j.resources.memory: expected a positive integer (MiB), got "2XB"; "512Mi", "1Gi" and "256MB" work too`}},
		{"memory negative", "name: p\njobs:\n  j:\n    resources: {memory: -1}\n    steps: [x]\n", []string{
			`line 4, jobs.j.resources.memory: expected a positive integer (MiB), got -1`}},
		{"resources unknown field", "name: p\njobs:\n  j:\n    resources: {cpus: 2}\n    steps: [x]\n", []string{
			`line 4, jobs.j.resources.cpus: unknown field "cpus", did you mean "cpu"?`}},
		{"constraint operator", "name: p\njobs:\n  j:\n    constraints:\n      - {attr: os, op: '==', value: linux}\n    steps: [x]\n", []string{
			`line 5, jobs.j.constraints[0].op: unknown operator "==": use one of = != < > <= >= regexp set_contains is_set is_not_set version; did you mean "="?`}},
		{"constraint without value", "name: p\njobs:\n  j:\n    constraints:\n      - {attr: os}\n    steps: [x]\n", []string{
			`line 5, jobs.j.constraints[0].value: is required with operator "="`}},
		{"constraint without attr", "name: p\njobs:\n  j:\n    constraints:\n      - {value: linux}\n    steps: [x]\n", []string{
			`line 5, jobs.j.constraints[0].attr: is required: the node attribute to match, such as "label.arch"`}},
		{"is_set with a value", "name: p\njobs:\n  j:\n    constraints:\n      - {attr: label.gpu, op: is_set, value: \"yes\"}\n    steps: [x]\n", []string{
			`line 5, jobs.j.constraints[0].value: operator "is_set" takes no value, got "yes"`}},
		{"bad regexp", "name: p\njobs:\n  j:\n    constraints:\n      - attr: label.zone\n        op: regexp\n        value: 'eu-[a'\n    steps: [x]\n", []string{
			"line 7, jobs.j.constraints[0].value: invalid regular expression \"eu-[a\": error parsing regexp: missing closing ]: `[a`"}},
		{"constraints not a list", "name: p\njobs:\n  j:\n    constraints: {attr: os, value: linux}\n    steps: [x]\n", []string{
			`line 4, jobs.j.constraints: expected a list of constraints {attr, op, value}, got a mapping`}},
		{"affinity weight zero", "name: p\njobs:\n  j:\n    affinities:\n      - {attr: a, value: b, weight: 0}\n    steps: [x]\n", []string{
			`line 5, jobs.j.affinities[0].weight: expected an integer from -100 to 100, not 0, got 0`}},
		{"affinity weight too big", "name: p\njobs:\n  j:\n    affinities:\n      - {attr: a, value: b, weight: 101}\n    steps: [x]\n", []string{
			`line 5, jobs.j.affinities[0].weight: expected an integer from -100 to 100, not 0, got 101`}},
		{"affinity without weight", "name: p\njobs:\n  j:\n    affinities:\n      - {attr: a, value: b}\n    steps: [x]\n", []string{
			`line 5, jobs.j.affinities[0].weight: is required: an integer from 1 to 100 to prefer matching nodes, or from -100 to -1 to avoid them`}},
		{"spread not a list", "name: p\njobs:\n  j:\n    spread: label.zone\n    steps: [x]\n", []string{
			`line 4, jobs.j.spread: expected a list of spreads {attr, weight}, got "label.zone"`}},
		{"spread without attr", "name: p\njobs:\n  j:\n    spread:\n      - {weight: 10}\n    steps: [x]\n", []string{
			`line 5, jobs.j.spread[0].attr: is required: the node attribute whose values to spread across, such as "label.zone"`}},
		{"spread weight zero", "name: p\njobs:\n  j:\n    spread:\n      - attr: label.zone\n        weight: 0\n    steps: [x]\n", []string{
			`line 6, jobs.j.spread[0].weight: expected an integer from 1 to 100, got 0`}},
		{"spread weight too big", "name: p\njobs:\n  j:\n    spread: [{attr: label.zone, weight: 101}]\n    steps: [x]\n", []string{
			`line 4, jobs.j.spread[0].weight: expected an integer from 1 to 100, got 101`}},
		{"spread weight not a number", "name: p\njobs:\n  j:\n    spread:\n      - {attr: label.zone, weight: lots}\n    steps: [x]\n", []string{
			`line 5, jobs.j.spread[0].weight: expected an integer from 1 to 100, got "lots"`}},
		{"spread twice", "name: p\njobs:\n  j:\n    spread:\n      - {attr: label.zone}\n      - {attr: label.zone}\n    steps: [x]\n", []string{
			`line 6, jobs.j.spread[1].attr: "label.zone" is spread twice`}},
		{"spread unknown field", "name: p\njobs:\n  j:\n    spread:\n      - {attr: label.zone, value: a}\n    steps: [x]\n", []string{
			`line 5, jobs.j.spread[0].value: unknown field "value" (known fields: attr, weight)`}},
		{"anti_affinity not a bool", "name: p\njobs:\n  j:\n    anti_affinity: sometimes\n    steps: [x]\n", []string{
			`line 4, jobs.j.anti_affinity: expected true or false, got "sometimes"`}},
		{"retry attempts", "name: p\njobs:\n  j:\n    retry: {attempts: 11}\n    steps: [x]\n", []string{
			`line 4, jobs.j.retry.attempts: expected an integer from 0 to 10, got 11`}},
		{"retry not a number", "name: p\njobs:\n  j:\n    retry: often\n    steps: [x]\n", []string{
			`line 4, jobs.j.retry: expected an integer from 0 to 10 (retries after the first failure), or a mapping {attempts, backoff}, got "often"`}},
		{"retry backoff negative", "name: p\njobs:\n  j:\n    retry: {attempts: 1, backoff: -1s}\n    steps: [x]\n", []string{
			`line 4, jobs.j.retry.backoff: expected a duration of 0 or more such as "2s", got "-1s"`}},
		{"timeout without unit", "name: p\njobs:\n  j:\n    timeout: 600\n    steps: [x]\n", []string{
			`line 4, jobs.j.timeout: expected a duration such as "30s", "10m" or "1h30m" (Go syntax: a number and a unit ns, us, ms, s, m, h), got "600"; add a unit, e.g. "600s"`}},
		{"timeout zero", "name: p\njobs:\n  j:\n    timeout: 0s\n    steps: [x]\n", []string{
			`line 4, jobs.j.timeout: expected a positive duration such as "10m", got "0s"`}},
		{"timeout is a mapping", "name: p\njobs:\n  j:\n    timeout: {minutes: 10}\n    steps: [x]\n", []string{
			`line 4, jobs.j.timeout: expected a duration such as "30s" or "10m", got a mapping`}},
		{"no steps", "name: p\njobs:\n  j:\n    image: busybox\n", []string{
			`line 3, jobs.j.steps: a job needs at least one step, e.g. steps: ["make test"]`}},
		{"null job", "name: p\njobs:\n  j:\n", []string{
			`line 3, jobs.j.steps: a job needs at least one step, e.g. steps: ["make test"]`}},
		{"steps is a string", "name: p\njobs:\n  j:\n    steps: make\n", []string{
			`line 4, jobs.j.steps: expected a list of steps, got "make"; write a list, e.g. steps: ["make test"]`}},
		{"empty step", "name: p\njobs:\n  j:\n    steps:\n      -\n      - make\n", []string{
			`line 5, jobs.j.steps[0]: empty step: write a command, or a mapping with run`}},
		{"step without run", "name: p\njobs:\n  j:\n    steps:\n      - name: build\n", []string{
			`line 5, jobs.j.steps[0].run: is required: the shell command to run`}},
		{"step with blank run", "name: p\njobs:\n  j:\n    steps:\n      - run: '  '\n", []string{
			`line 5, jobs.j.steps[0].run: is required: the shell command to run`}},
		{"step is a list", "name: p\njobs:\n  j:\n    steps:\n      - [make, test]\n", []string{
			`line 5, jobs.j.steps[0]: expected a step (a command, or a mapping with run), got a list`}},
		{"step run is a mapping", "name: p\njobs:\n  j:\n    steps:\n      - run: {sh: make}\n", []string{
			`line 5, jobs.j.steps[0].run: expected a string, got a mapping`}},
		{"duplicate step names", "name: p\njobs:\n  j:\n    steps:\n      - {name: build, run: a}\n      - {name: build, run: b}\n", []string{
			`line 6, jobs.j.steps[1].name: duplicate step name "build" (also the name of jobs.j.steps[0]; unnamed steps are called step-N after their position)`}},
		{"step name clashes with a default", "name: p\njobs:\n  j:\n    steps:\n      - {name: step-2, run: a}\n      - b\n", []string{
			`line 6, jobs.j.steps[1].name: duplicate step name "step-2" (also the name of jobs.j.steps[0]; unnamed steps are called step-N after their position)`}},
		{"empty step name", "name: p\njobs:\n  j:\n    steps:\n      - {name: '', run: a}\n", []string{
			`line 5, jobs.j.steps[0].name: must not be empty; leave it out to call the step step-1`}},
		{"step timeout", "name: p\njobs:\n  j:\n    steps:\n      - run: a\n        timeout: soon\n", []string{
			`line 6, jobs.j.steps[0].timeout: expected a duration such as "30s", "10m" or "1h30m" (Go syntax: a number and a unit ns, us, ms, s, m, h), got "soon"`}},
		{"GitHub action step", "name: p\njobs:\n  j:\n    steps:\n      - uses: actions/checkout@v4\n", []string{
			`line 5, jobs.j.steps[0].uses: unknown field "uses": ciplat steps run shell commands (run); actions are not supported`,
			`line 5, jobs.j.steps[0].run: is required: the shell command to run`}},
		{"unknown need", "name: p\njobs:\n  build: {steps: [x]}\n  test:\n    needs:\n      - biuld\n    steps: [x]\n", []string{
			`line 6, jobs.test.needs[0]: unknown job "biuld", did you mean "build"?`}},
		{"need of itself", "name: p\njobs:\n  j:\n    needs: j\n    steps: [x]\n", []string{
			`line 4, jobs.j.needs[0]: job "j" needs itself`}},
		{"need listed twice", "name: p\njobs:\n  a: {steps: [x]}\n  b: {needs: [a, a], steps: [x]}\n", []string{
			`line 4, jobs.b.needs[1]: "a" is listed twice`}},
		{"need is a mapping", "name: p\njobs:\n  a: {steps: [x]}\n  b: {needs: [{job: a}], steps: [x]}\n", []string{
			`line 4, jobs.b.needs[0]: expected a job name, got a mapping`}},
		{"cycle", "name: p\njobs:\n  build:\n    needs: test\n    steps: [x]\n  test:\n    needs: build\n    steps: [x]\n", []string{
			`line 3, jobs.build: dependency cycle: build → test → build (each job needs the next)`}},
		{"merge key of a string", "name: p\njobs:\n  j:\n    <<: busybox\n    steps: [x]\n", []string{
			`line 4, jobs.j: a merge key (<<) takes a mapping or a list of mappings, got "busybox"`}},
		{"non-scalar key", "name: p\njobs:\n  j:\n    ? [a, b]\n    : c\n    steps: [x]\n", []string{
			`line 4, jobs.j: expected a field name, got a list`}},
		{"JSON positions", "{\n  \"name\": \"p\",\n  \"jobs\": {\n    \"j\": {\n      \"resources\": {\"cpu\": true},\n      \"steps\": [\"x\"]\n    }\n  }\n}\n", []string{
			`line 5, jobs.j.resources.cpu: expected a positive integer (millicores), got "true"; "500m" and "0.5" (cores) work too`}},
		{"JSON duplicate key", `{"name": "p", "name": "q", "jobs": {"j": {"steps": ["x"]}}}`, []string{
			`line 1, name: duplicate field "name" (first at line 1)`}},
		{"job list without name", "name: p\njobs:\n  - steps: [x]\n  - {name: b, steps: [y]}\n  - {name: b, steps: [z]}\n", []string{
			`line 3, jobs[0]: a job needs a name`,
			`line 5, jobs[2]: duplicate job name "b": job names must be unique`}},
		{"alias bomb", "name: p\n" + specAliasBomb(), []string{
			`the spec expands to too many values through YAML aliases; write it out without so many nested aliases`}},
		{"merge bomb", "name: p\n" + specMergeBomb(), []string{
			`the spec expands to too many values through YAML aliases; write it out without so many nested aliases`}},
		{"every problem, sorted by line", "name: p\njobs:\n  b:\n    needs: [zzz]\n    steps: []\n  a:\n    priority: 0\n    imgae: x\n    steps: [x]\n", []string{
			`line 4, jobs.b.needs[0]: unknown job "zzz"`,
			`line 5, jobs.b.steps: a job needs at least one step, e.g. steps: ["make test"]`,
			`line 7, jobs.a.priority: expected an integer from 1 to 100, got 0`,
			`line 8, jobs.a.imgae: unknown field "imgae", did you mean "image"?`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ParsePipelineSpec([]byte(tc.in))
			if spec != nil {
				t.Errorf("expected no spec with an error, got %s", specJSON(t, spec))
			}
			got := specErrorLines(t, err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("input:\n%s\ngot:\n  %s\nwant:\n  %s", tc.in, strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// specAliasBomb is a "billion laughs" shaped like a spec: n jobs alias a job
// of n steps that each alias an env of n variables, n³ values in all.
func specAliasBomb() string {
	const n = 90 // within the default limits of env entries and steps: the budget is what stops it
	var b strings.Builder
	b.WriteString("x-env: &env {")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "V%d: x, ", i)
	}
	b.WriteString("}\nx-step: &step {run: x, env: *env}\nx-job: &job {steps: [")
	b.WriteString(strings.Repeat("*step, ", n))
	b.WriteString("]}\njobs:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  j%d: *job\n", i)
	}
	return b.String()
}

// specMergeBomb nests merge keys 7 deep, each merging 10 mappings: 10^7
// merges for a job that looks like it has three fields.
func specMergeBomb() string {
	var b strings.Builder
	b.WriteString("x-m0: &m0 {image: x}\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "x-m%d: &m%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*m%d, ", i-1), 10), ", "))
	}
	b.WriteString("jobs:\n  j: {<<: *m7, steps: [x]}\n")
	return b.String()
}

// The broken_*.yml files of testdata say in their "# want:" lines which
// errors they must produce; they also seed the fuzzer.
func TestParsePipelineSpec_BrokenTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "broken_*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/broken_*.yml files (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data := readTestdata(t, filepath.Base(file))
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, w)
				}
			}
			_, err := ParsePipelineSpec(data)
			got := specErrorLines(t, err)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}
