package server

import (
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/server/planapply"
)

// newPlanApplier builds the leader's plan applier (server/planapply) over
// this server's state, Raft, clock and scheduler metrics; leaderLoop runs
// it while this server leads.
func (s *Server) newPlanApplier() *planapply.Applier {
	m := s.metrics
	return planapply.New(planapply.Config{
		Queue: s.plans,
		// The state store is read anew each time: a snapshot restore
		// replaces it.
		Snapshot: func() (*state.StateSnapshot, error) { return s.State().Snapshot() },
		Propose:  s.proposePlan,
		Now:      s.now,
		Counters: planapply.Counters{
			Placements:        &m.placements,
			Conflicts:         &m.planConflicts,
			PipelineConflicts: &m.pipelineConflicts,
			Applies:           &m.planApplies,
			EvalsBlocked:      &m.evalsBlocked,
			Preemptions:       &m.preemptions,
		},
		Logger: s.log.With("component", "plan-applier"),
	})
}

// proposePlan proposes a plan entry to Raft without waiting; the returned
// function waits for it to apply and returns what the FSM returned, as
// Server.apply does.
func (s *Server) proposePlan(req *structs.PlanApplyRequest) (func() (any, error), error) {
	if s.raft.State() != raft.Leader {
		return nil, ErrNoLeader
	}
	req.StampRules()
	buf, err := structs.Encode(structs.PlanApplyRequestType, req)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(buf, 30*time.Second)
	return func() (any, error) {
		if err := s.waitRaft(f); err != nil {
			if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
				return nil, ErrNoLeader
			}
			return nil, err
		}
		resp := f.Response()
		if e, ok := resp.(error); ok {
			return nil, e
		}
		return resp, nil
	}, nil
}
