package structs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

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
// The limits are DefaultSpecLimits; SpecLimits.ParsePipeline takes others.
func ParsePipelineSpec(data []byte) (*PipelineSpec, error) {
	return specParse(data, false, DefaultSpecLimits())
}

// ParseJobSpec parses a single job, the body of POST /v1/jobs: the job's
// fields plus `name` (required) and an optional `env`, which becomes the
// pipeline's env. It returns a one-job PipelineSpec named after the job.
// Field paths in its errors are relative to the body ("resources.cpu").
// The limits are DefaultSpecLimits; SpecLimits.ParseJob takes others.
func ParseJobSpec(data []byte) (*PipelineSpec, error) {
	return specParse(data, true, DefaultSpecLimits())
}

// specParse parses under lim, whose fields must all be set, with the
// expansion byte budget of lim (SpecLimits.ExpandedBytes).
func specParse(data []byte, jobBody bool, lim SpecLimits) (*PipelineSpec, error) {
	return specParseBudget(data, jobBody, lim, lim.ExpandedBytes())
}

// specParseBudget is specParse with the budget of scalar bytes the walk may
// reach, through aliases too, given (tests set it to the byte).
func specParseBudget(data []byte, jobBody bool, lim SpecLimits, byteBudget int) (*PipelineSpec, error) {
	if len(data) > lim.SpecBytes {
		return nil, SpecErrors{{Msg: specOver(&lim, &lim.SpecBytes, len(data), "bytes", "split the pipeline or shorten its commands")}}
	}
	root, errs := specLoad(data)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	p := newSpecParser(root, lim)
	p.bytes = byteBudget
	var spec *PipelineSpec
	if jobBody {
		spec = p.jobBody(root)
	} else {
		spec = p.pipeline(root)
	}
	if p.over {
		return nil, SpecErrors{p.overErr}
	}
	p.strayTags()
	for _, e := range specValidate(spec, jobBody, lim) {
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
	return nil, p.errs.capped()
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

// specParser walks a yaml.Node tree into a PipelineSpec, collecting every
// problem with its position, and remembers where each field was written so
// that problems found later, on the struct, can point at the right line.
type specParser struct {
	lim  SpecLimits
	errs SpecErrors
	pos  map[string]specPos // field path → where its value (or key) was written
	bad  map[string]bool    // field paths that already have a parse error

	// budget bounds the nodes visited: YAML aliases can make a small document
	// expand exponentially ("billion laughs").
	budget int
	// bytes bounds the bytes of the scalars visited, keys and values,
	// each counted every time an alias reaches it: the node budget alone
	// let a 63 KB spec reuse one 60 KB command 3000 times (180 MB of spec,
	// twice in its Raft entry) while every field stayed within its limit.
	bytes   int
	over    bool
	overErr *SpecError

	// reschedBase is the pipeline's reschedule block, the base of each
	// job's (spec_reschedule.go).
	reschedBase *ReschedulePolicy
	// tagged are the nodes written with a tag ciplat does not read
	// (!!binary, !custom); each is reported once, at its field path when
	// a walker reaches it (at), else at the end by line (strayTags).
	tagged map[*yaml.Node]bool
}

type specPos struct{ line, col int }

func newSpecParser(root *yaml.Node, lim SpecLimits) *specParser {
	count, tagged := specCountNodes(root)
	return &specParser{
		lim:    lim,
		pos:    map[string]specPos{"": {root.Line, root.Column}},
		bad:    map[string]bool{},
		budget: 10*count + 10000,
		tagged: tagged,
	}
}

// specCountNodes counts the nodes written in the document, not following
// aliases, and returns those written with a tag ciplat does not read.
func specCountNodes(root *yaml.Node) (int, map[*yaml.Node]bool) {
	count := 0
	var tagged map[*yaml.Node]bool
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		if n.Style&yaml.TaggedStyle != 0 && !specContains(specPlainTags, n.ShortTag()) {
			if tagged == nil {
				tagged = map[*yaml.Node]bool{}
			}
			tagged[n] = true
		}
		if n.Kind != yaml.AliasNode {
			stack = append(stack, n.Content...)
		}
	}
	return count, tagged
}

// specPlainTags are the YAML tags a spec may write explicitly (!!str 123):
// the core schema's. Anything else (!!binary, !!timestamp, !!set, a custom
// !foo) would be read as its plain text, which is surely not what its
// author meant, so it is refused.
var specPlainTags = []string{"!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq"}

// tagError reports a node with an unknown tag at path, once.
func (p *specParser) tagError(n *yaml.Node, path string) {
	if !p.tagged[n] {
		return
	}
	delete(p.tagged, n)
	report := p.fail
	if path == "" {
		report = p.note // "" is the whole document: hide nothing else
	}
	report(n, path, "unknown YAML tag %s: a spec takes plain values (the tags %s are accepted); remove the tag", specShow(n.Tag), strings.Join(specPlainTags, ", "))
}

// strayTags reports the tagged nodes no walker reached (keys, ignored x-
// fields), by line.
func (p *specParser) strayTags() {
	if len(p.tagged) == 0 {
		return
	}
	nodes := make([]*yaml.Node, 0, len(p.tagged))
	for n := range p.tagged {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].Line != nodes[j].Line {
			return nodes[i].Line < nodes[j].Line
		}
		return nodes[i].Column < nodes[j].Column
	})
	for _, n := range nodes {
		p.tagError(n, "")
	}
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
	if n != nil && n.Kind == yaml.ScalarNode {
		p.bytes -= len(n.Value)
		if p.bytes < 0 {
			p.over = true
			p.overErr = &SpecError{Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(
				"the spec is too large once its YAML aliases are expanded: its values add up to more than the %d bytes allowed (%d × the server's -limit-spec-bytes %d); write the reused values out fewer times, or split the pipeline",
				p.lim.ExpandedBytes(), specExpandFactor, p.lim.SpecBytes)}
			return nil
		}
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
		p.tagError(n, path)
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
				p.note(k, specPath(path, k.Value), "duplicate %s %s (first at line %d)", noun, specShow(k.Value), first.Line)
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
		p.note(k, field, "unknown field %s: %s", specShow(k.Value), msg.text)
		return
	}
	if s := specSuggest(k.Value, known); s != "" {
		p.note(k, field, "unknown field %s, did you mean %q?", specShow(k.Value), s)
		return
	}
	extra := ""
	if path == "" && len(known) == len(specTopFields) {
		extra = "; top-level fields starting with x- are ignored, a place for YAML anchors"
	}
	p.note(k, field, "unknown field %s (known fields: %s)%s", specShow(k.Value), strings.Join(known, ", "), extra)
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
	specTopFields        = []string{"name", "env", "reschedule", "jobs"}
	specJobFields        = []string{"image", "driver", "needs", "priority", "resources", "constraints", "affinities", "spread", "anti_affinity", "retry", "reschedule", "timeout", "env", "steps"}
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
	kvs := p.fields(n, "", "field")
	spec.Reschedule = p.specTopReschedule(kvs) // before the jobs, whose blocks start from it
	defer p.fillReschedule(spec)
	for _, kv := range kvs {
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
		case "reschedule": // read by specTopReschedule
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
	p.fillReschedule(spec)
	return spec
}

// jobs parses the jobs of a pipeline: a mapping of name → job (the dialect),
// or a list of jobs with a name each (PipelineSpec's JSON form).
func (p *specParser) jobs(n *yaml.Node, path string) []*JobSpec {
	var jobs []*JobSpec
	switch n.Kind {
	case yaml.MappingNode:
		kvs := p.fields(n, path, "job")
		if len(kvs) > p.lim.JobsPerPipeline {
			p.fail(n, path, "%s", specOver(&p.lim, &p.lim.JobsPerPipeline, len(kvs), "jobs", "split the pipeline"))
			return nil
		}
		for i, kv := range kvs {
			name := kv.key.Value
			jp := specJobPath(i, name)
			p.at(jp, kv.key)
			j := specDefaultJob(name)
			jobs = append(jobs, j)
			body := p.resolve(kv.val)
			if body != nil {
				p.tagError(body, jp)
			}
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
		if len(n.Content) > p.lim.JobsPerPipeline {
			p.fail(n, path, "%s", specOver(&p.lim, &p.lim.JobsPerPipeline, len(n.Content), "jobs", "split the pipeline"))
			return nil
		}
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
		case "reschedule":
			j.Reschedule = p.jobReschedule(v, fp)
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
