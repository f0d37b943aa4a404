package server

import (
	"strings"
	"testing"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/gossip"
)

var lt0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func readyNode(id string, registered time.Time) *structs.Node {
	return &structs.Node{ID: id, Name: "build-" + id, Status: structs.NodeStatusReady, Eligible: true,
		Resources: structs.Resources{CPU: 4000, MemoryMB: 8192}, StatusUpdatedAt: registered,
		Attributes: map[string]string{"os": "linux", "label.zone": "a", "driver.exec": "true", "driver.exec.version": "1"},
		Drivers:    map[string]*structs.DriverInfo{"exec": {Detected: true, Healthy: true, Version: "1"}}}
}

func rec(id, member string, cpu int) *gossip.NodeRecord {
	return &gossip.NodeRecord{NodeID: id, Name: "build-" + id, Member: member, Version: 1,
		Resources: gossip.Resources{CPU: cpu, MemoryMB: 8192}, Labels: map[string]string{"zone": "a"},
		Drivers: map[string]gossip.DriverHealth{"exec": {Detected: true, Healthy: true}}}
}

func alive(name, nodeID string) gossip.Member {
	return gossip.Member{Name: name, Status: gossip.StatusAlive, Role: gossip.RoleClient, NodeID: nodeID}
}

func died(name, nodeID string, at time.Time) gossip.Member {
	return gossip.Member{Name: name, Status: gossip.StatusDead, Role: gossip.RoleClient, NodeID: nodeID, Since: at}
}

// TestLiveness_Plan covers each rule of the leader's node decisions; the
// leader term began at lt0, the TTL is 15s.
func TestLiveness_Plan(t *testing.T) {
	type want struct {
		down     bool
		reason   string // substring
		register bool
		cpu      int
	}
	tests := []struct {
		name string
		in   livenessInput
		want map[string]want
	}{
		{"alive member, record as committed: nothing", livenessInput{now: lt0.Add(time.Minute),
			nodes: []*structs.Node{readyNode("n1", lt0)}, members: []gossip.Member{alive("m1", "n1")},
			records: []*gossip.NodeRecord{rec("n1", "m1", 4000)}}, nil},
		{"alive member, capacity changed: register", livenessInput{now: lt0.Add(time.Minute),
			nodes: []*structs.Node{readyNode("n1", lt0)}, members: []gossip.Member{alive("m1", "n1")},
			records: []*gossip.NodeRecord{rec("n1", "m1", 8000)}}, map[string]want{"n1": {register: true, cpu: 8000}}},
		{"member died after the registration: down at once", livenessInput{now: lt0.Add(2 * time.Second),
			nodes: []*structs.Node{readyNode("n1", lt0)}, members: []gossip.Member{died("m1", "n1", lt0.Add(time.Second))}},
			map[string]want{"n1": {down: true, reason: "gossip member m1 failed"}}},
		{"member left: down at once", livenessInput{now: lt0.Add(2 * time.Second),
			nodes:   []*structs.Node{readyNode("n1", lt0)},
			members: []gossip.Member{{Name: "m1", Status: gossip.StatusLeft, NodeID: "n1", Since: lt0.Add(time.Second)}}},
			map[string]want{"n1": {down: true, reason: "left"}}},
		{"old member died before the node registered again: nothing", livenessInput{now: lt0.Add(20 * time.Second),
			nodes: []*structs.Node{readyNode("n1", lt0.Add(10*time.Second))}, members: []gossip.Member{died("m1", "n1", lt0.Add(5*time.Second))}},
			nil},
		{"dead old member, living new one: nothing", livenessInput{now: lt0.Add(20 * time.Second),
			nodes:   []*structs.Node{readyNode("n1", lt0)},
			members: []gossip.Member{died("m1", "n1", lt0.Add(5*time.Second)), alive("m2", "n1")}}, nil},
		{"no gossip, recent heartbeat: nothing", livenessInput{now: lt0.Add(time.Minute),
			nodes: []*structs.Node{readyNode("n1", lt0)}, heartbeats: map[string]time.Time{"n1": lt0.Add(50 * time.Second)}}, nil},
		{"no gossip, heartbeat older than the TTL: down", livenessInput{now: lt0.Add(time.Minute),
			nodes: []*structs.Node{readyNode("n1", lt0)}, heartbeats: map[string]time.Time{"n1": lt0.Add(40 * time.Second)}},
			map[string]want{"n1": {down: true, reason: "no heartbeat or gossip for 15s"}}},
		{"silent since before this leader: a full TTL from the term's start", livenessInput{now: lt0.Add(10 * time.Second),
			nodes: []*structs.Node{readyNode("n1", lt0.Add(-time.Hour))}}, nil},
		{"down node whose member is alive again: ready", livenessInput{now: lt0.Add(time.Minute),
			nodes:   []*structs.Node{func() *structs.Node { n := readyNode("n1", lt0); n.Status = structs.NodeStatusDown; return n }()},
			members: []gossip.Member{alive("m2", "n1")}, records: []*gossip.NodeRecord{rec("n1", "m2", 4000)}},
			map[string]want{"n1": {register: true, cpu: 4000}}},
		{"unknown node in gossip: registered", livenessInput{now: lt0.Add(time.Minute),
			members: []gossip.Member{alive("m9", "n9")}, records: []*gossip.NodeRecord{rec("n9", "m9", 2000)}},
			map[string]want{"n9": {register: true, cpu: 2000}}},
		{"a dead member's record speaks for nobody", livenessInput{now: lt0.Add(time.Minute),
			members: []gossip.Member{died("m9", "n9", lt0)}, records: []*gossip.NodeRecord{rec("n9", "m9", 2000)}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLiveness(15*time.Second, 5*time.Second, lt0)
			got := l.plan(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("plan = %+v, want %d actions", got, len(tt.want))
			}
			for _, a := range got {
				w, ok := tt.want[a.nodeID]
				if !ok || a.down != w.down || (a.register != nil) != w.register || !strings.Contains(a.reason, w.reason) {
					t.Fatalf("action %+v, want %+v", a, w)
				}
				if w.register && (a.register.Resources.CPU != w.cpu || a.register.Status != structs.NodeStatusReady) {
					t.Fatalf("registers %+v, want ready with cpu %d", a.register, w.cpu)
				}
			}
		})
	}
}

// TestLiveness_RateLimit: one entry per node per interval; what changes
// meanwhile is coalesced into the next allowed one.
func TestLiveness_RateLimit(t *testing.T) {
	l := newLiveness(15*time.Second, 5*time.Second, lt0)
	n := readyNode("n1", lt0)
	in := func(now time.Time, cpu int) livenessInput {
		return livenessInput{now: now, nodes: []*structs.Node{n}, members: []gossip.Member{alive("m1", "n1")},
			records: []*gossip.NodeRecord{rec("n1", "m1", cpu)}}
	}
	acts := l.plan(in(lt0.Add(time.Second), 5000))
	if len(acts) != 1 {
		t.Fatalf("first change: %+v", acts)
	}
	l.wrote("n1", lt0.Add(time.Second))
	for i, cpu := range []int{6000, 7000, 8000} { // flapping within the window
		if acts := l.plan(in(lt0.Add(time.Duration(2+i)*time.Second), cpu)); len(acts) != 0 {
			t.Fatalf("change %d inside the window was written: %+v", i, acts)
		}
	}
	acts = l.plan(in(lt0.Add(6*time.Second), 8000))
	if len(acts) != 1 || acts[0].register.Resources.CPU != 8000 {
		t.Fatalf("after the window: %+v, want one register with the latest capacity", acts)
	}
}

// TestNodeFromRecord keeps what the record does not carry and replaces
// what it does.
func TestNodeFromRecord(t *testing.T) {
	old := readyNode("n1", lt0)
	old.Eligible, old.Drain = false, true
	old.Attributes["cpu.cores"] = "4"
	old.Drivers["docker"] = &structs.DriverInfo{Detected: true}
	old.Attributes["driver.docker"] = "false"
	r := rec("n1", "m1", 6000)
	r.Labels = map[string]string{"arch": "arm"}
	r.Reserved = gossip.Resources{CPU: 500, MemoryMB: 256}
	n := nodeFromRecord(old, r, lt0)
	switch {
	case n.Eligible || !n.Drain:
		t.Fatalf("eligibility/drain not kept: %+v", n)
	case n.Attributes["label.zone"] != "" || n.Attributes["label.arch"] != "arm":
		t.Fatalf("labels not replaced: %v", n.Attributes)
	case n.Attributes["cpu.cores"] != "4" || n.Attributes["driver.exec.version"] != "1" || n.Drivers["exec"].Version != "1":
		t.Fatalf("attributes the record does not carry were lost: %v %+v", n.Attributes, n.Drivers["exec"])
	case n.Drivers["docker"] != nil || n.Attributes["driver.docker"] != "":
		t.Fatalf("a driver the record does not list stayed: %+v", n.Drivers)
	case n.Reserved.CPU != 500 || n.Resources.CPU != 6000:
		t.Fatalf("capacity: %+v / %+v", n.Resources, n.Reserved)
	}
	if old.Attributes["label.zone"] != "a" {
		t.Fatal("nodeFromRecord changed the committed node")
	}
	if recordDiffers(n, r) {
		t.Fatal("a node built from a record differs from it")
	}
}
