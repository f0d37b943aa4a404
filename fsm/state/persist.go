package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// The snapshot stream is JSON lines: a header, one record per row (tables in
// tableOrder, rows by ID, so equal stores write equal bytes), then a footer
// with the row count so a cut-short stream is caught.
const (
	snapshotFormat  = "ciplat-state"
	snapshotVersion = 1
)

type snapshotHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

type snapshotRecord struct {
	Table string          `json:"table,omitempty"`
	Row   json.RawMessage `json:"row,omitempty"`
	End   bool            `json:"end,omitempty"`
	Rows  int             `json:"rows,omitempty"`
}

type persistRecord struct {
	Table string `json:"table,omitempty"`
	Row   any    `json:"row,omitempty"`
	End   bool   `json:"end,omitempty"`
	Rows  int    `json:"rows,omitempty"`
}

// rowTypes says what each table holds, for Restore.
var rowTypes = map[string]func() any{
	TableIndex:           func() any { return new(IndexEntry) },
	TableNodes:           func() any { return new(structs.Node) },
	TablePipelines:       func() any { return new(structs.Pipeline) },
	TableJobs:            func() any { return new(structs.Job) },
	TableEvals:           func() any { return new(structs.Evaluation) },
	TableAllocs:          func() any { return new(structs.Allocation) },
	TableEvents:          func() any { return new(structs.Event) },
	TableSchedulerConfig: func() any { return new(structs.SchedulerConfig) },
	TableIdempotencyKeys: func() any { return new(structs.IdempotencyKey) },
}

// Persist writes every table, the index table included, to w from one
// consistent read transaction. It is the costly half of a Raft snapshot and
// runs while the FSM keeps applying entries.
func (s *StateStore) Persist(w io.Writer) error {
	txn := s.db.Txn(false)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: snapshotVersion}); err != nil {
		return fmt.Errorf("persist header: %w", err)
	}
	rows := 0
	for _, table := range tableOrder {
		it, err := txn.Get(table, "id")
		if err != nil {
			return fmt.Errorf("persist %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := enc.Encode(persistRecord{Table: table, Row: raw}); err != nil {
				return fmt.Errorf("persist %s: %w", table, err)
			}
			rows++
		}
	}
	if err := enc.Encode(persistRecord{End: true, Rows: rows}); err != nil {
		return fmt.Errorf("persist footer: %w", err)
	}
	return bw.Flush()
}

// Restore builds a new store from a stream written by Persist. Nothing is
// shared with any existing store: the caller (the FSM) swaps it in whole and
// Abandons the old one, so a bad stream leaves the old state untouched.
func Restore(r io.Reader) (*StateStore, error) {
	return restore(r, 0)
}

// RestoreAt is Restore for an operator's snapshot restore committed at Raft
// index: every table's index becomes index, whatever the snapshot recorded,
// so blocking queries wake and later writes keep raising the indexes (a
// snapshot from another cluster may carry indexes past this cluster's).
func RestoreAt(r io.Reader, index uint64) (*StateStore, error) {
	if index == 0 {
		return nil, fmt.Errorf("restore at Raft index 0: indexes start at 1")
	}
	return restore(r, index)
}

func restore(r io.Reader, atIndex uint64) (*StateStore, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state store schema: %w", err)
	}
	txn := db.Txn(true)
	defer txn.Abort()
	if _, err := readRecords(r, func(table string, row any) error {
		return txn.Insert(table, row)
	}); err != nil {
		return nil, err
	}
	if atIndex > 0 {
		for _, table := range tableOrder {
			if table == TableIndex {
				continue
			}
			if err := txn.Insert(TableIndex, &IndexEntry{Key: table, Value: atIndex}); err != nil {
				return nil, fmt.Errorf("restore: set index of %s: %w", table, err)
			}
		}
	}
	nodes, err := list[structs.Node](txn, nil, TableNodes, "id")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	events, err := countRows(txn, TableEvents)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	txn.Commit()
	s := newStore(db, nodes)
	s.eventCount.Store(int64(events))
	return s, nil
}

// readRecords reads a Persist stream: the header, then each record decoded
// into its table's row type and handed to insert, then the footer, whose
// row count must match. It returns the number of rows.
func readRecords(r io.Reader, insert func(table string, row any) error) (int, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return 0, fmt.Errorf("restore: read header: %w", err)
	}
	if h.Format != snapshotFormat || h.Version != snapshotVersion {
		return 0, fmt.Errorf("restore: snapshot is format %q version %d; this server reads %q version %d",
			h.Format, h.Version, snapshotFormat, snapshotVersion)
	}
	rows := 0
	for {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return rows, fmt.Errorf("restore: record %d: %w (snapshot cut short?)", rows+1, err)
		}
		if rec.End {
			if rec.Rows != rows {
				return rows, fmt.Errorf("restore: footer counts %d rows, read %d", rec.Rows, rows)
			}
			return rows, nil
		}
		newRow, ok := rowTypes[rec.Table]
		if !ok {
			return rows, fmt.Errorf("restore: record %d: unknown table %q (snapshot from a newer server?)", rows+1, rec.Table)
		}
		row := newRow()
		if err := json.Unmarshal(rec.Row, row); err != nil {
			return rows, fmt.Errorf("restore: record %d (%s): %w", rows+1, rec.Table, err)
		}
		if err := insert(rec.Table, row); err != nil {
			return rows, fmt.Errorf("restore: record %d (%s): %w", rows+1, rec.Table, err)
		}
		rows++
	}
}
