package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applySchedulerConfig replaces the scheduler configuration. A
// check-and-set whose index is not the stored one changes nothing and
// answers Applied false (not an error: the caller tells the user).
func applySchedulerConfig(tx *state.WriteTxn, req *structs.SchedulerConfigRequest) (any, error) {
	if req.Config == nil {
		return nil, fmt.Errorf("scheduler config: the request has no config")
	}
	if err := req.Config.Validate(); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	old, err := tx.SchedulerConfig()
	if err != nil {
		return nil, err
	}
	if req.CAS {
		var cur uint64
		if old != nil {
			cur = old.ModifyIndex
		}
		if cur != req.CASIndex {
			return &structs.SchedulerConfigResponse{Applied: false, Index: cur}, nil
		}
	}
	if err := tx.UpsertSchedulerConfig(req.Config.Copy()); err != nil {
		return nil, err
	}
	return &structs.SchedulerConfigResponse{Applied: true, Index: tx.Index()}, nil
}
