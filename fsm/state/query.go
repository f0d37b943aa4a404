package state

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// first returns the row of table whose index matches args, or nil when there
// is none, and adds the lookup's watch channel to ws so a blocking query wakes
// up when that row appears or changes.
func first[T any](txn *memdb.Txn, ws memdb.WatchSet, table, index string, args ...any) (*T, error) {
	watch, raw, err := txn.FirstWatch(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s lookup by %s: %w", table, index, err)
	}
	ws.Add(watch)
	if raw == nil {
		return nil, nil
	}
	return raw.(*T), nil
}

// list returns every row of table whose index matches args, in index order,
// and watches the whole range. The slice is never nil so it encodes as [].
func list[T any](txn *memdb.Txn, ws memdb.WatchSet, table, index string, args ...any) ([]*T, error) {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("%s list by %s: %w", table, index, err)
	}
	ws.Add(it.WatchCh())
	out := []*T{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out, nil
}

// ErrAmbiguousPrefix matches (with errors.Is) every *AmbiguousPrefixError.
var ErrAmbiguousPrefix = errors.New("ambiguous ID prefix")

// maxCandidates is how many matching IDs an ambiguous-prefix error lists.
const maxCandidates = 5

// AmbiguousPrefixError says that a short ID given by a user matches more than
// one row, and names some of them so the user can pick.
type AmbiguousPrefixError struct {
	Kind    string   // "pipeline" or "job"
	Prefix  string   // what the user typed
	Matches []string // up to five matching IDs, in ID order
	More    bool     // true when more IDs matched than Matches lists
}

func (e *AmbiguousPrefixError) Error() string {
	more := ""
	if e.More {
		more = " and more"
	}
	return fmt.Sprintf("%s ID prefix %q is ambiguous: it matches %s%s; give more characters of the ID",
		e.Kind, e.Prefix, strings.Join(e.Matches, ", "), more)
}

// Is makes errors.Is(err, ErrAmbiguousPrefix) true.
func (e *AmbiguousPrefixError) Is(target error) bool { return target == ErrAmbiguousPrefix }

// byIDPrefix resolves a user-typed ID prefix to one row: an exact ID wins,
// otherwise exactly one ID must start with prefix.
func byIDPrefix[T any](txn *memdb.Txn, ws memdb.WatchSet, table, kind, prefix string, idOf func(*T) string) (*T, error) {
	if prefix == "" {
		return nil, fmt.Errorf("no %s ID given: %w", kind, structs.ErrNotFound)
	}
	exact, err := first[T](txn, ws, table, "id", prefix)
	if err != nil || exact != nil {
		return exact, err
	}
	it, err := txn.Get(table, "id_prefix", prefix)
	if err != nil {
		return nil, fmt.Errorf("%s lookup by ID prefix: %w", table, err)
	}
	ws.Add(it.WatchCh())
	var found *T
	var ids []string
	n := 0
	for raw := it.Next(); raw != nil && n <= maxCandidates; raw = it.Next() {
		n++
		row := raw.(*T)
		if found == nil {
			found = row
		}
		if len(ids) < maxCandidates {
			ids = append(ids, idOf(row))
		}
	}
	switch n {
	case 0:
		return nil, fmt.Errorf("no %s with ID or ID prefix %q: %w", kind, prefix, structs.ErrNotFound)
	case 1:
		return found, nil
	}
	return nil, &AmbiguousPrefixError{Kind: kind, Prefix: prefix, Matches: ids, More: n > maxCandidates}
}
