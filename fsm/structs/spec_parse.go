package structs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// The pipeline dialect, as users write it (see DESIGN.md, "Pipeline YAML"):
//
//	name: hello                       # required
//	env: { GREETING: hello }          # optional, string → scalar
//	jobs:                             # required; a mapping of job name → job
//	  build:                          #   (or a list of jobs that carry a name,
//	    image: busybox:latest         #   as PipelineSpec marshals to JSON)
//	    steps: [ "make" ]
//
// The same structure is accepted as JSON. Top-level keys starting with "x-"
// are ignored, so YAML anchors can live there (as in docker compose files);
// YAML merge keys (<<: *anchor) are expanded.

// ParsePipelineSpec parses a pipeline written as YAML or as the same structure
// in JSON, fills the defaults (priority 50, cpu 100, memory 128, retry backoff
// 1s, step names step-1, step-2…) and validates it. On failure the error is a
// SpecErrors listing every problem found, each with its line and field path.
func ParsePipelineSpec(data []byte) (*PipelineSpec, error) {
	return specParse(data, false)
}

// ParseJobSpec parses a single job, the body of POST /v1/jobs: the job's
// fields plus `name` (required) and an optional `env`, which becomes the
// pipeline's env. It returns a one-job PipelineSpec named after the job.
// Field paths in its errors are relative to the body ("resources.cpu").
func ParseJobSpec(data []byte) (*PipelineSpec, error) {
	return specParse(data, true)
}

func specParse(data []byte, jobBody bool) (*PipelineSpec, error) {
	root, errs := specLoad(data)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	p := newSpecParser(root)
	var spec *PipelineSpec
	if jobBody {
		spec = p.jobBody(root)
	} else {
		spec = p.pipeline(root)
	}
	if p.over {
		return nil, SpecErrors{p.overErr}
	}
	for _, e := range specValidate(spec, jobBody) {
		if p.isBad(e.Field) {
			continue // already reported as a parse error
		}
		e.Line, e.Column = p.locate(e.Field)
		p.errs = append(p.errs, e)
	}
	if len(p.errs) == 0 {
		return spec, nil
	}
	if jobBody {
		prefix := specJobPath(0, spec.Name)
		for _, e := range p.errs {
			e.Field = specRelativePath(e.Field, prefix)
		}
	}
	p.errs.sort()
	return nil, p.errs
}

// specRelativePath turns "jobs.build.resources.cpu" into "resources.cpu" for
// errors of ParseJobSpec, whose body is the job itself.
func specRelativePath(field, prefix string) string {
	switch {
	case field == prefix:
		return "name"
	case strings.HasPrefix(field, prefix+"."):
		return field[len(prefix)+1:]
	case strings.HasPrefix(field, prefix+"["):
		return field[len(prefix):]
	}
	return field
}

// specLoad turns the submitted bytes into one document node. Valid JSON is
// read with encoding/json (exact JSON semantics: escapes such as \/ and
// surrogate pairs, which YAML lacks); anything else with yaml.v3.
func specLoad(data []byte) (*yaml.Node, SpecErrors) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	empty := SpecErrors{{Msg: "the spec is empty: expected a YAML or JSON document with name and jobs"}}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, empty
	}
	if json.Valid(data) {
		if n, err := specJSONNode(data); err == nil {
			return n, nil
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := specYAMLDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, empty
		}
		return nil, SpecErrors{specYAMLError(err, data)}
	}
	if specEmptyDoc(&doc) {
		return nil, empty
	}
	for {
		var next yaml.Node
		err := specYAMLDecode(dec, &next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, SpecErrors{specYAMLError(err, data)}
		}
		if specEmptyDoc(&next) {
			continue // a trailing "---"
		}
		return nil, SpecErrors{{Line: next.Line, Column: next.Column,
			Msg: "found a second YAML document (after ---): a spec holds exactly one pipeline"}}
	}
	return doc.Content[0], nil
}

// specYAMLDecode decodes one document, turning a panic inside yaml.v3 into an
// error: no input may crash the server.
func specYAMLDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot parse this document (%v)", r)
		}
	}()
	return dec.Decode(n)
}

func specEmptyDoc(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	c := doc.Content[0]
	return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" && c.Value == "" && c.Anchor == ""
}

var (
	specYAMLLine   = regexp.MustCompile(`^line (\d+): `)
	specYAMLAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)
)

// specYAMLParserErrors are the messages of yaml.v3's parser (not its
// scanner): it reports their line 0-based, and leaves out line 0.
var specYAMLParserErrors = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// specYAMLError turns "yaml: line 3: mapping values are not allowed in this
// context" into a SpecError at line 3, finding the line itself for the
// errors yaml.v3 gives none.
func specYAMLError(err error, data []byte) *SpecError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &SpecError{}
	if m := specYAMLLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if specContains(specYAMLParserErrors, msg) {
		// The line is where the enclosing block starts; find the line that
		// breaks it.
		from := e.Line + 1
		e.Line = specFirstFailingLine(data, msg, from)
		if len(data) > specRefineMax && from > 1 {
			msg += " in the block that starts at this line"
		}
	}
	if e.Line == 0 {
		e.Line, e.Column = specFindBadText(data, msg)
	}
	e.Msg = "invalid YAML: " + msg + specYAMLHint(data, e.Line, msg)
	return e
}

// specRefineMax is the largest document whose YAML errors are located by
// parsing its prefixes (a few dozen parses at most).
const specRefineMax = 256 << 10

// specFirstFailingLine returns the first line from which the document,
// cut after that line, fails to parse with msg: where a block mapping or
// list goes wrong, rather than where it starts. Cutting YAML at a line end
// leaves block structures valid, so failure grows with the cut and a binary
// search finds the line.
func specFirstFailingLine(data []byte, msg string, from int) int {
	var ends []int // ends[i] is the offset just after line i+1
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	if from < 1 || from > len(ends) || len(data) > specRefineMax {
		return from
	}
	fails := func(line int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[line-1]]))
		for {
			var n yaml.Node
			err := specYAMLDecode(dec, &n)
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) {
				return false
			}
			m := strings.TrimPrefix(err.Error(), "yaml: ")
			if l := specYAMLLine.FindString(m); l != "" {
				m = m[len(l):]
			}
			return m == msg
		}
	}
	lo, hi := from, len(ends) // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// specYAMLHint adds what usually causes a YAML error.
func specYAMLHint(data []byte, line int, msg string) string {
	switch {
	case strings.Contains(msg, "cannot start any token") && bytes.Contains(specLine(data, line), []byte("\t")):
		return " (YAML indents with spaces, not tabs)"
	case strings.HasPrefix(msg, "did not find expected key") || strings.HasPrefix(msg, "did not find expected '-' indicator"):
		if strings.HasSuffix(msg, "starts at this line") {
			return " (check the indentation of the lines below it)"
		}
		return " (check the indentation of this line against the lines above)"
	case strings.HasPrefix(msg, "mapping values are not allowed"):
		return " (quote a value that contains \": \", e.g. run: \"echo a: b\")"
	}
	return ""
}

// specLine returns line n (1-based) of data, or nil.
func specLine(data []byte, n int) []byte {
	for i := 1; n > 0 && len(data) > 0; i++ {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if i == n {
			return line
		}
		data = rest
	}
	return nil
}

// specFindBadText finds where the text yaml.v3 refused without saying where
// is: invalid UTF-8, a control character, an alias of an unknown anchor.
func specFindBadText(data []byte, msg string) (line, col int) {
	bad := -1
	switch {
	case strings.Contains(msg, "UTF-8"):
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				bad = i
				break
			}
			i += size
		}
	case strings.Contains(msg, "control characters"):
		for i, r := range string(data) {
			if !specYAMLPrintable(r) {
				bad = i
				break
			}
		}
	default:
		if m := specYAMLAnchor.FindStringSubmatch(msg); m != nil {
			bad = bytes.Index(data, []byte("*"+m[1]))
		}
	}
	if bad < 0 {
		return 0, 0
	}
	line, col = 1, 1
	for _, r := range string(data[:bad]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// specYAMLPrintable reports whether YAML allows r in a document.
func specYAMLPrintable(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return true
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
		return false
	case r >= 0xd800 && r <= 0xdfff, r == 0xfffe, r == 0xffff:
		return false
	}
	return true
}

// specParser walks a yaml.Node tree into a PipelineSpec, collecting every
// problem with its position, and remembers where each field was written so
// that problems found later, on the struct, can point at the right line.
type specParser struct {
	errs SpecErrors
	pos  map[string]specPos // field path → where its value (or key) was written
	bad  map[string]bool    // field paths that already have a parse error

	// budget bounds the nodes visited: YAML aliases can make a small document
	// expand exponentially ("billion laughs").
	budget  int
	over    bool
	overErr *SpecError
}

type specPos struct{ line, col int }

func newSpecParser(root *yaml.Node) *specParser {
	return &specParser{
		pos:    map[string]specPos{"": {root.Line, root.Column}},
		bad:    map[string]bool{},
		budget: 10*specCountNodes(root) + 10000,
	}
}

// specCountNodes counts the nodes written in the document, not following
// aliases.
func specCountNodes(root *yaml.Node) int {
	count := 0
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if n.Kind != yaml.AliasNode {
			stack = append(stack, n.Content...)
		}
	}
	return count
}

// resolve follows aliases and charges the visit to the budget; it returns nil
// once the budget is spent, which every walker treats as "nothing here".
func (p *specParser) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 1000 {
			return nil
		}
		n = n.Alias
	}
	if p.over {
		return nil
	}
	p.budget--
	if p.budget < 0 {
		p.over = true
		p.overErr = &SpecError{Msg: "the spec expands to too many values through YAML aliases; write it out without so many nested aliases"}
		return nil
	}
	return n
}

// fail records a problem with the value at path; problems the validator
// finds later at or under that path are not reported a second time.
func (p *specParser) fail(n *yaml.Node, path, format string, args ...any) {
	p.note(n, path, format, args...)
	p.bad[path] = true
}

// note records a problem without hiding later ones under the same path.
func (p *specParser) note(n *yaml.Node, path, format string, args ...any) {
	e := &SpecError{Field: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	} else {
		e.Line, e.Column = p.locate(path)
	}
	p.errs = append(p.errs, e)
}

func (p *specParser) at(path string, n *yaml.Node) {
	if n != nil {
		p.pos[path] = specPos{n.Line, n.Column}
	}
}

// locate returns where the field at path, or its nearest written ancestor, is.
func (p *specParser) locate(path string) (line, col int) {
	for {
		if pos, ok := p.pos[path]; ok {
			return pos.line, pos.col
		}
		if path == "" {
			return 0, 0
		}
		path = specParentPath(path)
	}
}

func (p *specParser) isBad(path string) bool {
	for {
		if p.bad[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = specParentPath(path)
	}
}

// specKV is one key and value of a mapping.
type specKV struct{ key, val *yaml.Node }

// fields returns the key/value pairs of the mapping n in order, with YAML
// merge keys (<<: *anchor) expanded in place, and reports keys that are not
// scalars or are written twice. noun names what the keys are ("field", "job").
func (p *specParser) fields(n *yaml.Node, path, noun string) []specKV {
	return p.flatten(n, path, noun, 0, true)
}

func (p *specParser) flatten(n *yaml.Node, path, noun string, depth int, report bool) []specKV {
	explicit := map[string]*yaml.Node{}
	keys := make([]*yaml.Node, len(n.Content)/2)
	for i := range keys {
		k := p.resolve(n.Content[2*i])
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			if report {
				p.note(k, path, "expected a %s name, got %s", noun, specGot(k))
			}
			continue
		}
		if specIsMerge(k) {
			keys[i] = k
			continue
		}
		if first, dup := explicit[k.Value]; dup {
			if report {
				p.note(k, specPath(path, k.Value), "duplicate %s %q (first at line %d)", noun, k.Value, first.Line)
			}
			continue
		}
		explicit[k.Value] = k
		keys[i] = k
	}
	var out []specKV
	merged := map[string]bool{}
	for i, k := range keys {
		if k == nil {
			continue
		}
		v := n.Content[2*i+1]
		if !specIsMerge(k) {
			out = append(out, specKV{k, v})
			continue
		}
		for _, kv := range p.mergeSources(v, path, noun, depth) {
			if explicit[kv.key.Value] != nil || merged[kv.key.Value] {
				continue // explicit keys win, then earlier merge sources
			}
			merged[kv.key.Value] = true
			out = append(out, kv)
		}
	}
	return out
}

// mergeSources returns the pairs a merge key brings in: those of a mapping,
// or of each mapping of a list.
func (p *specParser) mergeSources(v *yaml.Node, path, noun string, depth int) []specKV {
	v = p.resolve(v)
	if v == nil || specIsNull(v) {
		return nil
	}
	if depth >= 8 {
		p.note(v, path, "YAML merge keys (<<) nested more than 8 deep, or a mapping merged into itself")
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return p.flatten(v, path, noun, depth+1, false)
	case yaml.SequenceNode:
		var out []specKV
		for _, item := range v.Content {
			item = p.resolve(item)
			if item == nil {
				continue
			}
			if item.Kind != yaml.MappingNode {
				p.note(item, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", specGot(item))
				continue
			}
			out = append(out, p.flatten(item, path, noun, depth+1, false)...)
		}
		return out
	}
	p.note(v, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", specGot(v))
	return nil
}

func specIsMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

func specIsNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// specGot describes a node for "expected X, got Y" messages.
func specGot(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if specIsNull(n) {
			return "null"
		}
		v := n.Value
		if len(v) > 60 {
			v = v[:57] + "..."
		}
		return strconv.Quote(v)
	}
	return "an unexpected YAML node"
}

// unknownField reports a key the dialect does not have, suggesting the known
// key the user most likely meant.
func (p *specParser) unknownField(k *yaml.Node, path string, known []string) {
	field := specPath(path, k.Value)
	if msg, ok := specForeignKeys[k.Value]; ok && (msg.field == "" || specContains(known, msg.field)) {
		p.note(k, field, "unknown field %q: %s", k.Value, msg.text)
		return
	}
	if s := specSuggest(k.Value, known); s != "" {
		p.note(k, field, "unknown field %q, did you mean %q?", k.Value, s)
		return
	}
	extra := ""
	if path == "" && len(known) == len(specTopFields) {
		extra = "; top-level fields starting with x- are ignored, a place for YAML anchors"
	}
	p.note(k, field, "unknown field %q (known fields: %s)%s", k.Value, strings.Join(known, ", "), extra)
}

// specForeignKeys are keys users bring from GitHub Actions, Woodpecker,
// GitLab CI and Nomad, with what to write instead; each applies only where
// its ciplat field is known.
var specForeignKeys = map[string]struct{ field, text string }{
	"depends_on":      {"needs", `ciplat calls this "needs"`},
	"depends-on":      {"needs", `ciplat calls this "needs"`},
	"dependencies":    {"needs", `ciplat calls this "needs"`},
	"environment":     {"env", `ciplat calls this "env"`},
	"variables":       {"env", `ciplat calls this "env"`},
	"commands":        {"steps", `ciplat calls this "steps", e.g. steps: ["make", "make test"]`},
	"script":          {"steps", `ciplat calls this "steps", e.g. steps: ["make", "make test"]`},
	"command":         {"run", `ciplat calls this "run"`},
	"cmd":             {"run", `ciplat calls this "run"`},
	"container":       {"image", `ciplat calls this "image"`},
	"timeout-minutes": {"timeout", `ciplat calls this "timeout" and takes a duration such as "10m"`},
	"mem":             {"memory", `ciplat calls this "memory" (MiB)`},
	"memory_mb":       {"memory", `ciplat calls this "memory" (MiB)`},
	"retries":         {"retry", `ciplat calls this "retry", e.g. retry: {attempts: 2, backoff: 5s}`},
	"runs-on":         {"constraints", `choose nodes with constraints, e.g. constraints: [{attr: "label.arch", value: "amd64"}]`},
	"uses":            {"run", `ciplat steps run shell commands (run); actions are not supported`},
}

// Field lists, in the order the documentation gives them.
var (
	specTopFields        = []string{"name", "env", "jobs"}
	specJobFields        = []string{"image", "driver", "needs", "priority", "resources", "constraints", "affinities", "spread", "anti_affinity", "retry", "timeout", "env", "steps"}
	specJobBodyFields    = append([]string{"name"}, specJobFields...)
	specResourceFields   = []string{"cpu", "memory"}
	specConstraintFields = []string{"attr", "op", "value"}
	specAffinityFields   = []string{"attr", "op", "value", "weight"}
	specSpreadFields     = []string{"attr", "weight"}
	specRetryFields      = []string{"attempts", "backoff"}
	specStepFields       = []string{"name", "run", "env", "timeout"}
)

func (p *specParser) pipeline(root *yaml.Node) *PipelineSpec {
	spec := &PipelineSpec{}
	n := p.resolve(root)
	if n == nil {
		return spec
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "", "expected a mapping with name and jobs at the top of the spec, got %s", specGot(n))
		return spec
	}
	for _, kv := range p.fields(n, "", "field") {
		key := kv.key.Value
		if strings.HasPrefix(key, "x-") {
			continue // extension field, e.g. a home for YAML anchors
		}
		if !specContains(specTopFields, key) {
			p.unknownField(kv.key, "", specTopFields)
			continue
		}
		v := p.resolve(kv.val)
		if specIsNull(v) {
			continue
		}
		p.at(key, v)
		switch key {
		case "name":
			spec.Name, _ = p.str(v, key)
		case "env":
			spec.Env = p.env(v, key)
		case "jobs":
			spec.Jobs = p.jobs(v, key)
		}
	}
	return spec
}

// jobBody parses the body of POST /v1/jobs.
func (p *specParser) jobBody(root *yaml.Node) *PipelineSpec {
	spec := &PipelineSpec{}
	n := p.resolve(root)
	if n == nil {
		return spec
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "", "expected a mapping with name and steps, got %s", specGot(n))
		return spec
	}
	kvs := p.fields(n, "", "field")
	for _, kv := range kvs {
		if kv.key.Value == "name" {
			if v := p.resolve(kv.val); !specIsNull(v) {
				p.at("name", v)
				spec.Name, _ = p.str(v, "name")
			}
		}
	}
	path := specJobPath(0, spec.Name)
	p.at(path, n)
	j := specDefaultJob(spec.Name)
	spec.Jobs = []*JobSpec{j}
	p.job(kvs, j, path, specJobBody, spec)
	return spec
}

// jobs parses the jobs of a pipeline: a mapping of name → job (the dialect),
// or a list of jobs with a name each (PipelineSpec's JSON form).
func (p *specParser) jobs(n *yaml.Node, path string) []*JobSpec {
	var jobs []*JobSpec
	switch n.Kind {
	case yaml.MappingNode:
		for i, kv := range p.fields(n, path, "job") {
			name := kv.key.Value
			jp := specJobPath(i, name)
			p.at(jp, kv.key)
			j := specDefaultJob(name)
			jobs = append(jobs, j)
			body := p.resolve(kv.val)
			switch {
			case specIsNull(body):
				// no fields: the validator reports the missing steps
			case body.Kind != yaml.MappingNode:
				p.fail(body, jp, "expected a job (a mapping with steps), got %s", specGot(body))
			default:
				p.job(p.fields(body, jp, "field"), j, jp, specJobInMap, nil)
			}
		}
	case yaml.SequenceNode:
		// Every item becomes a job, even a broken one, so that job i here is
		// job i for the validator; paths follow specJobPaths.
		seen := map[string]bool{}
		for _, item := range n.Content {
			item = p.resolve(item)
			if item == nil {
				continue
			}
			i := len(jobs)
			ip := specIndex(path, i)
			p.at(ip, item)
			j := specDefaultJob("")
			jobs = append(jobs, j)
			if item.Kind != yaml.MappingNode {
				p.fail(item, ip, "expected a job (a mapping with name and steps), got %s", specGot(item))
				continue
			}
			kvs := p.fields(item, ip, "field")
			for _, kv := range kvs {
				if kv.key.Value == "name" {
					if v := p.resolve(kv.val); !specIsNull(v) {
						j.Name, _ = p.str(v, specPath(ip, "name"))
					}
				}
			}
			jp := ip
			if !seen[j.Name] {
				seen[j.Name] = true
				jp = specJobPath(i, j.Name)
				p.at(jp, item)
			}
			p.job(kvs, j, jp, specJobInList, nil)
		}
	default:
		p.fail(n, path, "expected a mapping of job names to jobs, got %s", specGot(n))
	}
	return jobs
}

// specJobPath is the field path of a job: jobs.build, or jobs[2] for a job
// without a usable name.
func specJobPath(i int, name string) string {
	if name == "" {
		return specIndex("jobs", i)
	}
	return specPath("jobs", name)
}

func specDefaultJob(name string) *JobSpec {
	return &JobSpec{
		Name:      name,
		Priority:  DefaultPriority,
		Resources: Resources{CPU: DefaultCPU, MemoryMB: DefaultMemoryMB},
		Retry:     RetryPolicy{Backoff: Duration(time.Second)},
	}
}

// Where a job's fields come from.
const (
	specJobInMap  = iota // jobs: {build: {...}}: the key is the name
	specJobInList        // jobs: [{name: build, ...}]: name read by the caller
	specJobBody          // POST /v1/jobs: name and env are the pipeline's
)

func (p *specParser) job(kvs []specKV, j *JobSpec, path string, mode int, spec *PipelineSpec) {
	known := specJobFields
	if mode != specJobInMap {
		known = specJobBodyFields
	}
	for _, kv := range kvs {
		key := kv.key.Value
		if mode == specJobBody && strings.HasPrefix(key, "x-") {
			continue
		}
		if !specContains(known, key) {
			if key == "name" {
				p.note(kv.key, specPath(path, key), "unknown field %q: a job's name is its key under jobs", key)
				continue
			}
			p.unknownField(kv.key, path, known)
			continue
		}
		if key == "name" {
			continue // read by the caller
		}
		fp := specPath(path, key)
		v := p.resolve(kv.val)
		if specIsNull(v) {
			continue
		}
		p.at(fp, v)
		switch key {
		case "image":
			j.Image, _ = p.str(v, fp)
		case "driver":
			j.Driver, _ = p.str(v, fp)
		case "needs":
			j.Needs = p.needs(v, fp)
		case "priority":
			if n, ok := p.int(v, fp, "an integer from 1 to 100"); ok {
				j.Priority = n
			}
		case "resources":
			p.resources(v, fp, &j.Resources)
		case "constraints":
			j.Constraints = p.constraints(v, fp)
		case "affinities":
			j.Affinities = p.affinities(v, fp)
		case "spread":
			j.Spread = p.spread(v, fp)
		case "anti_affinity":
			j.AntiAffinity, _ = p.bool(v, fp)
		case "retry":
			p.retry(v, fp, &j.Retry)
		case "timeout":
			j.Timeout, _ = p.duration(v, fp, true)
		case "env":
			if mode == specJobBody {
				p.at("env", v)
				spec.Env = p.env(v, "env")
			} else {
				j.Env = p.env(v, fp)
			}
		case "steps":
			j.Steps = p.steps(v, fp)
		}
	}
}

// object walks a mapping whose keys are a fixed set of fields, calling set
// for each field that is present and not null.
func (p *specParser) object(n *yaml.Node, path, what string, known []string, set func(key string, v *yaml.Node, fp string)) bool {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "expected %s, got %s", what, specGot(n))
		return false
	}
	for _, kv := range p.fields(n, path, "field") {
		key := kv.key.Value
		if !specContains(known, key) {
			p.unknownField(kv.key, path, known)
			continue
		}
		fp := specPath(path, key)
		v := p.resolve(kv.val)
		if specIsNull(v) {
			continue
		}
		p.at(fp, v)
		set(key, v, fp)
	}
	return true
}

func (p *specParser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, path, "expected a string, got %s", specGot(n))
		return "", false
	}
	return n.Value, true
}

// specInt reads an integer as written: decimal, or in YAML's other integer
// forms (0x1F, 0o17, 1_000) when YAML typed it as an integer.
func specInt(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	s := strings.TrimSpace(n.Value)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	if n.ShortTag() == "!!int" {
		if v, err := strconv.ParseInt(s, 0, 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// int reads an integer field; the range check is the validator's, but values
// beyond 32 bits are refused here so that no arithmetic on them overflows.
func (p *specParser) int(n *yaml.Node, path, want string) (int, bool) {
	v, ok := specInt(n)
	if !ok || v < math.MinInt32 || v > math.MaxInt32 {
		p.fail(n, path, "expected %s, got %s", want, specGot(n))
		return 0, false
	}
	return int(v), true
}

var specDurationNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// duration reads a Go duration ("30s", "10m", "1h30m"); positive asks for
// > 0 (timeouts), otherwise ≥ 0 (backoff).
func (p *specParser) duration(n *yaml.Node, path string, positive bool) (Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, path, "expected a duration such as \"30s\" or \"10m\", got %s", specGot(n))
		return 0, false
	}
	s := strings.TrimSpace(n.Value)
	d, err := time.ParseDuration(s)
	if err != nil {
		msg := fmt.Sprintf("expected a duration such as \"30s\", \"10m\" or \"1h30m\" (Go syntax: a number and a unit ns, us, ms, s, m, h), got %s", specGot(n))
		if specDurationNumber.MatchString(s) {
			msg += fmt.Sprintf("; add a unit, e.g. \"%ss\"", s)
		}
		p.fail(n, path, "%s", msg)
		return 0, false
	}
	if positive && d <= 0 {
		p.fail(n, path, "expected a positive duration such as \"10m\", got %s", specGot(n))
		return 0, false
	}
	if d < 0 {
		p.fail(n, path, "expected a duration of 0 or more such as \"2s\", got %s", specGot(n))
		return 0, false
	}
	return Duration(d), true
}

// env reads a mapping of variable names to scalars, kept as written
// (`PORT: 8080` is "8080", `DEBUG: yes` is "yes", an empty value is "").
func (p *specParser) env(n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "expected a mapping of variable names to values, got %s", specGot(n))
		return nil
	}
	m := map[string]string{}
	for _, kv := range p.fields(n, path, "variable") {
		key := kv.key.Value
		ep := specPath(path, key)
		p.at(ep, kv.key)
		v := p.resolve(kv.val)
		switch {
		case specIsNull(v):
			m[key] = ""
		case v.Kind == yaml.ScalarNode:
			m[key] = v.Value
		default:
			p.fail(v, ep, "expected a string, got %s", specGot(v))
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// needs reads a list of job names, or a single name.
func (p *specParser) needs(n *yaml.Node, path string) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		p.at(specIndex(path, 0), n)
		return []string{n.Value}
	case yaml.SequenceNode:
		var out []string
		for i, item := range n.Content {
			ip := specIndex(path, i)
			item = p.resolve(item)
			if item == nil {
				continue
			}
			p.at(ip, item)
			if item.Kind != yaml.ScalarNode || specIsNull(item) {
				p.fail(item, ip, "expected a job name, got %s", specGot(item))
				out = append(out, "") // keep the indexes of the entries after it
				continue
			}
			out = append(out, item.Value)
		}
		return out
	}
	p.fail(n, path, "expected a list of job names, got %s", specGot(n))
	return nil
}

func (p *specParser) resources(n *yaml.Node, path string, r *Resources) {
	p.object(n, path, "a mapping {cpu, memory}", specResourceFields, func(key string, v *yaml.Node, fp string) {
		switch key {
		case "cpu":
			if c, ok := specCPU(v); ok {
				r.CPU = c
			} else {
				p.fail(v, fp, "expected a positive integer (millicores), got %s; \"500m\" and \"0.5\" (cores) work too", specGot(v))
			}
		case "memory":
			if m, ok := specMemory(v); ok {
				r.MemoryMB = m
			} else {
				p.fail(v, fp, "expected a positive integer (MiB), got %s; \"512Mi\", \"1Gi\" and \"256MB\" work too", specGot(v))
			}
		}
	})
}

var (
	specDecimal  = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
	specQuantity = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+) ?([A-Za-z]*)$`)
)

// specCPU reads millicores: 250 (millicores), "250m", or cores "0.25".
// Zero and negative integers pass through for the validator to report.
func specCPU(n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	if v, ok := specInt(n); ok {
		return specClamp(v)
	}
	s := strings.TrimSpace(n.Value)
	if len(s) > 40 {
		return 0, false
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return 0, false
		}
		return specClamp(v)
	}
	if !specDecimal.MatchString(s) {
		return 0, false
	}
	return specScale(s, big.NewRat(1000, 1)) // cores
}

// specMemoryUnits are the memory units in MiB. As in Nomad and Docker, M and
// MB mean MiB.
var specMemoryUnits = map[string]*big.Rat{
	"": big.NewRat(1, 1), "m": big.NewRat(1, 1), "mi": big.NewRat(1, 1), "mb": big.NewRat(1, 1), "mib": big.NewRat(1, 1),
	"k": big.NewRat(1, 1024), "ki": big.NewRat(1, 1024), "kb": big.NewRat(1, 1024), "kib": big.NewRat(1, 1024),
	"g": big.NewRat(1024, 1), "gi": big.NewRat(1024, 1), "gb": big.NewRat(1024, 1), "gib": big.NewRat(1024, 1),
	"t": big.NewRat(1<<20, 1), "ti": big.NewRat(1<<20, 1), "tb": big.NewRat(1<<20, 1), "tib": big.NewRat(1<<20, 1),
}

// specMemory reads MiB: 512, "512Mi", "1Gi", "1.5G", "256MB".
func specMemory(n *yaml.Node) (int, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	if v, ok := specInt(n); ok {
		return specClamp(v)
	}
	s := strings.TrimSpace(n.Value)
	if len(s) > 40 {
		return 0, false
	}
	m := specQuantity.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	unit, ok := specMemoryUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, false
	}
	return specScale(m[1], unit)
}

// specScale returns decimal × unit when that is a whole number that fits.
func specScale(decimal string, unit *big.Rat) (int, bool) {
	r, ok := new(big.Rat).SetString(decimal)
	if !ok {
		return 0, false
	}
	r.Mul(r, unit)
	if !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return specClamp(r.Num().Int64())
}

func specClamp(v int64) (int, bool) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, false
	}
	return int(v), true
}

func (p *specParser) constraints(n *yaml.Node, path string) []Constraint {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "expected a list of constraints {attr, op, value}, got %s", specGot(n))
		return nil
	}
	var out []Constraint
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			continue
		}
		ip := specIndex(path, i)
		p.at(ip, item)
		c := Constraint{Op: "="}
		p.object(item, ip, "a constraint {attr, op, value}", specConstraintFields, func(key string, v *yaml.Node, fp string) {
			switch key {
			case "attr":
				c.Attr, _ = p.str(v, fp)
			case "op":
				c.Op, _ = p.str(v, fp)
			case "value":
				c.Value, _ = p.str(v, fp)
			}
		})
		out = append(out, c) // even when broken: keeps the indexes of the entries after it
	}
	return out
}

func (p *specParser) affinities(n *yaml.Node, path string) []Affinity {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "expected a list of affinities {attr, op, value, weight}, got %s", specGot(n))
		return nil
	}
	var out []Affinity
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			continue
		}
		ip := specIndex(path, i)
		p.at(ip, item)
		a := Affinity{Op: "="}
		weighed := false
		ok := p.object(item, ip, "an affinity {attr, op, value, weight}", specAffinityFields, func(key string, v *yaml.Node, fp string) {
			switch key {
			case "attr":
				a.Attr, _ = p.str(v, fp)
			case "op":
				a.Op, _ = p.str(v, fp)
			case "value":
				a.Value, _ = p.str(v, fp)
			case "weight":
				weighed = true
				a.Weight, _ = p.int(v, fp, "an integer from -100 to 100, not 0")
			}
		})
		if ok && !weighed {
			wp := specPath(ip, "weight")
			p.fail(item, wp, "is required: an integer from 1 to 100 to prefer matching nodes, or from -100 to -1 to avoid them")
		}
		out = append(out, a)
	}
	return out
}

// spread reads a list of {attr, weight}; weight defaults to 50.
func (p *specParser) spread(n *yaml.Node, path string) []Spread {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "expected a list of spreads {attr, weight}, got %s", specGot(n))
		return nil
	}
	var out []Spread
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			continue
		}
		ip := specIndex(path, i)
		p.at(ip, item)
		s := Spread{Weight: DefaultSpreadWeight}
		p.object(item, ip, "a spread {attr, weight}", specSpreadFields, func(key string, v *yaml.Node, fp string) {
			switch key {
			case "attr":
				s.Attr, _ = p.str(v, fp)
			case "weight":
				s.Weight, _ = p.int(v, fp, "an integer from 1 to 100")
			}
		})
		out = append(out, s) // even when broken: keeps the indexes of the entries after it
	}
	return out
}

// bool reads true or false (YAML's true/false in any case, or a quoted form).
func (p *specParser) bool(n *yaml.Node, path string) (bool, bool) {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(strings.TrimSpace(n.Value)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	p.fail(n, path, "expected true or false, got %s", specGot(n))
	return false, false
}

// retry reads {attempts, backoff}, or a bare number of attempts.
func (p *specParser) retry(n *yaml.Node, path string, r *RetryPolicy) {
	if n.Kind == yaml.ScalarNode {
		r.Attempts, _ = p.int(n, path, "an integer from 0 to 10 (retries after the first failure), or a mapping {attempts, backoff}")
		return
	}
	p.object(n, path, "a mapping {attempts, backoff} or a number of attempts", specRetryFields, func(key string, v *yaml.Node, fp string) {
		switch key {
		case "attempts":
			r.Attempts, _ = p.int(v, fp, "an integer from 0 to 10")
		case "backoff":
			if d, ok := p.duration(v, fp, false); ok {
				r.Backoff = d
			}
		}
	})
}

// steps reads the list of steps; a step is a command string or a mapping
// {name, run, env, timeout}. Unnamed steps are called step-1, step-2… after
// their position.
func (p *specParser) steps(n *yaml.Node, path string) []StepSpec {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = `; write a list, e.g. steps: ["make test"]`
		}
		p.fail(n, path, "expected a list of steps, got %s%s", specGot(n), hint)
		return nil
	}
	var out []StepSpec
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			continue
		}
		ip := specIndex(path, i)
		p.at(ip, item)
		s := StepSpec{}
		named := false
		switch {
		case specIsNull(item):
			p.fail(item, ip, "empty step: write a command, or a mapping with run")
		case item.Kind == yaml.ScalarNode:
			s.Run = item.Value
		default:
			p.object(item, ip, "a step (a command, or a mapping with run)", specStepFields, func(key string, v *yaml.Node, fp string) {
				switch key {
				case "name":
					named = true
					s.Name, _ = p.str(v, fp)
				case "run":
					s.Run, _ = p.str(v, fp)
				case "env":
					s.Env = p.env(v, fp)
				case "timeout":
					s.Timeout, _ = p.duration(v, fp, true)
				}
			})
		}
		if !named {
			s.Name = "step-" + strconv.Itoa(i+1)
		}
		out = append(out, s)
	}
	return out
}

var specPlainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// specPath appends a key to a field path: jobs.build, or env["A B"] for keys
// that are not plain words.
func specPath(parent, key string) string {
	if !specPlainKey.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// specIndex appends a list index to a field path: steps[0].
func specIndex(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// specParentPath strips the last element of a field path built by specPath
// and specIndex; quoted keys may hold '.' and '['.
func specParentPath(path string) string {
	last := 0
	inQuote := false
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && (c == '.' || c == '['):
			last = i
		}
	}
	return path[:last]
}

func specContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
