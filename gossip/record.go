// Package gossip is the capacity gossip pool that client and server agents
// share (DESIGN.md, "Gossip and capacity"): one hashicorp/memberlist pool,
// separate from the servers' serf pool, on its own port.
//
// Each member carries a small piece of metadata (its role, the node ID it
// speaks for, a server's HTTP address). Each client publishes its node
// record (capacity, reserved resources, driver health, labels, live load):
// a change is broadcast at once through a TransmitLimitedQueue, and full
// push/pull state exchanges repair whatever a lost packet missed. Records
// are versioned; the higher version wins everywhere.
//
// The pool only spreads news. Servers turn it into Raft entries (the
// leader, rate-limited, in package server); the scheduler never reads it.
//
// It lives at the top level, not under client/, because servers and
// clients both import it; it imports nothing of the project (depguard rule
// "gossip" in .golangci.yml). Every method of Pool is safe for concurrent
// use.
package gossip

import (
	"encoding/json"
	"maps"
)

// Member roles.
const (
	RoleServer = "server"
	RoleClient = "client"
)

// NodeRecord is what a client tells the pool about its node. It is kept
// small (well under one UDP packet) so a change travels in one broadcast.
type NodeRecord struct {
	NodeID string `json:"id"`
	Name   string `json:"name"`
	// Member names the pool member that published the record.
	Member string `json:"member"`
	// Version orders records of one node: the higher wins. Pool.SetLocal
	// stamps it (wall-clock nanoseconds, always above the last).
	Version  uint64 `json:"v"`
	OS       string `json:"os,omitempty"`
	Arch     string `json:"arch,omitempty"`
	Hostname string `json:"host,omitempty"`
	// Resources is the node's total capacity; Reserved is kept for the host.
	Resources Resources               `json:"res"`
	Reserved  Resources               `json:"rsv"`
	Drivers   map[string]DriverHealth `json:"drv,omitempty"`
	Labels    map[string]string       `json:"lbl,omitempty"`
	// Load is what the node runs now, as its client sees it. It is news
	// for operators, never an input of the scheduler.
	Load Load `json:"load"`
}

// Resources is an amount of CPU (millicores) and memory (MiB) in a record.
// Its fields and JSON names are api.Resources' (a plain conversion turns
// one into the other), declared here so the pool imports nothing of the
// project; the wire form is unchanged.
type Resources struct {
	CPU      int `json:"cpu"`
	MemoryMB int `json:"memory"`
}

// DriverHealth is a driver's health in a record.
type DriverHealth struct {
	Detected bool   `json:"d"`
	Healthy  bool   `json:"h"`
	Reason   string `json:"r,omitempty"`
}

// Load is a node's live load.
type Load struct {
	Allocs   int `json:"n"`
	CPU      int `json:"cpu"`
	MemoryMB int `json:"mem"`
}

// maxReason bounds a driver's reason in a record, so records stay small.
const maxReason = 120

// Copy returns a deep copy.
func (r *NodeRecord) Copy() *NodeRecord {
	if r == nil {
		return nil
	}
	c := *r
	c.Drivers = maps.Clone(r.Drivers)
	c.Labels = maps.Clone(r.Labels)
	return &c
}

// sameContent reports whether two records say the same (Version and
// Member aside).
func sameContent(a, b *NodeRecord) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.NodeID == b.NodeID && a.Name == b.Name && a.OS == b.OS && a.Arch == b.Arch &&
		a.Hostname == b.Hostname && a.Resources == b.Resources && a.Reserved == b.Reserved &&
		a.Load == b.Load && maps.Equal(a.Drivers, b.Drivers) && maps.Equal(a.Labels, b.Labels)
}

// Meta is a member's metadata, gossiped with its liveness (memberlist
// limits it to 512 bytes).
type Meta struct {
	Role string `json:"r"`
	// NodeID is the client node the member speaks for ("" for a server
	// without a client).
	NodeID string `json:"n,omitempty"`
	// HTTPAddr is a server's HTTP API address.
	HTTPAddr string `json:"h,omitempty"`
	// Leaving is set just before a member leaves on purpose.
	Leaving bool `json:"l,omitempty"`
}

func decodeMeta(b []byte) Meta {
	var m Meta
	_ = json.Unmarshal(b, &m) // a member with unreadable meta is nobody we know
	return m
}

// Message kinds: the first byte of every user message.
const msgRecord byte = 1
