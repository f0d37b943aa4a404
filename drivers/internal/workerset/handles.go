package workerset

import (
	"maps"
	"slices"
	"strings"

	"github.com/ciplat/ciplat/drivers"
)

// CloneHandle returns a deep copy of h, so callers never share State maps.
func CloneHandle(h *drivers.WorkerHandle) *drivers.WorkerHandle {
	c := *h
	c.State = maps.Clone(h.State)
	return &c
}

// SortHandles sorts hs by worker ID, the order ListWorkers returns.
func SortHandles(hs []*drivers.WorkerHandle) {
	slices.SortFunc(hs, func(a, b *drivers.WorkerHandle) int { return strings.Compare(a.ID, b.ID) })
}
