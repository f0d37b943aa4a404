package state

import (
	"bytes"
	"strings"
	"testing"
)

// TestVerify_AgreesWithRestore: Verify accepts what Restore accepts and
// refuses, with Restore's message, every stream Restore refuses, the row
// that decodes but cannot be inserted (no ID) included.
func TestVerify_AgreesWithRestore(t *testing.T) {
	src := testStore(t)
	fill(t, src)
	var buf bytes.Buffer
	if err := src.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	streams := map[string]string{
		"good":       good,
		"cut short":  good[:len(good)/2],
		"missing id": strings.Replace(good, `"id":"j1"`, `"id":""`, 1),
		"row type":   strings.Replace(good, `"id":"j1"`, `"id":1`, 1),
	}
	for name, s := range streams {
		if name != "good" && s == good {
			t.Fatalf("%s: the corruption did not apply", name)
		}
		_, rerr := Restore(strings.NewReader(s))
		_, verr := Verify(strings.NewReader(s))
		if (rerr == nil) != (verr == nil) || (rerr != nil && rerr.Error() != verr.Error()) {
			t.Errorf("%s: Restore %v, Verify %v; want the same verdict", name, rerr, verr)
		}
		if name != "good" && verr == nil {
			t.Errorf("%s: Verify accepted a damaged stream", name)
		}
	}
}

// TestReindex_SetsEveryTableIndex: a reindexed stream restores to the same
// rows with every table's index the given one.
func TestReindex_SetsEveryTableIndex(t *testing.T) {
	src := testStore(t)
	fill(t, src)
	var in, out bytes.Buffer
	if err := src.Persist(&in); err != nil {
		t.Fatal(err)
	}
	if err := Reindex(bytes.NewReader(in.Bytes()), &out, 70000); err != nil {
		t.Fatal(err)
	}
	dst, err := Restore(&out)
	if err != nil {
		t.Fatalf("restore the reindexed stream: %v", err)
	}
	for _, table := range tableOrder {
		if table == TableIndex {
			continue
		}
		if got := dst.Index(table); got != 70000 {
			t.Errorf("index of %s = %d, want 70000", table, got)
		}
	}
	a, _ := src.Jobs(nil)
	b, _ := dst.Jobs(nil)
	if len(a) != len(b) || len(b) == 0 {
		t.Fatalf("jobs: %d before, %d after reindex", len(a), len(b))
	}
	if err := Reindex(strings.NewReader(in.String()[:in.Len()/2]), &bytes.Buffer{}, 70000); err == nil {
		t.Fatal("reindex of a cut-short stream: want an error")
	}
}
