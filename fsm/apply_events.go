package fsm

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
)

// The domain events of an entry are built here, from what the apply
// functions changed, and stored by applyCtx.done in the same transaction.
// Everything is a pure function of the rows and the entry's timestamp.

// emit queues one event of the entry being applied.
func (ac *applyCtx) emit(topic, key, pipelineID, jobID, nodeID string, payload any) {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err == nil { // the payload types always marshal
			raw = b
		}
	}
	ac.events = append(ac.events, &structs.Event{
		Topic:      topic,
		Type:       structs.EventType(topic),
		Key:        key,
		PipelineID: pipelineID,
		JobID:      jobID,
		NodeID:     nodeID,
		Payload:    raw,
		Time:       ac.ts,
	})
}

// emitJob queues a domain.pipeline.job.* event for j as it is now.
func (ac *applyCtx) emitJob(topic string, j *structs.Job, mod func(*structs.JobEventPayload)) {
	p := &structs.JobEventPayload{
		Name: j.Name, State: j.State, Attempt: j.Attempt, Reason: j.Reason,
		AllocID: j.AllocID, NodeID: j.NodeID,
	}
	if mod != nil {
		mod(p)
	}
	ac.emit(topic, j.ID, j.PipelineID, j.ID, j.NodeID, p)
}

// stepChange is a step whose state a client report changed.
type stepChange struct {
	old, now structs.StepStatus
}

// changedSteps lists the reported steps of j whose state differs from the
// job's current one, in the job's step order.
func changedSteps(j *structs.Job, reported []structs.StepStatus) []stepChange {
	var out []stepChange
	for _, cur := range j.Steps {
		i := slices.IndexFunc(reported, func(s structs.StepStatus) bool { return s.Name == cur.Name })
		if i < 0 || reported[i].State == cur.State {
			continue
		}
		out = append(out, stepChange{old: cur, now: reported[i]})
	}
	return out
}

// emitSteps queues the step events of changes: step.started when a step
// left PENDING (also when it jumped straight to its end), then
// step.completed or step.failed when it ended.
func (ac *applyCtx) emitSteps(j *structs.Job, changes []stepChange) {
	for _, c := range changes {
		p := &structs.StepEventPayload{
			Job: j.Name, Step: c.now.Name, State: c.now.State, Attempt: j.Attempt,
			ExitCode: c.now.ExitCode, Reason: c.now.Reason,
			StartedAt: c.now.StartedAt, FinishedAt: c.now.FinishedAt,
		}
		key := j.ID
		started := c.old.State == structs.StepPending &&
			(c.now.State == structs.StepRunning || (!c.now.StartedAt.IsZero() && c.now.State != structs.StepSkipped))
		if started {
			sp := *p
			sp.State = structs.StepRunning
			sp.ExitCode, sp.Reason, sp.FinishedAt = nil, "", time.Time{}
			ac.emit(structs.TopicStepStarted, key, j.PipelineID, j.ID, j.NodeID, &sp)
		}
		switch c.now.State {
		case structs.StepSucceeded:
			ac.emit(structs.TopicStepCompleted, key, j.PipelineID, j.ID, j.NodeID, p)
		case structs.StepFailed:
			ac.emit(structs.TopicStepFailed, key, j.PipelineID, j.ID, j.NodeID, p)
		}
	}
}

// emitWorker queues the domain.provider.worker.* event of an allocation
// whose client status changed from old to a.ClientStatus.
func (ac *applyCtx) emitWorker(a *structs.Allocation, old, reason string) {
	topic := ""
	switch a.ClientStatus {
	case structs.AllocClientRunning:
		topic = structs.TopicWorkerCreated
	case structs.AllocClientComplete:
		topic = structs.TopicWorkerTerminated
	case structs.AllocClientFailed, structs.AllocClientLost:
		topic = structs.TopicWorkerFailed
	}
	if topic == "" || old == a.ClientStatus {
		return
	}
	if old == structs.AllocClientPending && topic != structs.TopicWorkerCreated && a.ClientStatus != structs.AllocClientLost {
		// The worker came and went between two reports: say it was created.
		ac.emitWorkerTopic(structs.TopicWorkerCreated, a, structs.AllocClientRunning, "")
	}
	ac.emitWorkerTopic(topic, a, a.ClientStatus, reason)
}

func (ac *applyCtx) emitWorkerTopic(topic string, a *structs.Allocation, status, reason string) {
	p := &structs.WorkerEventPayload{
		Job: a.JobID, NodeID: a.NodeID, Attempt: a.Attempt, ClientStatus: status, Reason: reason,
	}
	if j, err := ac.tx.JobByID(a.JobID); err == nil && j != nil {
		p.JobName = j.Name
	}
	if a.Worker != nil {
		p.Driver, p.WorkerID, p.Image = a.Worker.Driver, a.Worker.HandleID, a.Worker.Image
	}
	ac.emit(topic, a.ID, a.PipelineID, a.JobID, a.NodeID, p)
}

// emitCapacity queues domain.scheduler.capacity.updated for a node.
func (ac *applyCtx) emitCapacity(n *structs.Node) {
	drivers := make([]string, 0, len(n.Drivers))
	for name, d := range n.Drivers {
		if d != nil && d.Detected && d.Healthy {
			drivers = append(drivers, name)
		}
	}
	slices.Sort(drivers)
	ac.emit(structs.TopicCapacityUpdated, n.ID, "", "", n.ID, &structs.CapacityEventPayload{
		Name: n.Name, Status: n.Status, Eligible: n.Eligible, Drain: n.Drain,
		Resources: n.Resources, Reserved: n.Reserved, Drivers: drivers,
	})
}

// emitPlacement queues offer.created and assignment.created for a
// committed placement of job j (already SCHEDULED) on allocation a.
func (ac *applyCtx) emitPlacement(j *structs.Job, a *structs.Allocation, evalID string) {
	offer := &structs.OfferEventPayload{Job: j.Name, EvalID: evalID, NodeID: a.NodeID, Score: a.Score}
	if j.Placement != nil {
		offer.TopOffers = j.Placement.TopOffers
	}
	ac.emit(structs.TopicOfferCreated, j.ID, j.PipelineID, j.ID, a.NodeID, offer)
	ac.emit(structs.TopicAssignmentCreated, j.ID, j.PipelineID, j.ID, a.NodeID, &structs.AssignmentEventPayload{
		Job: j.Name, AllocID: a.ID, NodeID: a.NodeID, Attempt: a.Attempt, Resources: a.Resources,
	})
}
