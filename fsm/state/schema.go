package state

import (
	"github.com/hashicorp/go-memdb"
)

// Table names. They are also the keys of the index table, so a blocking query
// can ask "has anything in this table changed since index N?".
const (
	TablePipelines = "pipelines"
	TableJobs      = "jobs"
	TableAllocs    = "allocs"
	TableNodes     = "nodes"
	TableEvals     = "evals"
	TableEvents    = "events"
	TableIndex     = "index"
)

// TableSchedulerConfig holds one row: the scheduler configuration.
const TableSchedulerConfig = "scheduler_config"

// IndexEntry is one row of the index table: the latest Raft index that
// changed the table named Key.
type IndexEntry struct {
	Key   string `json:"key"`
	Value uint64 `json:"value"`
}

// schema is the one description of every table and its indexes. memdb needs
// an "id" index on each table; it is the primary key.
func schema() *memdb.DBSchema {
	id := func(field string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: field}}
	}
	by := func(name, field string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: name, Indexer: &memdb.StringFieldIndex{Field: field}}
	}
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TablePipelines: {Name: TablePipelines, Indexes: map[string]*memdb.IndexSchema{
			"id": id("ID"),
			// create orders pipelines by the Raft index that created them
			// (big-endian, so iteration order is numeric order).
			"create": {Name: "create", Indexer: &memdb.UintFieldIndex{Field: "CreateIndex"}},
		}},
		TableJobs: {Name: TableJobs, Indexes: map[string]*memdb.IndexSchema{
			"id":          id("ID"),
			"pipeline_id": by("pipeline_id", "PipelineID"),
		}},
		TableAllocs: {Name: TableAllocs, Indexes: map[string]*memdb.IndexSchema{
			"id":      id("ID"),
			"node_id": by("node_id", "NodeID"),
			"job_id":  by("job_id", "JobID"),
			// pipeline_id lets the scheduler count a pipeline's allocations
			// for spread and anti-affinity without a table scan.
			"pipeline_id": by("pipeline_id", "PipelineID"),
		}},
		TableNodes: {Name: TableNodes, Indexes: map[string]*memdb.IndexSchema{
			"id": id("ID"),
		}},
		TableEvals: {Name: TableEvals, Indexes: map[string]*memdb.IndexSchema{
			"id":     id("ID"),
			"status": by("status", "Status"),
			"job_id": by("job_id", "JobID"),
		}},
		// events are keyed by (Raft index, seq): big-endian, so iteration
		// order is commit order.
		TableEvents: {Name: TableEvents, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.UintFieldIndex{Field: "Index"},
				&memdb.UintFieldIndex{Field: "Seq"},
			}}},
		}},
		// scheduler_config is a singleton: its "id" index is true for the
		// one row, as Nomad's scheduler_config table.
		TableSchedulerConfig: {Name: TableSchedulerConfig, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.ConditionalIndex{
				Conditional: func(any) (bool, error) { return true, nil },
			}},
		}},
		TableIndex: {Name: TableIndex, Indexes: map[string]*memdb.IndexSchema{
			"id": id("Key"),
		}},
		TableIdempotencyKeys: idempotencyKeysTable(), // idempotency_keys.go
	}}
}

// tableOrder is the fixed order tables are persisted in, so two stores with
// the same rows write the same bytes.
var tableOrder = []string{TableIndex, TableNodes, TablePipelines, TableJobs, TableEvals, TableAllocs, TableEvents, TableSchedulerConfig, TableIdempotencyKeys}
