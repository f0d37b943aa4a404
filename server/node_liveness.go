package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ciplat/ciplat/fsm/structs"
	"github.com/ciplat/ciplat/gossip"
)

// The leader turns what it hears about client nodes — gossip members and
// records, API heartbeats — into Raft entries (DESIGN.md, "Gossip and
// capacity"):
//
//   - a node whose gossip member died or left after the node last
//     registered is marked down at once (NodeStatusUpdate);
//   - a node heard of neither through a living gossip member, a heartbeat
//     nor a registration for HeartbeatTTL is marked down;
//   - a living member's record that says something new about capacity,
//     reserved resources, driver health, labels or name (a join, a change,
//     a down node back) is registered (NodeRegister, status ready).
//
// At most one such entry per node per MinNodeUpdateInterval: a flapping
// node cannot flood the log. The decision is level-based (recomputed from
// the current state, pool and heartbeats on every change and tick), so
// whatever changes inside the window is coalesced: only the latest
// situation is written when the window ends. The scheduler never reads the
// gossip: it packs on committed allocations only.

// nodeAction is one entry the leader wants to write about a node.
type nodeAction struct {
	nodeID string
	// down marks the node down for reason; otherwise register is written.
	down     bool
	reason   string
	register *structs.Node
}

// livenessInput is what one decision looks at.
type livenessInput struct {
	now        time.Time
	nodes      []*structs.Node
	members    []gossip.Member
	records    []*gossip.NodeRecord
	heartbeats map[string]time.Time
}

// liveness decides which node entries the leader writes. It is a pure
// function of its input and its own memory of the entries it wrote (for
// the rate limit); one leader term owns one liveness, on one goroutine.
type liveness struct {
	ttl, minInterval time.Duration
	// since is when this leader term began: nodes get a full TTL from it,
	// since their heartbeats went to the previous leader.
	since time.Time
	last  map[string]time.Time // last entry written per node
}

func newLiveness(ttl, minInterval time.Duration, since time.Time) *liveness {
	return &liveness{ttl: ttl, minInterval: minInterval, since: since, last: map[string]time.Time{}}
}

// wrote records that an entry about node id was written at now.
func (l *liveness) wrote(id string, now time.Time) { l.last[id] = now }

// allowed reports whether the rate limit lets an entry about id be written.
func (l *liveness) allowed(id string, now time.Time) bool {
	last, ok := l.last[id]
	return !ok || now.Sub(last) >= l.minInterval
}

// plan returns the entries to write now, by node ID.
func (l *liveness) plan(in livenessInput) []nodeAction {
	alive := map[string]bool{}             // node IDs with a living member
	aliveMember := map[string]bool{}       // member names alive
	departed := map[string]gossip.Member{} // node ID → its latest departed member
	for _, m := range in.members {
		if m.NodeID == "" {
			continue
		}
		if m.Alive() {
			alive[m.NodeID] = true
			aliveMember[m.Name] = true
			continue
		}
		if d, ok := departed[m.NodeID]; !ok || m.Since.After(d.Since) {
			departed[m.NodeID] = m
		}
	}
	records := map[string]*gossip.NodeRecord{}
	for _, r := range in.records {
		// Only a living member's record speaks for its node: a dead
		// member's may be older than what the node registered since.
		if aliveMember[r.Member] {
			records[r.NodeID] = r
		}
	}

	var out []nodeAction
	known := map[string]bool{}
	for _, n := range in.nodes {
		known[n.ID] = true
		if !l.allowed(n.ID, in.now) {
			continue
		}
		rec := records[n.ID]
		switch {
		case n.Status == structs.NodeStatusReady && alive[n.ID]:
			if rec != nil && recordDiffers(n, rec) {
				out = append(out, nodeAction{nodeID: n.ID, register: nodeFromRecord(n, rec, in.now)})
			}
		case n.Status == structs.NodeStatusReady:
			if d, ok := departed[n.ID]; ok && !d.Since.Before(n.StatusUpdatedAt) {
				how := "failed"
				if d.Status == gossip.StatusLeft {
					how = "left"
				}
				out = append(out, nodeAction{nodeID: n.ID, down: true,
					reason: fmt.Sprintf("gossip member %s %s", d.Name, how)})
				continue
			}
			seen := latest(l.since, n.StatusUpdatedAt, in.heartbeats[n.ID])
			if in.now.Sub(seen) > l.ttl {
				out = append(out, nodeAction{nodeID: n.ID, down: true,
					reason: fmt.Sprintf("no heartbeat or gossip for %s", l.ttl)})
			}
		case alive[n.ID] && rec != nil:
			// A down node's member is alive again (the agent restarted,
			// or a false alarm was refuted): it is ready.
			out = append(out, nodeAction{nodeID: n.ID, register: nodeFromRecord(n, rec, in.now)})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(records)) {
		if !known[id] && l.allowed(id, in.now) {
			out = append(out, nodeAction{nodeID: id, register: nodeFromRecord(nil, records[id], in.now)})
		}
	}
	return out
}

func latest(ts ...time.Time) time.Time {
	var t time.Time
	for _, x := range ts {
		if x.After(t) {
			t = x
		}
	}
	return t
}

// recordDiffers reports whether a gossip record says something about the
// node that the scheduler uses and the committed record does not: name,
// capacity, reserved resources, labels, or which drivers are detected and
// healthy. Live load and driver reasons are not written to Raft.
func recordDiffers(n *structs.Node, r *gossip.NodeRecord) bool {
	if n.Name != recordName(r) ||
		n.Resources != (structs.Resources{CPU: r.Resources.CPU, MemoryMB: r.Resources.MemoryMB}) ||
		n.Reserved != (structs.Resources{CPU: r.Reserved.CPU, MemoryMB: r.Reserved.MemoryMB}) {
		return true
	}
	if !maps.Equal(labelsOf(n), r.Labels) && (len(r.Labels) > 0 || len(labelsOf(n)) > 0) {
		return true
	}
	if len(n.Drivers) != len(r.Drivers) {
		return true
	}
	for name, d := range r.Drivers {
		o := n.Drivers[name]
		if o == nil || o.Detected != d.Detected || o.Healthy != d.Healthy {
			return true
		}
	}
	return false
}

func recordName(r *gossip.NodeRecord) string {
	if r.Name == "" {
		return r.NodeID
	}
	return r.Name
}

func labelsOf(n *structs.Node) map[string]string {
	out := map[string]string{}
	for k, v := range n.Attributes {
		if l, ok := strings.CutPrefix(k, "label."); ok {
			out[l] = v
		}
	}
	return out
}

// nodeFromRecord is the node to register from a gossip record: the
// committed node (nil for a new one) with the record's name, capacity,
// reserved resources, labels and driver health, and status ready.
// Eligibility, drain and the attributes the record does not carry (driver
// attributes, cpu.cores) are kept.
func nodeFromRecord(old *structs.Node, r *gossip.NodeRecord, now time.Time) *structs.Node {
	var n *structs.Node
	if old != nil {
		n = old.Copy()
	} else {
		n = &structs.Node{ID: r.NodeID, Eligible: true, Attributes: map[string]string{}, Drivers: map[string]*structs.DriverInfo{}}
	}
	n.Name = recordName(r)
	n.Resources = structs.Resources{CPU: r.Resources.CPU, MemoryMB: r.Resources.MemoryMB}
	n.Reserved = structs.Resources{CPU: r.Reserved.CPU, MemoryMB: r.Reserved.MemoryMB}
	if n.Status != structs.NodeStatusReady {
		n.Status = structs.NodeStatusReady
		n.StatusUpdatedAt = now
	}
	for k := range n.Attributes {
		if strings.HasPrefix(k, "label.") {
			delete(n.Attributes, k)
		}
	}
	for k, v := range r.Labels {
		n.Attributes["label."+k] = v
	}
	for k, v := range map[string]string{"os": r.OS, "arch": r.Arch, "hostname": r.Hostname} {
		if v != "" {
			n.Attributes[k] = v
		}
	}
	for name := range n.Drivers {
		if _, ok := r.Drivers[name]; !ok {
			delete(n.Drivers, name)
			delete(n.Attributes, "driver."+name)
		}
	}
	for name, d := range r.Drivers {
		info := &structs.DriverInfo{Detected: d.Detected, Healthy: d.Healthy, Reason: d.Reason}
		if o := n.Drivers[name]; o != nil {
			info.Version = o.Version
		}
		n.Drivers[name] = info
		n.Attributes["driver."+name] = strconv.FormatBool(d.Healthy)
	}
	return n
}

// livenessTick is how often the leader re-checks node liveness besides on
// every gossip change: a quarter of the TTL, within [50ms, 1s].
func livenessTick(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 50*time.Millisecond), time.Second)
}

// watchNodeLiveness is the leader duty that writes the entries liveness
// plans, on every change of the gossip pool and every livenessTick.
func (s *Server) watchNodeLiveness(ctx context.Context) {
	cfg := s.nodes.cfg
	l := newLiveness(cfg.HeartbeatTTL, cfg.MinNodeUpdateInterval, s.now())
	changed, unsubscribe := s.nodes.pool.Subscribe()
	defer unsubscribe()
	tick := time.NewTicker(livenessTick(cfg.HeartbeatTTL))
	defer tick.Stop()
	for {
		nodes, err := s.State().Nodes(nil)
		if err != nil {
			s.log.Error("node liveness: read nodes", "err", err)
		} else {
			now := s.now()
			for _, act := range l.plan(livenessInput{now: now, nodes: nodes, members: s.nodes.pool.Members(),
				records: s.nodes.pool.Records(), heartbeats: s.nodes.heartbeatsCopy()}) {
				if ctx.Err() != nil {
					return
				}
				if s.writeNodeAction(act, now) {
					l.wrote(act.nodeID, now)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// writeNodeAction commits one planned entry and reports whether it did.
func (s *Server) writeNodeAction(act nodeAction, now time.Time) bool {
	var err error
	if act.down {
		s.log.Warn("marking node down", "node_id", act.nodeID, "reason", act.reason)
		_, _, err = s.apply(structs.NodeStatusUpdateRequestType, &structs.NodeStatusUpdateRequest{
			WriteRequest: structs.WriteRequest{Timestamp: now}, NodeID: act.nodeID, Status: structs.NodeStatusDown})
	} else {
		s.log.Info("registering node from gossip", "node_id", act.nodeID, "name", act.register.Name)
		_, _, err = s.apply(structs.NodeRegisterRequestType, &structs.NodeRegisterRequest{
			WriteRequest: structs.WriteRequest{Timestamp: now}, Node: act.register})
	}
	if err != nil {
		s.log.Warn("node liveness entry failed", "node_id", act.nodeID, "err", err)
		return false
	}
	return true
}
