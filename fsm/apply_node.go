package fsm

import (
	"fmt"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyNodeRegister adds a node or replaces its record, keeping its
// CreateIndex.
func applyNodeRegister(tx *state.WriteTxn, req *structs.NodeRegisterRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	if req.Node == nil || req.Node.ID == "" {
		return nil, fmt.Errorf("register node: the request has no node or no node ID")
	}
	n := req.Node.Copy()
	if n.StatusUpdatedAt.IsZero() {
		n.StatusUpdatedAt = ac.ts
	}
	old, err := tx.NodeByID(n.ID)
	if err != nil {
		return nil, err
	}
	if err := tx.UpsertNode(n); err != nil {
		return nil, err
	}
	if capacityChanged(old, n) {
		ac.emitCapacity(n)
	}
	return ac.done(nil)
}

// applyNodeStatusUpdate marks a node ready or down. When it goes down, its
// live allocations are lost and their jobs TERMINATED, then rescheduled per
// their reschedule policy (never their retry policy: the job did nothing
// wrong) or ended (their dependents skipped). An entry without Rules keeps
// the rules it was written with: the jobs are retried per their retry
// policy.
func applyNodeStatusUpdate(tx *state.WriteTxn, req *structs.NodeStatusUpdateRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	ac.rules = req.Rules
	if req.Status != structs.NodeStatusReady && req.Status != structs.NodeStatusDown {
		return nil, fmt.Errorf("node %s: status %q is not %q or %q", req.NodeID, req.Status, structs.NodeStatusReady, structs.NodeStatusDown)
	}
	n, err := tx.NodeByID(req.NodeID)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("node %q: %w", req.NodeID, structs.ErrNotFound)
	}
	c := n.Copy()
	c.Status = req.Status
	c.StatusUpdatedAt = ac.ts
	if err := tx.UpsertNode(c); err != nil {
		return nil, err
	}
	if capacityChanged(n, c) {
		ac.emitCapacity(c)
	}
	if req.Status == structs.NodeStatusDown {
		if err := ac.loseNode(c); err != nil {
			return nil, err
		}
	}
	return ac.done(nil)
}

// loseNode marks the node's live allocations lost and reschedules the jobs
// they were running (rescheduleAfterFault, cause node-lost).
func (ac *applyCtx) loseNode(n *structs.Node) error {
	name := n.Name
	if name == "" {
		name = n.ID
	}
	reason := fmt.Sprintf("node %s down", name)
	allocs, err := ac.tx.AllocsByNode(n.ID)
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if !a.Live() {
			continue
		}
		lost := a.Copy()
		lost.ClientStatus = structs.AllocClientLost
		if err := ac.tx.UpsertAlloc(lost); err != nil {
			return err
		}
		ac.emitWorker(lost, a.ClientStatus, reason)
		j, err := ac.tx.JobByID(a.JobID)
		if err != nil {
			return err
		}
		if j == nil || j.AllocID != a.ID || (j.State != structs.JobScheduled && j.State != structs.JobRunning) {
			continue
		}
		if ac.rules < structs.RulesV1 {
			if err := ac.loseJobV0(j.Copy(), reason); err != nil {
				return err
			}
			continue
		}
		if err := ac.rescheduleAfterFault(j.Copy(), structs.CauseNodeLost, reason); err != nil {
			return err
		}
	}
	return nil
}

// loseJobV0 is a lost node's job under an entry without Rules: TERMINATED,
// then retried per its retry policy (attemptFailed), as before issue 12.
func (ac *applyCtx) loseJobV0(c *structs.Job, reason string) error {
	if err := move(c, structs.JobTerminated); err != nil {
		return err
	}
	c.Reason = reason
	return ac.attemptFailed(c, structs.JobTerminated, reason)
}

// capacityChanged reports whether a node's record changed in a way the
// scheduler cares about (so a re-registration that changes nothing emits no
// capacity event).
func capacityChanged(old, n *structs.Node) bool {
	if old == nil {
		return true
	}
	if old.Status != n.Status || old.Eligible != n.Eligible || old.Drain != n.Drain ||
		old.Resources != n.Resources || old.Reserved != n.Reserved || len(old.Drivers) != len(n.Drivers) {
		return true
	}
	for name, d := range n.Drivers {
		o, ok := old.Drivers[name]
		if !ok || (o == nil) != (d == nil) || (o != nil && (o.Detected != d.Detected || o.Healthy != d.Healthy)) {
			return true
		}
	}
	return false
}
