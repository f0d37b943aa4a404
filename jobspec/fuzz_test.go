package jobspec

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/ciplat/ciplat/fsm/structs"
)

// FuzzParsePipelineSpec feeds the parsers arbitrary bytes, seeded with the
// specs of testdata/ (valid and broken). Whatever the input, they must not
// panic and must either
//   - return a spec that validates, and that marshals to JSON which parses
//     back to the very same spec, or
//   - return a non-empty Errors whose every entry has a message and a
//     line (line 0 only for a problem of the whole document), sorted by line.
//
// ParseJobSpec is held to the same promises on the same input.
func FuzzParsePipelineSpec(f *testing.F) {
	for _, pattern := range []string{"*.yml", "*.json"} {
		files, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("name: j\nsteps: [make]\nenv: {A: 1}\n")) // a job body
	f.Add([]byte(""))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("name: p\njobs: {j: {image: !!binary eA==, driver: dokcer, steps: [!foo x]}}\n"))     // tags, a driver typo
	f.Add([]byte(specRunBomb(60000, 100, 30)))                                                         // issue 12: 63 KB expanding to 180 MB
	f.Add([]byte("name: p\nenv: {A: \"\\0\"}\njobs: {j: {steps: [{name: \"a\\u202Eb\", run: x}]}}\n")) // NUL, bidi

	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParsePipelineSpec(data)
		checkSpecResult(t, spec, err)
		if err == nil {
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			again, err := ParsePipelineSpec(b)
			if err != nil {
				t.Fatalf("the JSON of a parsed spec does not parse:\n%s\n%v", b, err)
			}
			if !reflect.DeepEqual(again, spec) {
				t.Fatalf("round trip through JSON changed the spec:\nbefore %s\nafter  %s", b, specMustJSON(again))
			}
		}

		jspec, err := ParseJobSpec(data)
		checkSpecResult(t, jspec, err)
		if err == nil {
			if len(jspec.Jobs) != 1 || jspec.Jobs[0].Name != jspec.Name {
				t.Fatalf("ParseJobSpec: want one job named after the pipeline, got %s", specMustJSON(jspec))
			}
			body := *jspec.Jobs[0]
			body.Env = jspec.Env
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			again, err := ParseJobSpec(b)
			if err != nil {
				t.Fatalf("the JSON of a parsed job does not parse:\n%s\n%v", b, err)
			}
			if !reflect.DeepEqual(again, jspec) {
				t.Fatalf("round trip through JSON changed the job:\nbefore %s\nafter  %s", b, specMustJSON(again))
			}
		}
	})
}

func checkSpecResult(t *testing.T, spec *structs.PipelineSpec, err error) {
	t.Helper()
	if err == nil {
		if spec == nil {
			t.Fatal("no spec and no error")
		}
		if verr := Validate(spec); verr != nil {
			t.Fatalf("a parsed spec does not validate:\n%v\n%s", verr, specMustJSON(spec))
		}
		return
	}
	if spec != nil {
		t.Fatalf("a spec returned with an error: %v", err)
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, not Errors: %v", err, err)
	}
	if len(errs) == 0 {
		t.Fatal("empty Errors")
	}
	for _, e := range errs {
		if e == nil || e.Msg == "" {
			t.Fatalf("an error without a message in:\n%v", err)
		}
		if e.Line < 0 || (e.Line == 0 && e.Field != "") {
			t.Fatalf("error %q has line %d for field %q", e.Msg, e.Line, e.Field)
		}
	}
	if !sort.SliceIsSorted(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line }) {
		t.Fatalf("errors not sorted by line:\n%v", err)
	}
}

func specMustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
