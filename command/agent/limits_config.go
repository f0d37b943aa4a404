package agent

import (
	"flag"

	"github.com/ciplat/ciplat/jobspec"
)

// registerLimitFlags adds one -limit-* flag per row of the spec limits
// table (jobspec.LimitTable), each with its default: a new limit there
// is a new flag here without an edit.
func registerLimitFlags(fs *flag.FlagSet, l *jobspec.Limits) {
	for _, row := range jobspec.LimitTable {
		fs.IntVar(row.Field(l), row.Flag, row.Default, "server: "+row.Doc)
	}
}
