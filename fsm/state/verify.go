package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
)

// verifyBatch is how many rows Verify inserts into one scratch database
// before it starts a fresh one: it checks every row as Restore would
// insert it while holding only a batch in memory.
const verifyBatch = 1024

// Verify reads a Persist stream as Restore does (header, format and
// version, every row decoded into its table's type and inserted into a
// memdb with the real schema, the footer's row count) without building the
// store: memory stays bounded by verifyBatch rows whatever the stream's
// size, and CheckRow holds every row to what an entry must satisfy. A
// stream Verify accepts, Restore accepts; an operator's snapshot
// is verified before Raft installs it, because a Raft FSM that fails to
// restore a snapshot it was given cannot go on.
func Verify(r io.Reader) (rows int, err error) {
	var txn *memdb.Txn
	n := 0
	defer func() {
		if txn != nil {
			txn.Abort()
		}
	}()
	return readRecords(r, func(table string, row any) error {
		if txn == nil || n == verifyBatch {
			if txn != nil {
				txn.Abort()
			}
			db, err := memdb.NewMemDB(schema())
			if err != nil {
				return err
			}
			txn, n = db.Txn(true), 0
		}
		n++
		if err := CheckRow(table, row); err != nil {
			return err
		}
		return txn.Insert(table, row)
	})
}

// Reindex copies a Persist stream from r to w with every table's index
// set to index, as RestoreAt does for an entry: an operator's snapshot is
// installed through Raft at index (a snapshot from another cluster may
// carry indexes past this one's, or behind what clients have seen), and
// the copy restores with plain Restore on every server. It reads records
// without decoding rows and checks the footer's count; Verify checks the
// rest.
func Reindex(r io.Reader, w io.Writer, index uint64) error {
	if index == 0 {
		return errors.New("reindex at Raft index 0: indexes start at 1")
	}
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("restore: read header: %w", err)
	}
	if h.Format != snapshotFormat || h.Version != snapshotVersion {
		return fmt.Errorf("restore: snapshot is format %q version %d; this server reads %q version %d",
			h.Format, h.Version, snapshotFormat, snapshotVersion)
	}
	if err := enc.Encode(h); err != nil {
		return err
	}
	read, wrote := 0, 0
	for {
		var rec snapshotRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("restore: record %d: %w (snapshot cut short?)", read+1, err)
		}
		if rec.End {
			if rec.Rows != read {
				return fmt.Errorf("restore: footer counts %d rows, read %d", rec.Rows, read)
			}
			break
		}
		read++
		if rec.Table == TableIndex {
			continue
		}
		if err := enc.Encode(snapshotRecord{Table: rec.Table, Row: rec.Row}); err != nil {
			return fmt.Errorf("restore: record %d: %w", read, err)
		}
		wrote++
	}
	for _, table := range tableOrder {
		if table == TableIndex {
			continue
		}
		if err := enc.Encode(persistRecord{Table: TableIndex, Row: &IndexEntry{Key: table, Value: index}}); err != nil {
			return err
		}
		wrote++
	}
	if err := enc.Encode(persistRecord{End: true, Rows: wrote}); err != nil {
		return err
	}
	return bw.Flush()
}
