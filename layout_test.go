//go:build go1.25

package raft

import (
	"bufio"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRootPackageAndItsTestsImportNothingByOurModulePath guards the rule that
// makes the module a drop-in for github.com/hashicorp/raft: an application
// replaces that path with this module, and Go resolves any import of a
// sibling package by our own module path as a module that the application
// does not (and must not) require. So no file of the root package, test
// files included, may import github.com/quorumkit/raft/... ; nor may an
// external test package (raft_test) import the root itself by that path.
func TestRootPackageAndItsTestsImportNothingByOurModulePath(t *testing.T) {
	module := modulePath(t)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no Go files found in the package directory")
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: bad import %s: %v", name, imp.Path.Value, err)
			}
			if path == module || strings.HasPrefix(path, module+"/") {
				t.Errorf("%s imports %s: the root package and its tests may import no package of %s by that path", name, path, module)
			}
		}
	}
}

// modulePath reads the module path from go.mod in the package directory.
func modulePath(t *testing.T) string {
	t.Helper()
	f, err := os.Open("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(scanner.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatal("go.mod has no module line")
	return ""
}
