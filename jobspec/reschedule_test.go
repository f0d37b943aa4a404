package jobspec

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

func TestParsePipelineSpec_Reschedule(t *testing.T) {
	pol := func(a int, d, m time.Duration) *structs.ReschedulePolicy {
		return &structs.ReschedulePolicy{Attempts: a, Delay: structs.Duration(d), MaxDelay: structs.Duration(m)}
	}
	cases := []struct {
		name string
		in   string
		want map[string]*structs.ReschedulePolicy // job name → its policy (nil: the defaults, unset)
	}{
		{"none: unset, the defaults apply", "name: p\njobs:\n  a: {steps: [x]}\n",
			map[string]*structs.ReschedulePolicy{"a": nil}},
		{"job block, fields left out take the defaults", "name: p\njobs:\n  a:\n    reschedule: { attempts: 5, delay: 2s }\n    steps: [x]\n",
			map[string]*structs.ReschedulePolicy{"a": pol(5, 2*time.Second, time.Minute)}},
		{"bare number is attempts", "name: p\njobs:\n  a: {reschedule: 0, steps: [x]}\n",
			map[string]*structs.ReschedulePolicy{"a": pol(0, 5*time.Second, time.Minute)}},
		{"pipeline default, job overrides field by field",
			"name: p\njobs:\n  a: {steps: [x]}\n  b:\n    reschedule: { delay: 1s }\n    steps: [x]\nreschedule: { attempts: 7, max_delay: 30s }\n",
			map[string]*structs.ReschedulePolicy{"a": pol(7, 5*time.Second, 30*time.Second), "b": pol(7, time.Second, 30*time.Second)}},
		{"at the limits", "name: p\njobs:\n  a:\n    reschedule: { attempts: 10, delay: 24h, max_delay: 24h }\n    steps: [x]\n",
			map[string]*structs.ReschedulePolicy{"a": pol(10, 24*time.Hour, 24*time.Hour)}},
		{"JSON", `{"name": "p", "reschedule": {"attempts": 1}, "jobs": {"a": {"steps": ["x"], "reschedule": {"max_delay": "2m"}}}}`,
			map[string]*structs.ReschedulePolicy{"a": pol(1, 5*time.Second, 2*time.Minute)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ParsePipelineSpec([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				if got := spec.Job(name).Reschedule; !reflect.DeepEqual(got, want) {
					t.Errorf("job %s: reschedule %+v, want %+v", name, got, want)
				}
			}
		})
	}
	// A job body (POST /v1/jobs) takes the block as a job field.
	spec, err := ParseJobSpec([]byte("name: j\nreschedule: {attempts: 2}\nsteps: [x]\n"))
	if err != nil || !reflect.DeepEqual(spec.Jobs[0].Reschedule, pol(2, 5*time.Second, time.Minute)) {
		t.Fatalf("job body: %v %+v", err, spec)
	}
}

func TestParsePipelineSpec_RescheduleErrors(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"attempts too many", "name: p\njobs:\n  a:\n    reschedule: { attempts: 11 }\n    steps: [x]\n",
			[]string{`line 4, jobs.a.reschedule.attempts: expected an integer from 0 to 10, got 11`}},
		{"attempts negative, at the top", "name: p\nreschedule: -1\njobs:\n  a: {steps: [x]}\n",
			[]string{`line 2, reschedule.attempts: expected an integer from 0 to 10, got -1`}},
		{"delay not a duration", "name: p\njobs:\n  a:\n    reschedule: { delay: 5 }\n    steps: [x]\n",
			[]string{`line 4, jobs.a.reschedule.delay: expected a duration such as "30s", "10m" or "1h30m" (Go syntax: a number and a unit ns, us, ms, s, m, h), got "5"; add a unit, e.g. "5s"`}},
		{"max_delay below delay", "name: p\njobs:\n  a:\n    reschedule:\n      delay: 2m\n      max_delay: 1m\n    steps: [x]\n",
			[]string{`line 6, jobs.a.reschedule.max_delay: expected at least delay (2m0s), got 1m0s`}},
		{"delay too long", "name: p\njobs:\n  a:\n    reschedule: { delay: 25h, max_delay: 25h }\n    steps: [x]\n",
			[]string{`line 4, jobs.a.reschedule.delay: expected a duration from 0 to 24h0m0s, got 25h0m0s`,
				`line 4, jobs.a.reschedule.max_delay: expected a duration from 0 to 24h0m0s, got 25h0m0s`}},
		{"unknown field", "name: p\njobs:\n  a:\n    reschedule: { attempt: 2 }\n    steps: [x]\n",
			[]string{`line 4, jobs.a.reschedule.attempt: unknown field "attempt", did you mean "attempts"?`}},
		{"a list", "name: p\njobs:\n  a:\n    reschedule: [1]\n    steps: [x]\n",
			[]string{`line 4, jobs.a.reschedule: expected a mapping {attempts, delay, max_delay} or a number of attempts, got a list`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ParsePipelineSpec([]byte(tc.in))
			if spec != nil {
				t.Fatalf("want an error, got a spec")
			}
			if got := specErrorLines(t, err); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
	// Validate (specs built in Go or decoded from JSON) checks the block too.
	s := &structs.PipelineSpec{Name: "p", Jobs: []*structs.JobSpec{{Name: "a", Priority: 50, Resources: structs.Resources{CPU: 1, MemoryMB: 1},
		Steps: []structs.StepSpec{{Name: "s", Run: "x"}}, Reschedule: &structs.ReschedulePolicy{Attempts: 99}}}}
	if err := Validate(s); err == nil || !strings.Contains(err.Error(), "jobs.a.reschedule.attempts") {
		t.Fatalf("Validate = %v, want the attempts named", err)
	}
}
