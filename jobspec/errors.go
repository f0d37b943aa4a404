package jobspec

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a submitted pipeline spec, with where it is:
// the 1-based line and column in the submitted text (0 when the problem
// concerns the whole document, or the spec was built in Go and has no text)
// and the dotted path of the field ("jobs.build.resources.cpu",
// "jobs.build.steps[0].run").
type Error struct {
	Line, Column int
	Field        string
	Msg          string
}

// Error formats the problem as a user reads it:
// `line 12, jobs.build.resources.cpu: expected a positive integer (millicores), got "abc"`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
	}
	if e.Field != "" {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a spec, sorted by line (whole-document
// problems first). Parsing never stops at the first problem, so a user fixes
// them all in one pass.
type Errors []*Error

// Error joins the problems with "\n", first line first.
func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, se := range e {
		lines[i] = se.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *Error in the list.
func (e Errors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, se := range e {
		errs[i] = se
	}
	return errs
}

// sort orders the problems by line, then column; problems on the same spot
// keep the order they were found in.
func (e Errors) sort() {
	sort.SliceStable(e, func(i, j int) bool {
		if e[i].Line != e[j].Line {
			return e[i].Line < e[j].Line
		}
		return e[i].Column < e[j].Column
	})
}
