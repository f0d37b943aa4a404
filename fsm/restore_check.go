package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// checkRestored holds an operator's snapshot (a StateRestore entry) to what
// entries must satisfy, for the rows that readers follow pointers in: a
// node's driver entries, a pipeline's and a job's spec, the scheduler
// configuration. A snapshot saved by a ciplat server always passes; a
// hand-made one that would crash the scheduler or Apply later is refused
// before it is swapped in. It reads only the restored store, so every
// server decides alike.
func checkRestored(s *state.StateStore) error {
	nodes, err := s.Nodes(nil)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := n.Validate(fmt.Sprintf("nodes[%q]", n.ID)); err != nil {
			return err
		}
	}
	pipelines, err := s.Pipelines(nil)
	if err != nil {
		return err
	}
	for _, p := range pipelines {
		if p.Spec == nil {
			return fmt.Errorf("%w: pipelines[%q].spec: missing", structs.ErrInvalidRequest, p.ID)
		}
		for i, j := range p.Spec.Jobs {
			if j == nil {
				return fmt.Errorf("%w: pipelines[%q].spec.jobs[%d]: null", structs.ErrInvalidRequest, p.ID, i)
			}
		}
	}
	jobs, err := s.Jobs(nil)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Spec == nil {
			return fmt.Errorf("%w: jobs[%q].spec: missing", structs.ErrInvalidRequest, j.ID)
		}
	}
	c, err := s.SchedulerConfig(nil)
	if err != nil {
		return err
	}
	if c != nil {
		if err := c.Validate(); err != nil {
			return fmt.Errorf("%w: scheduler_config.%w", structs.ErrInvalidRequest, err)
		}
	}
	return nil
}
