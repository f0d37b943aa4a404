package jobspec

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ciplat/ciplat/fsm/structs"
)

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
func (p *specParser) duration(n *yaml.Node, path string, positive bool) (structs.Duration, bool) {
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
	return structs.Duration(d), true
}

// env reads a mapping of variable names to scalars, kept as written
// (`PORT: 8080` is "8080", `DEBUG: yes` is "yes", an empty value is "").
func (p *specParser) env(n *yaml.Node, path string) map[string]string {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "expected a mapping of variable names to values, got %s", specGot(n))
		return nil
	}
	kvs := p.fields(n, path, "variable")
	if len(kvs) > p.lim.EnvEntries {
		p.fail(n, path, "%s", specOver(&p.lim, &p.lim.EnvEntries, len(kvs), "variables", ""))
		return nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
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
		if len(n.Content) > p.lim.NeedsPerJob {
			p.fail(n, path, "%s", specOver(&p.lim, &p.lim.NeedsPerJob, len(n.Content), "needs", "make a job that needs them and need that job"))
			return nil
		}
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

func (p *specParser) resources(n *yaml.Node, path string, r *structs.Resources) {
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

// items walks a list of mappings, calling each with the entry and its field
// path; it reports a non-list (what names the expected entries) and returns
// false then.
func (p *specParser) items(n *yaml.Node, path, what string, each func(item *yaml.Node, ip string)) bool {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "expected a list of %s, got %s", what, specGot(n))
		return false
	}
	if len(n.Content) > p.lim.MatchesPerJob {
		p.fail(n, path, "%s", specOver(&p.lim, &p.lim.MatchesPerJob, len(n.Content), "entries", ""))
		return false
	}
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			continue
		}
		ip := specIndex(path, i)
		p.at(ip, item)
		each(item, ip)
	}
	return true
}

func (p *specParser) constraints(n *yaml.Node, path string) []structs.Constraint {
	var out []structs.Constraint
	if !p.items(n, path, "constraints {attr, op, value}", func(item *yaml.Node, ip string) {
		c := structs.Constraint{Op: "="}
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
	}) {
		return nil
	}
	return out
}

func (p *specParser) affinities(n *yaml.Node, path string) []structs.Affinity {
	var out []structs.Affinity
	if !p.items(n, path, "affinities {attr, op, value, weight}", func(item *yaml.Node, ip string) {
		a := structs.Affinity{Op: "="}
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
	}) {
		return nil
	}
	return out
}

// spread reads a list of {attr, weight}; weight defaults to 50.
func (p *specParser) spread(n *yaml.Node, path string) []structs.Spread {
	var out []structs.Spread
	if !p.items(n, path, "spreads {attr, weight}", func(item *yaml.Node, ip string) {
		s := structs.Spread{Weight: structs.DefaultSpreadWeight}
		p.object(item, ip, "a spread {attr, weight}", specSpreadFields, func(key string, v *yaml.Node, fp string) {
			switch key {
			case "attr":
				s.Attr, _ = p.str(v, fp)
			case "weight":
				s.Weight, _ = p.int(v, fp, "an integer from 1 to 100")
			}
		})
		out = append(out, s) // even when broken: keeps the indexes of the entries after it
	}) {
		return nil
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
func (p *specParser) retry(n *yaml.Node, path string, r *structs.RetryPolicy) {
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
func (p *specParser) steps(n *yaml.Node, path string) []structs.StepSpec {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = `; write a list, e.g. steps: ["make test"]`
		}
		p.fail(n, path, "expected a list of steps, got %s%s", specGot(n), hint)
		return nil
	}
	if len(n.Content) > p.lim.StepsPerJob {
		p.fail(n, path, "%s", specOver(&p.lim, &p.lim.StepsPerJob, len(n.Content), "steps", "join commands into one step, or split the job"))
		return nil
	}
	var out []structs.StepSpec
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			continue
		}
		ip := specIndex(path, i)
		p.at(ip, item)
		s := structs.StepSpec{}
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
	if len(key) > structs.ShowMax {
		return parent + "[" + structs.ShowValue(key) + "]" // no path as long as a huge key
	}
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
