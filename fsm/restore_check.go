package fsm

import (
	"github.com/ciplat/ciplat/fsm/state"
)

// checkRestored holds an operator's snapshot (a StateRestore entry) to
// state.CheckRow, row by row, for the rows that readers follow pointers in
// (nodes, pipelines, jobs, the scheduler configuration), before it is
// swapped in. The HTTP restore path runs the same check in state.Verify. It
// reads only the restored store, so every server decides alike.
func checkRestored(s *state.StateStore) error {
	nodes, err := s.Nodes(nil)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if err := state.CheckRow(state.TableNodes, n); err != nil {
			return err
		}
	}
	pipelines, err := s.Pipelines(nil)
	if err != nil {
		return err
	}
	for _, p := range pipelines {
		if err := state.CheckRow(state.TablePipelines, p); err != nil {
			return err
		}
	}
	jobs, err := s.Jobs(nil)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := state.CheckRow(state.TableJobs, j); err != nil {
			return err
		}
	}
	c, err := s.SchedulerConfig(nil)
	if err != nil || c == nil {
		return err
	}
	return state.CheckRow(state.TableSchedulerConfig, c)
}
