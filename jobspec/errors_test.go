package jobspec

import (
	"errors"
	"testing"
)

func TestError_Error(t *testing.T) {
	cases := []struct {
		err  Error
		want string
	}{
		{Error{Line: 12, Column: 7, Field: "jobs.build.resources.cpu", Msg: `expected a positive integer (millicores), got "abc"`},
			`line 12, jobs.build.resources.cpu: expected a positive integer (millicores), got "abc"`},
		{Error{Line: 3, Msg: "invalid YAML: x"}, "line 3: invalid YAML: x"},
		{Error{Field: "name", Msg: "is required"}, "name: is required"},
		{Error{Msg: "the spec is empty"}, "the spec is empty"},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	var one *Error
	if err := error(Errors{{Line: 1, Msg: "a"}}); !errors.As(err, &one) || one.Msg != "a" {
		t.Errorf("errors.As(Errors, *Error) did not find the error")
	}
}
