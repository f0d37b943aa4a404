package agent

import (
	"flag"

	"github.com/ciplat/ciplat/fsm/structs"
)

// registerLimitFlags adds one -limit-* flag per row of the spec limits
// table (structs.SpecLimitTable), each with its default: a new limit there
// is a new flag here without an edit.
func registerLimitFlags(fs *flag.FlagSet, l *structs.SpecLimits) {
	for _, row := range structs.SpecLimitTable {
		fs.IntVar(row.Field(l), row.Flag, row.Default, "server: "+row.Doc)
	}
}
