package jobspec

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ciplat/ciplat/fsm/structs"
)

// The reschedule block, at the top of a pipeline (the default of its jobs)
// or in a job (which wins, field by field over the pipeline's, which wins
// over the defaults of DefaultReschedulePolicy):
//
//	reschedule: { attempts: 3, delay: 5s, max_delay: 1m }
//	reschedule: 5            # attempts only
//
// A job without a block gets the pipeline's (copied into its Reschedule);
// with neither, its Reschedule stays nil, which means the defaults
// (JobSpec.ReschedulePolicyOf).

// specRescheduleFields are the fields of a reschedule block.
var specRescheduleFields = []string{"attempts", "delay", "max_delay"}

// Bounds of a reschedule block.
const (
	specMaxRescheduleAttempts = 10
	specMaxRescheduleDelay    = 24 * time.Hour
)

// specTopReschedule parses the pipeline's reschedule block, if any, before
// its jobs (whose blocks start from it), and remembers it as their base.
func (p *specParser) specTopReschedule(kvs []specKV) *structs.ReschedulePolicy {
	for _, kv := range kvs {
		if kv.key.Value != "reschedule" {
			continue
		}
		v := p.resolve(kv.val)
		if specIsNull(v) {
			return nil
		}
		p.at("reschedule", v)
		r := p.reschedule(v, "reschedule", structs.DefaultReschedulePolicy())
		if rescheduleValid(&r) {
			p.reschedBase = &r // a broken block is reported once, not again in every job
		}
		return &r
	}
	return nil
}

// jobReschedule parses a job's reschedule block over the pipeline's.
func (p *specParser) jobReschedule(n *yaml.Node, path string) *structs.ReschedulePolicy {
	base := structs.DefaultReschedulePolicy()
	if p.reschedBase != nil {
		base = *p.reschedBase
	}
	r := p.reschedule(n, path, base)
	return &r
}

// reschedule reads {attempts, delay, max_delay}, or a bare number of
// attempts, over base.
func (p *specParser) reschedule(n *yaml.Node, path string, base structs.ReschedulePolicy) structs.ReschedulePolicy {
	r := base
	if n.Kind == yaml.ScalarNode {
		if a, ok := p.int(n, path, "an integer from 0 to 10 (placements again after infrastructure faults), or a mapping {attempts, delay, max_delay}"); ok {
			r.Attempts = a
		}
		return r
	}
	p.object(n, path, "a mapping {attempts, delay, max_delay} or a number of attempts", specRescheduleFields, func(key string, v *yaml.Node, fp string) {
		switch key {
		case "attempts":
			if a, ok := p.int(v, fp, "an integer from 0 to 10"); ok {
				r.Attempts = a
			}
		case "delay":
			if d, ok := p.duration(v, fp, false); ok {
				r.Delay = d
			}
		case "max_delay":
			if d, ok := p.duration(v, fp, false); ok {
				r.MaxDelay = d
			}
		}
	})
	return r
}

// fillReschedule gives every job without its own block the pipeline's, if
// it has one.
func (p *specParser) fillReschedule(spec *structs.PipelineSpec) {
	if p.reschedBase == nil {
		return
	}
	for _, j := range spec.Jobs {
		if j != nil && j.Reschedule == nil {
			r := *p.reschedBase
			j.Reschedule = &r
		}
	}
}

// rescheduleValid reports whether a block breaks no rule.
func rescheduleValid(r *structs.ReschedulePolicy) bool {
	v := &specValidator{}
	v.reschedule(r, "")
	return len(v.errs) == 0
}

// reschedule checks a reschedule block (nil: the defaults, fine).
func (v *specValidator) reschedule(r *structs.ReschedulePolicy, path string) {
	if r == nil {
		return
	}
	if r.Attempts < 0 || r.Attempts > specMaxRescheduleAttempts {
		v.add(path+".attempts", "expected an integer from 0 to %d, got %d", specMaxRescheduleAttempts, r.Attempts)
	}
	if r.Delay < 0 || r.Delay.D() > specMaxRescheduleDelay {
		v.add(path+".delay", "expected a duration from 0 to %s, got %s", specMaxRescheduleDelay, r.Delay.D())
	}
	switch {
	case r.MaxDelay < 0 || r.MaxDelay.D() > specMaxRescheduleDelay:
		v.add(path+".max_delay", "expected a duration from 0 to %s, got %s", specMaxRescheduleDelay, r.MaxDelay.D())
	case r.MaxDelay < r.Delay:
		v.add(path+".max_delay", "expected at least delay (%s), got %s", r.Delay.D(), r.MaxDelay.D())
	}
}
