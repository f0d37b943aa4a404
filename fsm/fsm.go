// Package fsm is ciplat's Raft finite state machine: the only writer of
// cluster state. Every committed log entry is one message-type byte and a
// JSON request (structs.Encode); Apply decodes it, runs the matching apply
// function inside one state store transaction, and returns a typed response
// or an error value (raft hands either back through ApplyFuture.Response).
//
// Apply is a pure function of (state, entry): no clock, no randomness, no
// I/O. Timestamps come from the request's WriteRequest, IDs from the request
// or from structs.EvalID(index, jobID), so every server reaches the same
// state and any bug replays from the log. The linter holds fsm/ and its
// sub-packages to it (depguard rule "fsm-pure": no uuid, math/rand, net,
// os) and so does TestFSM_NoClock (no time.Now or other clock read).
//
// An entry of a message type this server does not know (written by a newer
// server) panics unless its type carries structs.IgnoreUnknownTypeFlag, in
// which case it is logged and skipped (Nomad's rule; structs.MessageType
// says how to add a type).
package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/state"
	"github.com/ciplat/ciplat/fsm/structs"
)

// FSM applies Raft entries to a state store.
//
// Concurrency (raft's contract): Apply, ApplyBatch, Snapshot and Restore are
// called from raft's one FSM goroutine; FSMSnapshot.Persist runs beside
// Apply. Any goroutine may call State; the store is replaced by Restore, so
// call State for each read instead of keeping the pointer.
type FSM struct {
	logger *slog.Logger
	state  atomic.Pointer[state.StateStore]
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.BatchingFSM = (*FSM)(nil)
)

// New returns an FSM over an empty state store. A nil logger discards.
func New(logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := state.NewStateStore()
	if err != nil {
		return nil, err
	}
	f := &FSM{logger: logger}
	f.state.Store(s)
	return f, nil
}

// State returns the current state store.
func (f *FSM) State() *state.StateStore { return f.state.Load() }

// applyFunc applies one decoded-type entry at a Raft index.
type applyFunc func(s *state.StateStore, index uint64, buf []byte) (any, error)

// appliers maps each message type to its apply function. Message types are
// append-only (structs.MessageType): add, never renumber or remove. A type
// missing here panics in Apply unless the entry carries
// structs.IgnoreUnknownTypeFlag (see apply).
var appliers = map[structs.MessageType]applyFunc{
	structs.PipelineRegisterRequestType:  entry(applyPipelineRegister),
	structs.PlanApplyRequestType:         entry(applyPlan),
	structs.AllocClientUpdateRequestType: entry(applyAllocClientUpdate),
	structs.PipelineCancelRequestType:    entry(applyPipelineCancel),
	structs.NodeRegisterRequestType:      entry(applyNodeRegister),
	structs.NodeStatusUpdateRequestType:  entry(applyNodeStatusUpdate),
	structs.EvalUpdateRequestType:        entry(applyEvalUpdate),
	structs.NodeDrainRequestType:         entry(applyNodeDrain),
	structs.NodeEligibilityRequestType:   entry(applyNodeEligibility),
	structs.NodeDrainDeadlineRequestType: entry(applyNodeDrainDeadline),
	structs.SchedulerConfigRequestType:   entry(applySchedulerConfig),
	structs.WorkerStopRequestType:        entry(applyWorkerStop),

	structs.IdempotencyKeySweepRequestType: entry(applyIdempotencyKeySweep), // apply_idempotency.go
}

// entry turns a typed apply function into an applyFunc: it decodes the
// request, checks it with its Validate (structs.RequestValidator), and runs
// fn in one write transaction, committed only when fn succeeds. An entry
// that does not decode or validate is refused with
// structs.ErrInvalidRequest before fn sees it: the same on every server,
// since both checks read nothing but the entry.
func entry[R any, PR interface {
	*R
	structs.RequestValidator
}](fn func(tx *state.WriteTxn, req PR) (any, error)) applyFunc {
	return func(s *state.StateStore, index uint64, buf []byte) (any, error) {
		req := PR(new(R))
		if err := decodeValid(buf, req); err != nil {
			return nil, err
		}
		var resp any
		err := s.Write(index, func(tx *state.WriteTxn) error {
			var err error
			resp, err = fn(tx, req)
			return err
		})
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
}

// decodeValid decodes an entry into req and validates it; either failure
// wraps structs.ErrInvalidRequest.
func decodeValid(buf []byte, req structs.RequestValidator) error {
	t := structs.MessageType(buf[0]).Number()
	if err := structs.Decode(buf, req); err != nil {
		return fmt.Errorf("%w: decode %s entry: %v", structs.ErrInvalidRequest, t, err)
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%s entry: %w", t, err)
	}
	return nil
}

// Apply applies one committed entry. It returns the entry's response, or an
// error value when the entry was refused (nothing of it was written). It
// panics on an entry whose message type this server does not know unless
// the type carries structs.IgnoreUnknownTypeFlag (unknownType).
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return f.apply(l.Index, l.Data)
}

// ApplyBatch applies entries in order, each in its own transaction, so one
// refused entry does not undo the others.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = f.Apply(l)
	}
	return out
}

func (f *FSM) apply(index uint64, buf []byte) any {
	if len(buf) == 0 {
		err := fmt.Errorf("%w: apply entry %d: empty log entry", structs.ErrInvalidRequest, index)
		f.refused(structs.MessageType(0), index, err)
		return err
	}
	raw := structs.MessageType(buf[0])
	t := raw.Number()
	if t == structs.StateRestoreRequestType {
		return f.applyStateRestore(index, buf)
	}
	fn, ok := appliers[t]
	if !ok {
		return f.unknownType(raw, index)
	}
	resp, err := fn(f.State(), index, buf)
	if err != nil {
		f.refused(t, index, err)
		return err
	}
	return resp
}

// unknownType handles an entry whose type this server does not know, as
// Nomad does: a newer server wrote it. Flagged ignorable
// (structs.IgnoreUnknownTypeFlag), it is logged and skipped (nil
// response). Otherwise Apply panics: the other servers applied the entry,
// and skipping it would leave this one's state silently different from
// theirs; the server must be upgraded before it replays the log again.
// Only the type number decides this: a known type with a malformed body is
// refused (ErrInvalidRequest), never a panic.
func (f *FSM) unknownType(raw structs.MessageType, index uint64) any {
	if raw.Ignorable() {
		f.logger.Warn("raft entry skipped: unknown message type flagged ignorable (written by a newer server)",
			"type", uint8(raw), "index", index)
		return nil
	}
	f.logger.Error("raft entry of unknown message type; this server is older than the one that wrote it: upgrade it",
		"type", uint8(raw), "index", index)
	panic(fmt.Sprintf("fsm: apply entry %d: unknown message type %d (not flagged ignorable); upgrade this server", index, uint8(raw)))
}

// refused logs an entry Apply refused. A malformed entry (one no correct
// server proposes) is a warning, with its index so an operator can find it
// in the log; a refusal that depends on state (unknown ID, conflict) is
// the normal answer to a stale or racing request.
func (f *FSM) refused(t structs.MessageType, index uint64, err error) {
	if errors.Is(err, structs.ErrInvalidRequest) {
		f.logger.Warn("raft entry refused: malformed; nothing of it was applied",
			"type", t.String(), "index", index, "error", err)
		return
	}
	f.logger.Debug("raft entry refused", "type", t.String(), "index", index, "error", err)
}

// applyStateRestore replaces the whole state with the entry's snapshot, as
// Restore does for a Raft snapshot: the new store is built aside, with every
// table index set to index, and swapped in only when complete. It depends on
// nothing but the entry and its index.
func (f *FSM) applyStateRestore(index uint64, buf []byte) any {
	var req structs.StateRestoreRequest
	if err := decodeValid(buf, &req); err != nil {
		f.refused(structs.StateRestoreRequestType, index, err)
		return err
	}
	s, err := state.RestoreAt(bytes.NewReader(req.State), index)
	if err != nil {
		err = fmt.Errorf("%w: %v", structs.ErrInvalidRequest, err)
	} else {
		err = checkRestored(s)
	}
	if err != nil {
		err = fmt.Errorf("%s entry: %w", structs.StateRestoreRequestType, err)
		f.refused(structs.StateRestoreRequestType, index, err)
		return err
	}
	old := f.state.Swap(s)
	old.Abandon(s)
	return &structs.StateRestoreResponse{Index: index}
}

// Snapshot captures the current state; the costly write happens in Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	snap, err := f.State().Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{snap: snap}, nil
}

// Restore replaces the whole state with a snapshot's. The new store is built
// aside and swapped in only when complete; blocking queries on the old one
// move to the new one.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s, err := state.Restore(rc)
	if err != nil {
		return fmt.Errorf("restore FSM: %w", err)
	}
	old := f.state.Swap(s)
	old.Abandon(s)
	return nil
}

// fsmSnapshot is a point-in-time state waiting to be written to a sink.
type fsmSnapshot struct {
	snap *state.StateSnapshot
}

// Persist writes the state to sink and closes it, or cancels it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.Persist(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist FSM snapshot: %w", err)
	}
	return sink.Close()
}

// Release has nothing to free: the snapshot is garbage collected.
func (s *fsmSnapshot) Release() {}
