package structs

// PipelineSpec is what a user submits: the pipeline YAML (or the same as JSON)
// after parsing and validation. Jobs keep the order they were written in.
type PipelineSpec struct {
	Name string            `json:"name"`
	Env  map[string]string `json:"env,omitempty"`
	// Reschedule is the pipeline's default for jobs without their own
	// block (the parser, jobspec, copies it into them); nil: the defaults.
	Reschedule *ReschedulePolicy `json:"reschedule,omitempty"`
	Jobs       []*JobSpec        `json:"jobs"`
}

// JobSpec is one job of a pipeline: where it may run and the steps it runs.
type JobSpec struct {
	Name        string       `json:"name"`
	Image       string       `json:"image,omitempty"`
	Driver      string       `json:"driver,omitempty"`
	Needs       []string     `json:"needs,omitempty"`
	Priority    int          `json:"priority"`
	Resources   Resources    `json:"resources"`
	Constraints []Constraint `json:"constraints,omitempty"`
	Affinities  []Affinity   `json:"affinities,omitempty"`
	// Spread prefers nodes whose attribute value runs the fewest live
	// allocations of the same pipeline (see scheduler/rank_label_spread.go).
	Spread []Spread `json:"spread,omitempty"`
	// AntiAffinity, when true, penalises nodes already running a live
	// allocation of another job of the same pipeline.
	AntiAffinity bool        `json:"anti_affinity,omitempty"`
	Retry        RetryPolicy `json:"retry"`
	// Reschedule places the job again after infrastructure faults
	// (reschedule.go); nil (specs stored before it existed): the defaults.
	Reschedule *ReschedulePolicy `json:"reschedule,omitempty"`
	Timeout    Duration          `json:"timeout,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Steps      []StepSpec        `json:"steps"`
}

// StepSpec is one shell command of a job, run with `sh -e -c` in the job's worker.
type StepSpec struct {
	Name    string            `json:"name"`
	Run     string            `json:"run"`
	Env     map[string]string `json:"env,omitempty"`
	Timeout Duration          `json:"timeout,omitempty"`
}

// Resources are CPU in millicores and memory in MiB.
type Resources struct {
	CPU      int `json:"cpu"`
	MemoryMB int `json:"memory"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{CPU: r.CPU + o.CPU, MemoryMB: r.MemoryMB + o.MemoryMB}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{CPU: r.CPU - o.CPU, MemoryMB: r.MemoryMB - o.MemoryMB}
}

// Fits reports whether r fits in capacity c; when it does not, it names the
// first exhausted dimension ("cpu" or "memory").
func (r Resources) Fits(c Resources) (bool, string) {
	if r.CPU > c.CPU {
		return false, "cpu"
	}
	if r.MemoryMB > c.MemoryMB {
		return false, "memory"
	}
	return true, ""
}

// Constraint restricts a job to nodes whose attribute matches: Attr is a node
// attribute ("os", "arch", "label.zone", "driver.docker"), Op one of
// ConstraintOps, Value the operand.
type Constraint struct {
	Attr  string `json:"attr"`
	Op    string `json:"op"`
	Value string `json:"value,omitempty"`
}

// Affinity prefers (Weight > 0) or avoids (Weight < 0) nodes that match, with
// Weight in [-100, 100].
type Affinity struct {
	Attr   string `json:"attr"`
	Op     string `json:"op"`
	Value  string `json:"value,omitempty"`
	Weight int    `json:"weight"`
}

// Spread spreads a pipeline's jobs across the values of a node attribute
// ("label.zone"), with Weight in [1, 100] among the job's spreads.
type Spread struct {
	Attr   string `json:"attr"`
	Weight int    `json:"weight"`
}

// ConstraintOps are the operators constraints and affinities accept.
var ConstraintOps = []string{"=", "!=", "<", ">", "<=", ">=", "regexp", "set_contains", "is_set", "is_not_set", "version"}

// RetryPolicy says how often a failed job is tried again: Attempts retries
// after the first failure (so at most 1+Attempts runs), the nth retry waiting
// Backoff × 2^(n−1).
type RetryPolicy struct {
	Attempts int      `json:"attempts"`
	Backoff  Duration `json:"backoff"`
}

// Spec defaults the parser (jobspec) applies when a field is left out.
const (
	DefaultCPU      = 100 // millicores
	DefaultMemoryMB = 128
	DefaultPriority = 50
	// DefaultSpreadWeight is a spread's weight when left out.
	DefaultSpreadWeight = 50
)

// Job returns the spec of the named job, or nil.
func (p *PipelineSpec) Job(name string) *JobSpec {
	for _, j := range p.Jobs {
		if j != nil && j.Name == name {
			return j
		}
	}
	return nil
}
