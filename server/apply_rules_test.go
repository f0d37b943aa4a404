package server

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TestServer_EntriesCarryApplyRules: every entry the server proposes,
// through apply or the plan applier, carries structs.CurrentRules in the
// Raft log, so a later binary applies it with this version's rules.
func TestServer_EntriesCarryApplyRules(t *testing.T) {
	ts := newTestServer(t, "")
	if ts.srv.raftStore == nil {
		t.Fatal("the test server has no raft-boltdb store to read the log from")
	}
	lastRules := func(want structs.MessageType) uint8 {
		t.Helper()
		var l raft.Log
		if err := ts.srv.raftStore.GetLog(ts.srv.raft.LastIndex(), &l); err != nil {
			t.Fatalf("GetLog: %v", err)
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || structs.MessageType(l.Data[0]) != want {
			t.Fatalf("last entry = type %v, data % x; want a %s command", l.Type, l.Data[:min(len(l.Data), 8)], want)
		}
		var w struct {
			Rules uint8 `json:"rules"`
		}
		if err := structs.Decode(l.Data, &w); err != nil {
			t.Fatalf("decode: %v", err)
		}
		return w.Rules
	}
	if _, _, err := ts.srv.apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{
		WriteRequest: structs.WriteRequest{Timestamp: ts.srv.now()},
		Node:         &structs.Node{ID: "n1", Status: structs.NodeStatusReady, Resources: structs.Resources{CPU: 1000, MemoryMB: 1024}}}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if r := lastRules(structs.NodeRegisterRequestType); r != structs.CurrentRules {
		t.Fatalf("node register entry rules = %d, want %d", r, structs.CurrentRules)
	}
	wait, err := ts.srv.proposePlan(&structs.PlanApplyRequest{WriteRequest: structs.WriteRequest{Timestamp: ts.srv.now()}})
	if err != nil {
		t.Fatalf("proposePlan: %v", err)
	}
	if _, err := wait(); err != nil {
		t.Fatalf("plan: %v", err)
	}
	if r := lastRules(structs.PlanApplyRequestType); r != structs.CurrentRules {
		t.Fatalf("plan entry rules = %d, want %d", r, structs.CurrentRules)
	}
}
