package structs

import "time"

// Node statuses.
const (
	NodeStatusReady = "ready"
	NodeStatusDown  = "down"
)

// Node is a client agent that can run jobs.
type Node struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Status  string `json:"status"`
	// Eligible is false when an operator turned scheduling off for the node.
	Eligible bool `json:"eligible"`
	Drain    bool `json:"drain,omitempty"`
	// DrainDeadline is when the leader stops what a draining node still
	// runs; zero means no deadline (jobs finish however long they take).
	DrainDeadline time.Time `json:"drain_deadline,omitzero"`
	// Resources is the node's total capacity; Reserved is kept back for the host.
	Resources Resources `json:"resources"`
	Reserved  Resources `json:"reserved"`
	// Attributes are matched by constraints: "os", "arch", "hostname",
	// "label.<key>" for each label, "driver.<name>" = "true" when healthy.
	Attributes map[string]string      `json:"attributes,omitempty"`
	Drivers    map[string]*DriverInfo `json:"drivers,omitempty"`

	StatusUpdatedAt time.Time `json:"status_updated_at"`
	CreateIndex     uint64    `json:"create_index"`
	ModifyIndex     uint64    `json:"modify_index"`
}

// Copy returns a copy whose maps can be changed. A nil driver entry stays
// nil (Validate refuses one in an entry; a copy must never crash on it).
func (n *Node) Copy() *Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Attributes = make(map[string]string, len(n.Attributes))
	for k, v := range n.Attributes {
		c.Attributes[k] = v
	}
	c.Drivers = make(map[string]*DriverInfo, len(n.Drivers))
	for k, v := range n.Drivers {
		if v == nil {
			c.Drivers[k] = nil
			continue
		}
		d := *v
		c.Drivers[k] = &d
	}
	return &c
}

// Schedulable reports whether new work may be placed on the node.
func (n *Node) Schedulable() bool {
	return n.Status == NodeStatusReady && n.Eligible && !n.Drain
}

// Capacity is what the scheduler may hand out: total minus reserved.
func (n *Node) Capacity() Resources { return n.Resources.Sub(n.Reserved) }

// DriverInfo is a driver's health on a node.
type DriverInfo struct {
	Detected bool   `json:"detected"`
	Healthy  bool   `json:"healthy"`
	Reason   string `json:"reason,omitempty"`
	Version  string `json:"version,omitempty"`
}
