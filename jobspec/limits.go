package jobspec

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ciplat/ciplat/fsm/structs"
)

// Limits bounds what one submitted pipeline spec may hold, so that no
// single request can fill the state, the broker or a server's memory
// (issue 12: one 249 KB request made 20,000 jobs). It is the one limits
// table of the spec: the parser, the validator, the HTTP body cap of the
// submit routes and the agent's -limit-* flags all read it, and
// LimitTable lists every field with its flag and default. A zero field
// means its default (DefaultLimits).
type Limits struct {
	// SpecBytes is the largest spec body, in bytes (HTTP 413 beyond).
	SpecBytes int `json:"spec_bytes,omitempty"`
	// JobsPerPipeline is the most jobs one pipeline may have.
	JobsPerPipeline int `json:"jobs_per_pipeline,omitempty"`
	// StepsPerJob is the most steps one job may have.
	StepsPerJob int `json:"steps_per_job,omitempty"`
	// NeedsPerJob is the most entries of one job's needs.
	NeedsPerJob int `json:"needs_per_job,omitempty"`
	// MatchesPerJob is the most entries of each of a job's constraints,
	// affinities and spread lists.
	MatchesPerJob int `json:"matches_per_job,omitempty"`
	// NameBytes is the longest pipeline, job or step name and env variable
	// name, in bytes. Pipeline and job names also keep their own format
	// (at most 63 letters, digits, '.', '_' or '-').
	NameBytes int `json:"name_bytes,omitempty"`
	// EnvEntries is the most variables in one env mapping (the pipeline's,
	// a job's or a step's).
	EnvEntries int `json:"env_entries,omitempty"`
	// EnvValueBytes is the longest env value, in bytes.
	EnvValueBytes int `json:"env_value_bytes,omitempty"`
	// RunBytes is the longest step command (run), in bytes.
	RunBytes int `json:"run_bytes,omitempty"`
	// FieldBytes is the longest of every other string: image, driver, and
	// the attr and value of constraints, affinities and spreads.
	FieldBytes int `json:"field_bytes,omitempty"`
}

// Limit is one row of LimitTable: a field of Limits with the
// agent flag that sets it and its default.
type Limit struct {
	// Flag is the agent flag, without the dash ("limit-jobs-per-pipeline").
	Flag string
	// Default is the value a zero field takes.
	Default int
	// Doc says what the limit bounds, for --help and docs/pipeline-spec.md.
	Doc string
	// Field returns the field of l that this row describes.
	Field func(l *Limits) *int
}

// LimitTable is every limit of a spec, in the order the documentation
// gives them. A new limit is one field of Limits plus one row here: the
// agent registers a flag per row and a test holds the docs to the table.
var LimitTable = []Limit{
	{"limit-spec-bytes", 1 << 20, "largest pipeline spec body in bytes (POST /v1/pipelines, /v1/jobs, /v1/schedule; 413 beyond)", func(l *Limits) *int { return &l.SpecBytes }},
	{"limit-jobs-per-pipeline", 500, "most jobs in one pipeline", func(l *Limits) *int { return &l.JobsPerPipeline }},
	{"limit-steps-per-job", 100, "most steps in one job", func(l *Limits) *int { return &l.StepsPerJob }},
	{"limit-needs-per-job", 100, "most entries in one job's needs", func(l *Limits) *int { return &l.NeedsPerJob }},
	{"limit-matches-per-job", 50, "most entries in each of a job's constraints, affinities and spread", func(l *Limits) *int { return &l.MatchesPerJob }},
	{"limit-name-bytes", 128, "longest pipeline, job or step name and env variable name, in bytes", func(l *Limits) *int { return &l.NameBytes }},
	{"limit-env-entries", 100, "most variables in one env mapping (pipeline, job or step)", func(l *Limits) *int { return &l.EnvEntries }},
	{"limit-env-value-bytes", 32 << 10, "longest env value in bytes", func(l *Limits) *int { return &l.EnvValueBytes }},
	{"limit-run-bytes", 64 << 10, "longest step command (run) in bytes", func(l *Limits) *int { return &l.RunBytes }},
	{"limit-field-bytes", 1024, "longest image, driver, and attr or value of a constraint, affinity or spread, in bytes", func(l *Limits) *int { return &l.FieldBytes }},
}

// specExpandFactor is how many times its body size a spec's values may add
// up to once YAML aliases are expanded (Limits.ExpandedBytes). A spec
// without aliases has at most its own size in values, and the parser reads
// a value at most a few times, so an honest spec of -limit-spec-bytes
// always fits; a spec that reuses a large anchored value thousands of times
// does not (issue 12: 63 KB expanding to 180 MB).
const specExpandFactor = 4

// ExpandedBytes is the most bytes the values of one spec, keys included,
// may add up to with every YAML alias expanded: specExpandFactor × SpecBytes.
func (l Limits) ExpandedBytes() int {
	return specExpandFactor * l.WithDefaults().SpecBytes
}

// RegisterEntryBytes is the largest encoded Raft entry a pipeline or job
// submit may propose: RegisterEntryFactor × SpecBytes. The spec is carried
// twice (the pipeline's and each job's copy) and JSON escapes can grow a
// string, so an honest spec fits; this is the edge's last guard should the
// parser's ExpandedBytes budget ever miss a path.
func (l Limits) RegisterEntryBytes() int {
	return RegisterEntryFactor * l.WithDefaults().SpecBytes
}

// RegisterEntryFactor is Limits.RegisterEntryBytes in units of SpecBytes.
const RegisterEntryFactor = 16

// DefaultLimits returns the limits with every field at its default.
func DefaultLimits() Limits {
	var l Limits
	return l.WithDefaults()
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	for _, row := range LimitTable {
		if f := row.Field(&l); *f == 0 {
			*f = row.Default
		}
	}
	return l
}

// Check reports a negative limit, naming its flag.
func (l Limits) Check() error {
	for _, row := range LimitTable {
		if v := *row.Field(&l); v < 0 {
			return fmt.Errorf("invalid -%s %d: want a positive number (0: the default, %d)", row.Flag, v, row.Default)
		}
	}
	return nil
}

// specLimitFlag returns the flag of the field f of l, for error messages.
func specLimitFlag(l *Limits, f *int) string {
	for _, row := range LimitTable {
		if row.Field(l) == f {
			return "-" + row.Flag
		}
	}
	return "a -limit-* flag"
}

// ParsePipeline is ParsePipelineSpec under the limits l.
func (l Limits) ParsePipeline(data []byte) (*structs.PipelineSpec, error) {
	return specParse(data, false, l.WithDefaults())
}

// ParseJob is ParseJobSpec under the limits l.
func (l Limits) ParseJob(data []byte) (*structs.PipelineSpec, error) {
	return specParse(data, true, l.WithDefaults())
}

// Validate is the package's Validate under the limits l.
func (l Limits) Validate(s *structs.PipelineSpec) error {
	errs := specValidate(s, false, l.WithDefaults())
	if len(errs) == 0 {
		return nil
	}
	errs.sort()
	return errs.capped()
}

// specOver is the message of a count beyond its limit:
// "20000 jobs, more than the 500 allowed (the server's -limit-jobs-per-pipeline)".
func specOver(l *Limits, f *int, n int, what, hint string) string {
	msg := fmt.Sprintf("%d %s, more than the %d allowed (the server's %s)", n, what, *f, specLimitFlag(l, f))
	if hint != "" {
		msg += "; " + hint
	}
	return msg
}

// specTooLong is the message of a string beyond its limit.
func specTooLong(l *Limits, f *int, s, what string) string {
	return fmt.Sprintf("%s is %d bytes, more than the %d allowed (the server's %s): %s", what, len(s), *f, specLimitFlag(l, f), structs.ShowValue(s))
}

// specBadRune returns a description of the first character of s a name may
// not hold: invalid UTF-8, NUL and other control characters, and the
// invisible bidirectional controls that can make a name read as another
// (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) or break a line
// (U+2028, U+2029); "" when s is clean.
func specBadRune(s string) string {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Sprintf("invalid UTF-8 at byte %d", i)
		case r == 0:
			return fmt.Sprintf("a NUL character at byte %d", i)
		case unicode.IsControl(r):
			return fmt.Sprintf("the control character %U at byte %d", r, i)
		case specBidi(r):
			return fmt.Sprintf("the invisible bidirectional control %U at byte %d", r, i)
		}
	}
	return ""
}

// specBidi reports the bidirectional and line-breaking format characters
// that no name may hold.
func specBidi(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// specNUL returns a description of a NUL byte in s (env values and commands
// cannot carry one to a process), or "".
func specNUL(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Sprintf("a NUL character at byte %d", i)
	}
	return ""
}

// specMaxErrors is the most problems one answer lists: a spec with
// thousands of broken jobs gets the first ones and a count of the rest,
// not a response larger than itself.
const specMaxErrors = 100

// capped returns e cut to specMaxErrors problems, the last one saying how
// many more there are. e must be sorted.
func (e Errors) capped() Errors {
	if len(e) <= specMaxErrors {
		return e
	}
	next := e[specMaxErrors-1]
	out := append(Errors(nil), e[:specMaxErrors-1]...)
	return append(out, &Error{Line: next.Line, Column: next.Column,
		Msg: fmt.Sprintf("… and %d more problems from here on; fix the ones above first", len(e)-(specMaxErrors-1))})
}
