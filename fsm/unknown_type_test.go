package fsm

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/structs"
)

// unknownTypeNumber is a type number no applier has (and never will: the
// test below fails when appliers reaches it, so pick a higher one then).
const unknownTypeNumber structs.MessageType = 100

// applyRecover applies l and returns its response, or what Apply panicked
// with.
func applyRecover(f *FSM, l *raft.Log) (resp any, panicked any) {
	defer func() { panicked = recover() }()
	return f.Apply(l), nil
}

// TestFSM_Apply_UnknownTypePanics: an entry of a type this server does not
// know, without structs.IgnoreUnknownTypeFlag, panics (a newer server
// applied it; skipping it would make this server's state diverge), and
// writes nothing.
func TestFSM_Apply_UnknownTypePanics(t *testing.T) {
	f, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{
		{byte(unknownTypeNumber), '{', '}'},
		{byte(unknownTypeNumber)},      // no body
		{byte(unknownTypeNumber), '{'}, // a body that does not decode: still the type decides
		{byte(structs.IgnoreUnknownTypeFlag - 1), '{', '}'},
	} {
		resp, p := applyRecover(f, &raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		if p == nil {
			t.Fatalf("Apply(type %d) = %v, want a panic", data[0], resp)
		}
		if msg := fmt.Sprint(p); !strings.Contains(msg, fmt.Sprintf("unknown message type %d", data[0])) {
			t.Fatalf("panic %q does not name the type", msg)
		}
	}
	if got := f.State().LatestIndex(); got != 0 {
		t.Fatalf("the entry wrote state up to index %d", got)
	}
}

// TestFSM_Apply_UnknownIgnorableTypeSkipped: an unknown type carrying
// structs.IgnoreUnknownTypeFlag is logged and skipped: nil response, no
// state written, no panic.
func TestFSM_Apply_UnknownIgnorableTypeSkipped(t *testing.T) {
	var logs bytes.Buffer
	f, err := New(slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	raw := unknownTypeNumber | structs.IgnoreUnknownTypeFlag
	for i, data := range [][]byte{{byte(raw), '{', '}'}, {byte(raw)}, {byte(raw), '{'}} {
		resp, p := applyRecover(f, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: data})
		if p != nil || resp != nil {
			t.Fatalf("Apply(%q) = %v, panic %v; want nil and no panic", data, resp, p)
		}
	}
	if got := f.State().LatestIndex(); got != 0 {
		t.Fatalf("skipped entries wrote state up to index %d", got)
	}
	if !strings.Contains(logs.String(), "raft entry skipped") || !strings.Contains(logs.String(), fmt.Sprintf("type=%d", raw)) {
		t.Fatalf("the skip was not logged with its type:\n%s", logs.String())
	}
}

// TestFSM_Apply_KnownTypeWithIgnorableFlag: a server that knows the type
// applies the entry whether or not it carries the flag, and refuses a
// malformed body with ErrInvalidRequest (no panic).
func TestFSM_Apply_KnownTypeWithIgnorableFlag(t *testing.T) {
	h := newHarness(t)
	h.addNode("n1")
	req := &structs.NodeEligibilityRequest{WriteRequest: h.wr(), NodeID: "n1", Eligible: false}
	buf, err := structs.Encode(structs.NodeEligibilityRequestType|structs.IgnoreUnknownTypeFlag, req)
	if err != nil {
		t.Fatal(err)
	}
	h.index++
	if resp, p := applyRecover(h.f, &raft.Log{Index: h.index, Type: raft.LogCommand, Data: buf}); p != nil || errOf(resp) != nil {
		t.Fatalf("Apply = %v, panic %v", resp, p)
	}
	if n, err := h.f.State().NodeByID(nil, "n1"); err != nil || n == nil || n.Eligible {
		t.Fatalf("the flagged entry was not applied: %+v, %v", n, err)
	}
	bad := []byte{byte(structs.NodeEligibilityRequestType | structs.IgnoreUnknownTypeFlag), '{'}
	h.index++
	resp, p := applyRecover(h.f, &raft.Log{Index: h.index, Type: raft.LogCommand, Data: bad})
	if p != nil {
		t.Fatalf("a malformed body panicked: %v", p)
	}
	if err := errOf(resp); err == nil || !strings.Contains(err.Error(), "decode NodeEligibility entry") {
		t.Fatalf("Apply = %v, want the decode refusal", resp)
	}
}

// TestMessageType_BelowFlag: every type the FSM applies is a plain number
// below structs.IgnoreUnknownTypeFlag, and unknownTypeNumber stays unknown.
func TestMessageType_BelowFlag(t *testing.T) {
	for mt := range appliers {
		if mt.Ignorable() {
			t.Errorf("message type %d (%s) uses the ignorable flag bit as part of its number", uint8(mt), mt)
		}
	}
	if structs.StateRestoreRequestType.Ignorable() {
		t.Errorf("StateRestore uses the flag bit")
	}
	if _, ok := appliers[unknownTypeNumber]; ok {
		t.Fatalf("type %d now has an applier: raise unknownTypeNumber", uint8(unknownTypeNumber))
	}
	if got := (structs.NodeDrainRequestType | structs.IgnoreUnknownTypeFlag).String(); got != "NodeDrain+ignorable" {
		t.Errorf("String = %q", got)
	}
}
