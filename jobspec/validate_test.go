package jobspec

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	spec := designExample()
	if err := Validate(spec); err != nil {
		t.Fatalf("design example: %v", err)
	}
	spec.Jobs[0].Resources.CPU = 0
	spec.Jobs[1].Needs = []string{"test"}
	spec.Jobs = append(spec.Jobs, nil)
	got := specErrorLines(t, Validate(spec))
	want := []string{
		`jobs[2]: the job is missing (nil)`,
		`jobs.build.resources.cpu: expected a positive integer (millicores), got 0`,
		`jobs.test.needs[0]: job "test" needs itself`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestSpecSuggest(t *testing.T) {
	cases := []struct{ word, want string }{
		{"imgae", "image"}, // a swap counts as one edit
		{"stpes", "steps"}, //
		{"prioirty", "priority"},
		{"x", ""},      // too short to guess
		{"colour", ""}, // too far from everything
		{"resource", "resources"},
	}
	for _, tc := range cases {
		if got := specSuggest(tc.word, specJobFields); got != tc.want {
			t.Errorf("specSuggest(%q): got %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestSpecParentPath(t *testing.T) {
	cases := map[string]string{
		"jobs.build.steps[0].run": "jobs.build.steps[0]",
		"jobs.build.steps[0]":     "jobs.build.steps",
		`env["A.B[c"]`:            "env",
		`jobs["a\"b"].image`:      `jobs["a\"b"]`,
		"name":                    "",
	}
	for in, want := range cases {
		if got := specParentPath(in); got != want {
			t.Errorf("specParentPath(%q): got %q, want %q", in, got, want)
		}
	}
}
