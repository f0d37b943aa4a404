package jobspec

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestParseJobSpec(t *testing.T) {
	in := `
name: build
env: { GOFLAGS: -mod=mod }
image: golang:1.26
resources: { cpu: 2, memory: 1Gi }
steps:
  - go build ./...
`
	got, err := ParseJobSpec([]byte(in))
	if err != nil {
		t.Fatalf("ParseJobSpec: %v", err)
	}
	want := &structs.PipelineSpec{
		Name: "build",
		Env:  map[string]string{"GOFLAGS": "-mod=mod"},
		Jobs: []*structs.JobSpec{{
			Name:      "build",
			Image:     "golang:1.26",
			Priority:  structs.DefaultPriority,
			Resources: structs.Resources{CPU: 2, MemoryMB: 1024},
			Retry:     structs.RetryPolicy{Backoff: structs.Duration(time.Second)},
			Steps:     []structs.StepSpec{{Name: "step-1", Run: "go build ./..."}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", specJSON(t, got), specJSON(t, want))
	}

	// A JobSpec marshalled to JSON, with the pipeline's env as its own, is a
	// body that parses back to the same spec.
	j := *got.Jobs[0]
	j.Env = got.Env
	b, _ := json.Marshal(j)
	again, err := ParseJobSpec(b)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("round trip: err %v, got %s", err, specJSON(t, again))
	}
}

func TestParseJobSpec_Testdata(t *testing.T) {
	got, err := ParseJobSpec(readTestdata(t, "job_body.yml"))
	if err != nil {
		t.Fatalf("ParseJobSpec: %v", err)
	}
	want := &structs.PipelineSpec{
		Name: "nightly-backup",
		Env:  map[string]string{"TARGET": "s3://backups"},
		Jobs: []*structs.JobSpec{{
			Name:      "nightly-backup",
			Image:     "alpine:3",
			Driver:    "docker",
			Priority:  20,
			Resources: structs.Resources{CPU: 250, MemoryMB: 64},
			Retry:     structs.RetryPolicy{Attempts: 3, Backoff: structs.Duration(30 * time.Second)},
			Timeout:   structs.Duration(2 * time.Hour),
			Steps: []structs.StepSpec{
				{Name: "dump", Run: "pg_dump > /tmp/db.sql"},
				{Name: "step-2", Run: `aws s3 cp /tmp/db.sql "$TARGET"`},
			},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", specJSON(t, got), specJSON(t, want))
	}
}

func TestParseJobSpec_Errors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"missing name", "steps: [make]\n", []string{
			`line 1, name: is required: the job's name, such as "build"`}},
		{"invalid name", "name: .hidden\nsteps: [make]\n", []string{
			`line 1, name: invalid job name ".hidden": use up to 63 letters, digits, '_' or '-', starting with a letter or digit`}},
		{"paths relative to the body", "name: build\nresources:\n  cpu: lots\nsteps:\n  - run: ''\n", []string{
			`line 3, resources.cpu: expected a positive integer (millicores), got "lots"; "500m" and "0.5" (cores) work too`,
			`line 5, steps[0].run: is required: the shell command to run`}},
		{"needs", "name: deploy\nneeds: [build]\nsteps: [make]\n", []string{
			`line 2, needs[0]: unknown job "build": a job submitted alone cannot need other jobs; submit a pipeline instead`}},
		{"unknown field", "name: build\nstep: [make]\n", []string{
			`line 1, steps: a job needs at least one step, e.g. steps: ["make test"]`,
			`line 2, step: unknown field "step", did you mean "steps"?`}},
		{"not a mapping", "[make]", []string{
			`line 1: expected a mapping with name and steps, got a list`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ParseJobSpec([]byte(tc.in))
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
