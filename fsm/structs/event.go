package structs

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event topics: the NATS subjects of DESIGN.md. An event's Topic is one of
// them, so a consumer filters the event stream API, the WebSocket feed and
// the JetStream stream (CIPLAT_EVENTS on domain.>) with the same names.
const (
	TopicJobRequested  = "domain.pipeline.job.requested"
	TopicJobStarted    = "domain.pipeline.job.started"
	TopicJobCompleted  = "domain.pipeline.job.completed"
	TopicJobFailed     = "domain.pipeline.job.failed"
	TopicJobCancelled  = "domain.pipeline.job.cancelled"
	TopicStepStarted   = "domain.pipeline.step.started"
	TopicStepCompleted = "domain.pipeline.step.completed"
	TopicStepFailed    = "domain.pipeline.step.failed"

	TopicOfferCreated      = "domain.scheduler.offer.created"
	TopicAssignmentCreated = "domain.scheduler.assignment.created"
	TopicCapacityUpdated   = "domain.scheduler.capacity.updated"

	TopicWorkerCreated    = "domain.provider.worker.created"
	TopicWorkerTerminated = "domain.provider.worker.terminated"
	TopicWorkerFailed     = "domain.provider.worker.failed"
)

// AllEventTopics lists every topic the FSM emits, in a fixed order.
var AllEventTopics = []string{
	TopicJobRequested, TopicJobStarted, TopicJobCompleted, TopicJobFailed, TopicJobCancelled,
	TopicStepStarted, TopicStepCompleted, TopicStepFailed,
	TopicOfferCreated, TopicAssignmentCreated, TopicCapacityUpdated,
	TopicWorkerCreated, TopicWorkerTerminated, TopicWorkerFailed,
}

// Event is one domain event: something a committed Raft entry changed. The
// FSM builds events inside Apply, from what it wrote and the entry's
// timestamp only (no clock, no I/O), and stores them in the state's events
// table in the same transaction; publishers (NATS, the event stream API, the
// WebSocket feed) read them after commit.
//
// (Index, Seq) identifies an event for ever: the Raft index of the entry
// that made it and its position among that entry's events (from 0). The NATS
// message ID is ID().
type Event struct {
	Index uint64 `json:"index"`
	Seq   uint64 `json:"seq"`
	// Topic is the NATS subject, e.g. domain.pipeline.job.started.
	Topic string `json:"topic"`
	// Type is the short CamelCase name of the topic, e.g. JobStarted.
	Type string `json:"type"`
	// Key is the ID of the thing the event is about: the job for job, step,
	// offer and assignment events, the node for capacity events, the
	// allocation for worker events.
	Key        string `json:"key"`
	PipelineID string `json:"pipeline_id,omitempty"`
	JobID      string `json:"job_id,omitempty"`
	NodeID     string `json:"node_id,omitempty"`
	// Payload is the JSON of one of the *Payload types below, by topic.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Time is the timestamp of the Raft entry (the leader's clock when it
	// proposed the entry), not the time the event was read or published.
	Time time.Time `json:"time"`
}

// ID is "<raft index>-<seq>": unique per event, the JetStream Nats-Msg-Id.
func (e *Event) ID() string { return fmt.Sprintf("%d-%d", e.Index, e.Seq) }

// ParseEventID parses ID's form back to (index, seq).
func ParseEventID(s string) (index, seq uint64, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("event ID %q: want <raft index>-<seq>", s)
	}
	if _, err := fmt.Sscan(a, &index); err != nil {
		return 0, 0, fmt.Errorf("event ID %q: index: %w", s, err)
	}
	if _, err := fmt.Sscan(b, &seq); err != nil {
		return 0, 0, fmt.Errorf("event ID %q: seq: %w", s, err)
	}
	return index, seq, nil
}

// After reports whether e comes after the position (index, seq).
func (e *Event) After(index, seq uint64) bool {
	return e.Index > index || (e.Index == index && e.Seq > seq)
}

// EventType is the short name of a topic: domain.pipeline.job.started →
// JobStarted.
func EventType(topic string) string {
	parts := strings.Split(topic, ".")
	if len(parts) < 2 {
		return topic
	}
	var b strings.Builder
	for _, p := range parts[len(parts)-2:] {
		if p == "" {
			continue
		}
		b.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	return b.String()
}

// JobEventPayload is the payload of domain.pipeline.job.* events.
type JobEventPayload struct {
	Name    string   `json:"name"`
	State   JobState `json:"state"`
	Attempt int      `json:"attempt"`
	Reason  string   `json:"reason,omitempty"`
	AllocID string   `json:"alloc_id,omitempty"`
	NodeID  string   `json:"node_id,omitempty"`
	// Final is false on job.failed when the job will be retried or
	// rescheduled.
	Final *bool `json:"final,omitempty"`
	// Kind, on a job.failed that is not final and on the job.requested
	// that follows it, is "retry" (the job's own failure, retry policy) or
	// "reschedule" (an infrastructure fault, reschedule policy); Cause
	// names the fault (node-lost, worker-lost, create-failed, preempted,
	// drained).
	Kind    string    `json:"kind,omitempty"`
	Cause   string    `json:"cause,omitempty"`
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Trigger says why a job was requested: job-register or retry.
	Trigger string `json:"trigger,omitempty"`
}

// StepEventPayload is the payload of domain.pipeline.step.* events.
type StepEventPayload struct {
	Job        string    `json:"job"`
	Step       string    `json:"step"`
	State      StepState `json:"state"`
	Attempt    int       `json:"attempt"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// OfferEventPayload is the payload of domain.scheduler.offer.created: the
// node the scheduler chose for a job, and the best offers it compared.
type OfferEventPayload struct {
	Job       string  `json:"job"`
	EvalID    string  `json:"eval_id,omitempty"`
	NodeID    string  `json:"node_id"`
	Score     float64 `json:"score"`
	TopOffers []Offer `json:"top_offers,omitempty"`
}

// AssignmentEventPayload is the payload of
// domain.scheduler.assignment.created: the committed allocation.
type AssignmentEventPayload struct {
	Job       string    `json:"job"`
	AllocID   string    `json:"alloc_id"`
	NodeID    string    `json:"node_id"`
	Attempt   int       `json:"attempt"`
	Resources Resources `json:"resources"`
}

// CapacityEventPayload is the payload of domain.scheduler.capacity.updated:
// a node's record after it registered or changed status.
type CapacityEventPayload struct {
	Name      string    `json:"name"`
	Status    string    `json:"status"`
	Eligible  bool      `json:"eligible"`
	Drain     bool      `json:"drain,omitempty"`
	Resources Resources `json:"resources"`
	Reserved  Resources `json:"reserved"`
	Drivers   []string  `json:"drivers,omitempty"`
}

// WorkerEventPayload is the payload of domain.provider.worker.*: the worker
// (allocation) a client runs a job attempt in.
type WorkerEventPayload struct {
	Job          string `json:"job"`
	JobName      string `json:"job_name,omitempty"`
	NodeID       string `json:"node_id"`
	Attempt      int    `json:"attempt"`
	ClientStatus string `json:"client_status"`
	Reason       string `json:"reason,omitempty"`
	// Driver, WorkerID and Image are what the client reported of the
	// worker so far.
	Driver   string `json:"driver,omitempty"`
	WorkerID string `json:"worker_id,omitempty"`
	Image    string `json:"image,omitempty"`
}
