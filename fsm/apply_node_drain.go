package fsm

import (
	"fmt"
	"time"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// applyNodeDrain starts, changes or ends a node's drain (see
// structs.NodeDrainRequest). Ending a drain that an operator asked for
// makes the node eligible again; a drain the leader completes leaves it
// ineligible. Completing a node that is not draining is ErrConflict, so a
// stale completion cannot undo a newer operator's choice.
func applyNodeDrain(tx *state.WriteTxn, req *structs.NodeDrainRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	n, err := nodeFor(tx, req.NodeID)
	if err != nil {
		return nil, err
	}
	c := n.Copy()
	switch {
	case req.Enable:
		c.Drain = true
		c.DrainDeadline = req.Deadline
	case req.Complete:
		if !n.Drain {
			return nil, fmt.Errorf("%w: node %s is not draining", structs.ErrConflict, req.NodeID)
		}
		c.Drain = false
		c.DrainDeadline = time.Time{}
		c.Eligible = false
	default:
		c.Drain = false
		c.DrainDeadline = time.Time{}
		c.Eligible = true
	}
	if err := tx.UpsertNode(c); err != nil {
		return nil, err
	}
	if capacityChanged(n, c) {
		ac.emitCapacity(c)
	}
	return ac.done(nil)
}

// applyNodeEligibility turns scheduling on a node on or off.
func applyNodeEligibility(tx *state.WriteTxn, req *structs.NodeEligibilityRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	n, err := nodeFor(tx, req.NodeID)
	if err != nil {
		return nil, err
	}
	if n.Eligible == req.Eligible {
		return ac.done(nil)
	}
	c := n.Copy()
	c.Eligible = req.Eligible
	if err := tx.UpsertNode(c); err != nil {
		return nil, err
	}
	ac.emitCapacity(c)
	return ac.done(nil)
}

// applyNodeDrainDeadline stops what a drained node still runs once its
// deadline passed: each live allocation gets desired status stop (its
// client destroys the worker and reports), and the job it runs ends its
// attempt TERMINATED and goes straight back to PENDING with an evaluation
// that does not wait. The move counts in Job.Rescheduled, against neither
// the retry nor the reschedule policy: the job did nothing wrong and the
// operator asked for it (rescheduleAfterFault, cause drained).
func applyNodeDrainDeadline(tx *state.WriteTxn, req *structs.NodeDrainDeadlineRequest) (any, error) {
	ac := newApplyCtx(tx, req.Timestamp)
	n, err := nodeFor(tx, req.NodeID)
	if err != nil {
		return nil, err
	}
	if !n.Drain || n.DrainDeadline.IsZero() || req.Timestamp.Before(n.DrainDeadline) {
		return nil, fmt.Errorf("%w: node %s has no drain deadline that passed", structs.ErrConflict, req.NodeID)
	}
	name := n.Name
	if name == "" {
		name = n.ID
	}
	reason := fmt.Sprintf("node %s drained: deadline passed", name)
	allocs, err := tx.AllocsByNode(n.ID)
	if err != nil {
		return nil, err
	}
	for _, a := range allocs {
		if !a.Live() || a.DesiredStatus == structs.AllocDesiredStop {
			continue
		}
		stop := a.Copy()
		stop.DesiredStatus = structs.AllocDesiredStop
		if err := tx.UpsertAlloc(stop); err != nil {
			return nil, err
		}
		j, err := tx.JobByID(a.JobID)
		if err != nil {
			return nil, err
		}
		if j == nil || j.AllocID != a.ID || (j.State != structs.JobScheduled && j.State != structs.JobRunning) {
			continue
		}
		if err := ac.rescheduleAfterFault(j.Copy(), structs.CauseDrained, reason); err != nil {
			return nil, err
		}
	}
	return ac.done(nil)
}

// nodeFor reads a node that must exist.
func nodeFor(tx *state.WriteTxn, id string) (*structs.Node, error) {
	n, err := tx.NodeByID(id)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, fmt.Errorf("node %q: %w", id, structs.ErrNotFound)
	}
	return n, nil
}

// revivesLost reports whether a client report would bring a lost
// allocation back to life. Once its node was declared down, an allocation
// stays lost until its client says how it ended (complete or failed): a
// late "running" from a client that was cut off must not make it count
// against the node again, nor list it to that client as work to do.
func revivesLost(a *structs.Allocation, status string) bool {
	return a.ClientStatus == structs.AllocClientLost &&
		status != structs.AllocClientComplete && status != structs.AllocClientFailed
}
