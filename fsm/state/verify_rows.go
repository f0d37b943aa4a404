package state

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/structs"
)

// CheckRow holds one restored row to what entries must satisfy, for the
// rows that readers follow pointers in: a node's driver entries, a
// pipeline's and a job's spec, the scheduler configuration. A snapshot
// saved by a ciplat server always passes; a hand-made one that would crash
// the scheduler or Apply later is refused before it is installed. Verify
// runs it on every row of an operator's upload; the FSM runs it on a
// restore entry. It reads only the row, so every server decides alike.
func CheckRow(table string, row any) error {
	switch r := row.(type) {
	case *structs.Node:
		return r.Validate(fmt.Sprintf("nodes[%q]", r.ID))
	case *structs.Pipeline:
		if r.Spec == nil {
			return fmt.Errorf("%w: pipelines[%q].spec: missing", structs.ErrInvalidRequest, r.ID)
		}
		for i, j := range r.Spec.Jobs {
			if j == nil {
				return fmt.Errorf("%w: pipelines[%q].spec.jobs[%d]: null", structs.ErrInvalidRequest, r.ID, i)
			}
		}
	case *structs.Job:
		if r.Spec == nil {
			return fmt.Errorf("%w: jobs[%q].spec: missing", structs.ErrInvalidRequest, r.ID)
		}
	case *structs.SchedulerConfig:
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%w: scheduler_config.%w", structs.ErrInvalidRequest, err)
		}
	}
	return nil
}
