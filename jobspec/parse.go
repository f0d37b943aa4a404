package jobspec

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ciplat/ciplat/fsm/structs"
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
// 1s, step names step-1, step-2…) and validates it. On failure the error is an
// Errors listing every problem found, each with its line and field path.
// The limits are DefaultLimits; Limits.ParsePipeline takes others.
func ParsePipelineSpec(data []byte) (*structs.PipelineSpec, error) {
	return specParse(data, false, DefaultLimits())
}

// ParseJobSpec parses a single job, the body of POST /v1/jobs: the job's
// fields plus `name` (required) and an optional `env`, which becomes the
// pipeline's env. It returns a one-job PipelineSpec named after the job.
// Field paths in its errors are relative to the body ("resources.cpu").
// The limits are DefaultLimits; Limits.ParseJob takes others.
func ParseJobSpec(data []byte) (*structs.PipelineSpec, error) {
	return specParse(data, true, DefaultLimits())
}

// specParse parses under lim, whose fields must all be set, with the
// expansion byte budget of lim (Limits.ExpandedBytes).
func specParse(data []byte, jobBody bool, lim Limits) (*structs.PipelineSpec, error) {
	return specParseBudget(data, jobBody, lim, lim.ExpandedBytes())
}

// specParseBudget is specParse with the budget of scalar bytes the walk may
// reach, through aliases too, given (tests set it to the byte).
func specParseBudget(data []byte, jobBody bool, lim Limits, byteBudget int) (*structs.PipelineSpec, error) {
	if len(data) > lim.SpecBytes {
		return nil, Errors{{Msg: specOver(&lim, &lim.SpecBytes, len(data), "bytes", "split the pipeline or shorten its commands")}}
	}
	root, errs := specLoad(data)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	p := newSpecParser(root, lim)
	p.bytes = byteBudget
	var spec *structs.PipelineSpec
	if jobBody {
		spec = p.jobBody(root)
	} else {
		spec = p.pipeline(root)
	}
	if p.over {
		return nil, Errors{p.overErr}
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
		p.note(k, field, "unknown field %s: %s", structs.ShowValue(k.Value), msg.text)
		return
	}
	if s := specSuggest(k.Value, known); s != "" {
		p.note(k, field, "unknown field %s, did you mean %q?", structs.ShowValue(k.Value), s)
		return
	}
	extra := ""
	if path == "" && len(known) == len(specTopFields) {
		extra = "; top-level fields starting with x- are ignored, a place for YAML anchors"
	}
	p.note(k, field, "unknown field %s (known fields: %s)%s", structs.ShowValue(k.Value), strings.Join(known, ", "), extra)
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

func (p *specParser) pipeline(root *yaml.Node) *structs.PipelineSpec {
	spec := &structs.PipelineSpec{}
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
func (p *specParser) jobBody(root *yaml.Node) *structs.PipelineSpec {
	spec := &structs.PipelineSpec{}
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
	spec.Jobs = []*structs.JobSpec{j}
	p.job(kvs, j, path, specJobBody, spec)
	p.fillReschedule(spec)
	return spec
}

// jobs parses the jobs of a pipeline: a mapping of name → job (the dialect),
// or a list of jobs with a name each (PipelineSpec's JSON form).
func (p *specParser) jobs(n *yaml.Node, path string) []*structs.JobSpec {
	var jobs []*structs.JobSpec
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

func specDefaultJob(name string) *structs.JobSpec {
	return &structs.JobSpec{
		Name:      name,
		Priority:  structs.DefaultPriority,
		Resources: structs.Resources{CPU: structs.DefaultCPU, MemoryMB: structs.DefaultMemoryMB},
		Retry:     structs.RetryPolicy{Backoff: structs.Duration(time.Second)},
	}
}

// Where a job's fields come from.
const (
	specJobInMap  = iota // jobs: {build: {...}}: the key is the name
	specJobInList        // jobs: [{name: build, ...}]: name read by the caller
	specJobBody          // POST /v1/jobs: name and env are the pipeline's
)

func (p *specParser) job(kvs []specKV, j *structs.JobSpec, path string, mode int, spec *structs.PipelineSpec) {
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
