package state

import (
	"slices"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// NodeByID returns the node, or nil when there is none.
func (s *StateStore) NodeByID(ws memdb.WatchSet, id string) (*structs.Node, error) {
	return first[structs.Node](s.db.Txn(false), ws, TableNodes, "id", id)
}

// Nodes returns every node, sorted by ID. It reads the table so ws can watch
// it; the scheduler uses StateSnapshot.Nodes, which is O(1).
func (s *StateStore) Nodes(ws memdb.WatchSet) ([]*structs.Node, error) {
	return list[structs.Node](s.db.Txn(false), ws, TableNodes, "id")
}

// mergeNodes returns a new ID-sorted slice: old (sorted by ID, left
// untouched) with the changed nodes replaced or inserted. It costs
// O(len(old) + k log k) for k changes.
func mergeNodes(old []*structs.Node, changed map[string]*structs.Node) []*structs.Node {
	ids := make([]string, 0, len(changed))
	for id := range changed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*structs.Node, 0, len(old)+len(ids))
	i := 0
	for _, id := range ids {
		for i < len(old) && old[i].ID < id {
			out = append(out, old[i])
			i++
		}
		if i < len(old) && old[i].ID == id {
			i++ // replaced by the changed node
		}
		out = append(out, changed[id])
	}
	return append(out, old[i:]...)
}
