package jobspec

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	"github.com/ciplat/ciplat/fsm/structs"
)

var (
	specPipelineName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	specJobName      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)
	specJobBodyName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`) // both of the above
	specEnvName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Limits of a spec beyond which a value is surely a mistake.
const (
	specMaxCPU       = math.MaxInt32 // millicores
	specMaxMemoryMB  = math.MaxInt32
	specMaxPriority  = 100
	specMaxAttempts  = 10
	specMaxAbsWeight = 100
	specMinPriority  = 1
)

// Validate checks a spec that did not come through ParsePipelineSpec (built
// in Go, or decoded from JSON into the struct) against the rules the parser
// applies. It expects defaults to be filled in, as the parser does: a zero
// priority or cpu is an error. Problems carry field paths but no lines.
//
// The limits are DefaultLimits; Limits.Validate takes others.
func Validate(s *structs.PipelineSpec) error {
	return DefaultLimits().Validate(s)
}

// specValidate returns every rule a parsed spec breaks, with field paths and
// no positions. jobBody relaxes the rules for ParseJobSpec's one-job spec,
// whose pipeline is named after its job.
//
// lim must have every field set (Limits.WithDefaults).
func specValidate(s *structs.PipelineSpec, jobBody bool, lim Limits) Errors {
	v := &specValidator{jobBody: jobBody, suggestions: 100000, lim: lim}
	v.pipeline(s)
	return v.errs
}

type specValidator struct {
	lim     Limits
	errs    Errors
	jobBody bool
	regexps map[string]error // compiled once each: aliases can repeat a value many times
	// suggestions bounds the names compared for "did you mean": a spec
	// with thousands of unknown needs must not take minutes to refuse.
	suggestions int
}

func (v *specValidator) add(field, format string, args ...any) {
	v.errs = append(v.errs, &Error{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *specValidator) pipeline(s *structs.PipelineSpec) {
	if s == nil {
		v.add("", "the spec is empty")
		return
	}
	switch {
	case v.jobBody && s.Name == "":
		v.add("name", "is required: the job's name, such as \"build\"")
	case !v.jobBody && s.Name == "":
		v.add("name", "is required: the pipeline's name, such as \"hello\"")
	case len(s.Name) > v.lim.NameBytes:
		v.add("name", "%s", specTooLong(&v.lim, &v.lim.NameBytes, s.Name, "the name"))
	case v.jobBody && !specJobBodyName.MatchString(s.Name):
		v.add("name", "invalid job name %s: use up to 63 letters, digits, '_' or '-', starting with a letter or digit", structs.ShowValue(s.Name))
	case !v.jobBody && !specPipelineName.MatchString(s.Name):
		v.add("name", "invalid pipeline name %s: use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", structs.ShowValue(s.Name))
	}
	v.env(s.Env, "env")
	v.reschedule(s.Reschedule, "reschedule")
	if len(s.Jobs) == 0 {
		v.add("jobs", "a pipeline needs at least one job, e.g. jobs: {build: {steps: [\"make\"]}}")
		return
	}
	if len(s.Jobs) > v.lim.JobsPerPipeline {
		v.add("jobs", "%s", specOver(&v.lim, &v.lim.JobsPerPipeline, len(s.Jobs), "jobs", "split the pipeline"))
		return
	}
	paths := specJobPaths(s.Jobs)
	index := map[string]int{} // job name → index of its first job
	var names []string
	for i, j := range s.Jobs {
		if j == nil {
			v.add(paths[i], "the job is missing (nil)")
			continue
		}
		if _, dup := index[j.Name]; dup {
			v.add(paths[i], "duplicate job name %s: job names must be unique", structs.ShowValue(j.Name))
			continue
		}
		index[j.Name] = i
		names = append(names, j.Name)
	}
	for i, j := range s.Jobs {
		if j != nil {
			v.job(j, paths[i], index, names)
		}
	}
	v.cycles(s.Jobs, paths, index)
}

// specJobPaths returns the field path of each job: jobs.build; jobs[2] for a
// job without a name, or for the second job of a name.
func specJobPaths(jobs []*structs.JobSpec) []string {
	paths := make([]string, len(jobs))
	seen := map[string]bool{}
	for i, j := range jobs {
		name := ""
		if j != nil {
			name = j.Name
		}
		if seen[name] {
			paths[i] = specIndex("jobs", i)
			continue
		}
		seen[name] = true
		paths[i] = specJobPath(i, name)
	}
	return paths
}

func (v *specValidator) env(env map[string]string, path string) {
	if len(env) > v.lim.EnvEntries {
		v.add(path, "%s", specOver(&v.lim, &v.lim.EnvEntries, len(env), "variables", ""))
		return
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kp := specPath(path, k)
		switch {
		case len(k) > v.lim.NameBytes:
			v.add(kp, "%s", specTooLong(&v.lim, &v.lim.NameBytes, k, "the variable name"))
		case !specEnvName.MatchString(k):
			v.add(kp, "invalid variable name %s: use letters, digits and '_', not starting with a digit", structs.ShowValue(k))
		}
		val := env[k]
		switch {
		case len(val) > v.lim.EnvValueBytes:
			v.add(kp, "%s", specTooLong(&v.lim, &v.lim.EnvValueBytes, val, "the value"))
		case specNUL(val) != "":
			v.add(kp, "the value holds %s, which no process environment can carry", specNUL(val))
		}
	}
}

// field checks a string of the spec other than a name or a command
// (image, driver, attr, value): its length, and printable characters.
func (v *specValidator) field(s, path string) bool {
	if len(s) > v.lim.FieldBytes {
		v.add(path, "%s", specTooLong(&v.lim, &v.lim.FieldBytes, s, "the value"))
		return false
	}
	if bad := specBadRune(s); bad != "" {
		v.add(path, "%s holds %s: use printable characters", structs.ShowValue(s), bad)
		return false
	}
	return true
}

// count checks the length of one of a job's lists against its limit.
func (v *specValidator) count(n int, f *int, path, what, hint string) bool {
	if n > *f {
		v.add(path, "%s", specOver(&v.lim, f, n, what, hint))
		return false
	}
	return true
}

func (v *specValidator) job(j *structs.JobSpec, path string, index map[string]int, names []string) {
	if !v.jobBody {
		switch {
		case j.Name == "":
			v.add(path, "a job needs a name")
		case len(j.Name) > v.lim.NameBytes:
			v.add(path, "%s", specTooLong(&v.lim, &v.lim.NameBytes, j.Name, "the job name"))
		case !specJobName.MatchString(j.Name):
			v.add(path, "invalid job name %s: use up to 63 letters, digits, '_' or '-'", structs.ShowValue(j.Name))
		}
	}
	if j.Image != "" {
		v.field(j.Image, path+".image")
	}
	v.driver(j.Driver, path+".driver")
	if j.Priority < specMinPriority || j.Priority > specMaxPriority {
		v.add(path+".priority", "expected an integer from 1 to 100, got %d", j.Priority)
	}
	v.resources(j.Resources, path+".resources")
	if !v.count(len(j.Constraints), &v.lim.MatchesPerJob, path+".constraints", "constraints", "") ||
		!v.count(len(j.Affinities), &v.lim.MatchesPerJob, path+".affinities", "affinities", "") ||
		!v.count(len(j.Spread), &v.lim.MatchesPerJob, path+".spread", "spreads", "") ||
		!v.count(len(j.Steps), &v.lim.StepsPerJob, path+".steps", "steps", "join commands into one step, or split the job") ||
		!v.count(len(j.Needs), &v.lim.NeedsPerJob, path+".needs", "needs", "") {
		return
	}
	for i, c := range j.Constraints {
		v.match(c.Attr, c.Op, c.Value, specIndex(path+".constraints", i))
	}
	for i, a := range j.Affinities {
		ap := specIndex(path+".affinities", i)
		v.match(a.Attr, a.Op, a.Value, ap)
		if a.Weight == 0 || a.Weight < -specMaxAbsWeight || a.Weight > specMaxAbsWeight {
			v.add(ap+".weight", "expected an integer from -100 to 100, not 0, got %d", a.Weight)
		}
	}
	seen := make(map[string]bool, len(j.Spread))
	for i, sp := range j.Spread {
		pp := specIndex(path+".spread", i)
		switch {
		case strings.TrimSpace(sp.Attr) == "":
			v.add(pp+".attr", "is required: the node attribute whose values to spread across, such as \"label.zone\"")
		case !v.field(sp.Attr, pp+".attr"):
		case seen[sp.Attr]:
			v.add(pp+".attr", "%q is spread twice", sp.Attr)
		}
		seen[sp.Attr] = true
		if sp.Weight < 1 || sp.Weight > specMaxAbsWeight {
			v.add(pp+".weight", "expected an integer from 1 to 100, got %d", sp.Weight)
		}
	}
	if j.Retry.Attempts < 0 || j.Retry.Attempts > specMaxAttempts {
		v.add(path+".retry.attempts", "expected an integer from 0 to 10, got %d", j.Retry.Attempts)
	}
	if j.Retry.Backoff < 0 {
		v.add(path+".retry.backoff", "expected a duration of 0 or more, got %s", j.Retry.Backoff.D())
	}
	v.reschedule(j.Reschedule, path+".reschedule")
	if j.Timeout < 0 {
		v.add(path+".timeout", "expected a positive duration such as \"10m\", got %s", j.Timeout.D())
	}
	v.env(j.Env, path+".env")
	v.steps(j.Steps, path+".steps")
	v.needs(j, path+".needs", index, names)
}

func (v *specValidator) resources(r structs.Resources, path string) {
	switch {
	case r.CPU <= 0:
		v.add(path+".cpu", "expected a positive integer (millicores), got %d", r.CPU)
	case r.CPU > specMaxCPU:
		v.add(path+".cpu", "%d millicores is more than the %d allowed", r.CPU, specMaxCPU)
	}
	switch {
	case r.MemoryMB <= 0:
		v.add(path+".memory", "expected a positive integer (MiB), got %d", r.MemoryMB)
	case r.MemoryMB > specMaxMemoryMB:
		v.add(path+".memory", "%d MiB is more than the %d allowed", r.MemoryMB, specMaxMemoryMB)
	}
}

// match checks the attr, op and value of a constraint or an affinity.
func (v *specValidator) match(attr, op, value, path string) {
	if strings.TrimSpace(attr) == "" {
		v.add(path+".attr", "is required: the node attribute to match, such as \"label.arch\"")
	} else {
		v.field(attr, path+".attr")
	}
	if len(value) > v.lim.FieldBytes || specNUL(value) != "" {
		v.field(value, path+".value")
		return
	}
	if !specContains(structs.ConstraintOps, op) {
		msg := fmt.Sprintf("unknown operator %q: use one of %s", op, strings.Join(structs.ConstraintOps, " "))
		if s := specSuggest(op, structs.ConstraintOps); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		v.add(path+".op", "%s", msg)
		return
	}
	switch op {
	case "is_set", "is_not_set":
		if value != "" {
			v.add(path+".value", "operator %q takes no value, got %q", op, value)
		}
		return
	}
	if value == "" {
		v.add(path+".value", "is required with operator %q", op)
		return
	}
	if op == "regexp" {
		err, done := v.regexps[value]
		if !done {
			_, err = regexp.Compile(value)
			if v.regexps == nil {
				v.regexps = map[string]error{}
			}
			v.regexps[value] = err
		}
		if err != nil {
			v.add(path+".value", "invalid regular expression %q: %v", value, err)
		}
	}
}

func (v *specValidator) steps(steps []structs.StepSpec, path string) {
	if len(steps) == 0 {
		v.add(path, "a job needs at least one step, e.g. steps: [\"make test\"]")
		return
	}
	first := map[string]int{}
	for i, s := range steps {
		sp := specIndex(path, i)
		switch {
		case s.Name == "":
			v.add(sp+".name", "must not be empty; leave it out to call the step step-%d", i+1)
		case len(s.Name) > v.lim.NameBytes:
			v.add(sp+".name", "%s", specTooLong(&v.lim, &v.lim.NameBytes, s.Name, "the step name"))
		case specBadRune(s.Name) != "":
			v.add(sp+".name", "step name %s holds %s: use printable characters", structs.ShowValue(s.Name), specBadRune(s.Name))
		case first[s.Name] > 0:
			v.add(sp+".name", "duplicate step name %s (also the name of %s; unnamed steps are called step-N after their position)", structs.ShowValue(s.Name), specIndex(path, first[s.Name]-1))
		default:
			first[s.Name] = i + 1
		}
		switch {
		case strings.TrimSpace(s.Run) == "":
			v.add(sp+".run", "is required: the shell command to run")
		case len(s.Run) > v.lim.RunBytes:
			v.add(sp+".run", "%s", specTooLong(&v.lim, &v.lim.RunBytes, s.Run, "the command"))
		case specNUL(s.Run) != "":
			v.add(sp+".run", "the command holds %s, which no shell can run", specNUL(s.Run))
		}
		if s.Timeout < 0 {
			v.add(sp+".timeout", "expected a positive duration such as \"10m\", got %s", s.Timeout.D())
		}
		v.env(s.Env, sp+".env")
	}
}

func (v *specValidator) needs(j *structs.JobSpec, path string, index map[string]int, names []string) {
	listed := map[string]bool{}
	for i, dep := range j.Needs {
		np := specIndex(path, i)
		switch {
		case dep == "":
			v.add(np, "expected a job name, got \"\"")
		case dep == j.Name:
			v.add(np, "job %s needs itself", structs.ShowValue(dep))
		case listed[dep]:
			v.add(np, "%s is listed twice", structs.ShowValue(dep))
		default:
			if _, ok := index[dep]; ok {
				break
			}
			msg := fmt.Sprintf("unknown job %s", structs.ShowValue(dep))
			if v.jobBody {
				msg += ": a job submitted alone cannot need other jobs; submit a pipeline instead"
			} else if s := v.suggest(dep, names); s != "" {
				msg += fmt.Sprintf(", did you mean %q?", s)
			}
			v.add(np, "%s", msg)
		}
		listed[dep] = true
	}
}

// suggest is specSuggest within the validator's budget of comparisons.
func (v *specValidator) suggest(word string, candidates []string) string {
	if v.suggestions < len(candidates) {
		return ""
	}
	v.suggestions -= len(candidates)
	return specSuggest(word, candidates)
}

// cycles reports each group of jobs that need each other in a circle, once,
// as the shortest cycle through its first job: "build → test → build".
func (v *specValidator) cycles(jobs []*structs.JobSpec, paths []string, index map[string]int) {
	edges := make([][]int, len(jobs))
	for i, j := range jobs {
		if j == nil || index[j.Name] != i {
			continue // nil, or the second job of a name
		}
		seen := map[int]bool{}
		for _, dep := range j.Needs {
			k, ok := index[dep]
			if ok && k != i && !seen[k] {
				seen[k] = true
				edges[i] = append(edges[i], k)
			}
		}
	}
	for _, scc := range specSCCs(edges) {
		if len(scc) < 2 {
			continue
		}
		start := scc[0]
		for _, i := range scc {
			start = min(start, i)
		}
		cycle := specShortestCycle(edges, scc, start)
		var names []string
		for i, k := range cycle {
			if len(cycle) > 12 && i == 10 {
				names = append(names, fmt.Sprintf("… %d more", len(cycle)-10))
				break
			}
			names = append(names, jobs[k].Name)
		}
		v.add(paths[start], "dependency cycle: %s → %s (each job needs the next)", strings.Join(names, " → "), jobs[start].Name)
	}
}

// specSCCs returns the strongly connected components of a graph (Tarjan's
// algorithm, iterative so that a long chain of jobs cannot exhaust the stack).
func specSCCs(edges [][]int) [][]int {
	n := len(edges)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var out [][]int
	var comp []int // Tarjan's stack
	next := 0
	type frame struct{ v, e int }
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		call := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		comp = append(comp, root)
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			if f.e < len(edges[f.v]) {
				w := edges[f.v][f.e]
				f.e++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					comp = append(comp, w)
					onStack[w] = true
					call = append(call, frame{w, 0})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				u := call[len(call)-1].v
				low[u] = min(low[u], low[v])
			}
			if low[v] == index[v] {
				var scc []int
				for {
					w := comp[len(comp)-1]
					comp = comp[:len(comp)-1]
					onStack[w] = false
					scc = append(scc, w)
					if w == v {
						break
					}
				}
				out = append(out, scc)
			}
		}
	}
	return out
}

// specShortestCycle returns the shortest path start → … → start inside one
// strongly connected component, without repeating start at the end.
func specShortestCycle(edges [][]int, scc []int, start int) []int {
	in := map[int]bool{}
	for _, k := range scc {
		in[k] = true
	}
	prev := map[int]int{start: -1}
	queue := []int{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, w := range edges[u] {
			if !in[w] {
				continue
			}
			if w == start {
				var path []int
				for k := u; k != -1; k = prev[k] {
					path = append(path, k)
				}
				for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
					path[a], path[b] = path[b], path[a]
				}
				return path
			}
			if _, seen := prev[w]; !seen {
				prev[w] = u
				queue = append(queue, w)
			}
		}
	}
	return []int{start} // unreachable for a real component
}

// specSuggest returns the candidate nearest to word when it is a likely typo:
// at most 2 edits away (a swap of neighbours counts as one) and fewer edits
// than word has letters.
func specSuggest(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if c == word {
			continue
		}
		if d := specEditDistance(word, c, bestD); d < bestD && d < len(word) {
			best, bestD = c, d
		}
	}
	return best
}

// specEditDistance is the optimal string alignment distance between a and b,
// or limit when it is limit or more.
func specEditDistance(a, b string, limit int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= limit || -d >= limit {
		return limit
	}
	if len(ra) > 256 || len(rb) > 256 {
		return limit
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(rb)], limit)
}
