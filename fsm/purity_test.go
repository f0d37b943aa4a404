package fsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// clockFuncs are the functions of package time that read the wall clock or
// wait on it. Apply gets its time from the entry (WriteRequest.Timestamp),
// so none may appear in the FSM's code; depguard cannot say this (the FSM
// needs package time), hence this test.
var clockFuncs = map[string]bool{
	"Now": true, "Since": true, "Until": true,
	"Sleep": true, "After": true, "AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true,
}

// TestFSM_NoClock parses every non-test Go file of fsm/ and its
// sub-packages (fsm/state, fsm/structs) and fails on any use of a
// clockFuncs function, called or passed as a value, whatever name the
// file imports package time under.
func TestFSM_NoClock(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			if imp.Path.Value == `"time"` && imp.Name != nil && imp.Name.Name == "." {
				t.Errorf("%s: dot-import of time hides clock reads from this test", fset.Position(imp.Pos()))
			}
		}
		for _, use := range clockUses(f) {
			t.Errorf("%s: time.%s: the FSM reads no clock; take the time from the entry (WriteRequest.Timestamp)",
				fset.Position(use.Pos()), use.Sel.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("scanned only %d files: is the test running in fsm/?", files)
	}
}

// clockUses returns the selectors in f that name a clockFuncs function of
// package time.
func clockUses(f *ast.File) []*ast.SelectorExpr {
	name := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time" {
			name = "time"
			if imp.Name != nil {
				name = imp.Name.Name
			}
		}
	}
	if name == "" || name == "_" {
		return nil
	}
	var uses []*ast.SelectorExpr
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == name && clockFuncs[sel.Sel.Name] {
			uses = append(uses, sel)
		}
		return true
	})
	return uses
}

// TestClockUses: the scanner finds a call, a value and an aliased import,
// and ignores another package's Now.
func TestClockUses(t *testing.T) {
	src := `package p
import (
	tm "time"
	"other"
)
var f = tm.Now
func g() { _ = tm.Since(tm.Time{}); _ = other.Now(); _ = tm.Duration(1) }
`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range clockUses(f) {
		got = append(got, u.Sel.Name)
	}
	if strings.Join(got, ",") != "Now,Since" {
		t.Fatalf("clockUses = %v, want [Now Since]", got)
	}
}
