package httpapi

import (
	"slices"
	"strings"

	"github.com/ciplat/ciplat/fsm/state"
)

// maxPrefixMatches is how many IDs an ambiguous-prefix answer lists, as the
// state store's own prefix lookups do.
const maxPrefixMatches = 5

// uniquePrefix picks the one row of rows whose ID starts with prefix, for
// tables the state store has no prefix index on (nodes, workers). It
// returns nil when none matches and a *state.AmbiguousPrefixError (400,
// naming up to five matches in ID order) when several do.
func uniquePrefix[T any](kind, prefix string, rows []*T, idOf func(*T) string) (*T, error) {
	if prefix == "" {
		return nil, nil
	}
	var found *T
	var ids []string
	for _, r := range rows {
		if strings.HasPrefix(idOf(r), prefix) {
			found = r
			ids = append(ids, idOf(r))
		}
	}
	if len(ids) <= 1 {
		return found, nil
	}
	slices.Sort(ids)
	return nil, &state.AmbiguousPrefixError{Kind: kind, Prefix: prefix,
		Matches: ids[:min(len(ids), maxPrefixMatches)], More: len(ids) > maxPrefixMatches}
}
