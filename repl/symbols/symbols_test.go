package symbols

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// facade reads the packages of the facade from symbols.go's go:generate
// lines: import path → folder in this module.
func facade(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("symbols.go")
	if err != nil {
		t.Fatal(err)
	}
	const directive = "//go:generate go run github.com/traefik/yaegi/cmd/yaegi extract "
	const module = "github.com/mmft-go/mmft/"
	pkgs := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if path, ok := strings.CutPrefix(line, directive); ok {
			rel, ok := strings.CutPrefix(path, module)
			if !ok {
				t.Fatalf("symbols.go: %s is not a package of this module", path)
			}
			pkgs[path] = filepath.Join("..", "..", rel)
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("symbols.go has no go:generate extract lines")
	}
	return pkgs
}

// TestSymbolsAreUpToDate fails when a facade package gained or lost an
// exported non-generic name since `go generate ./repl/symbols` last ran.
func TestSymbolsAreUpToDate(t *testing.T) {
	facade := facade(t)
	if len(Symbols) != len(facade) {
		t.Errorf("Symbols holds %d packages, the facade %d: run go generate ./repl/symbols", len(Symbols), len(facade))
	}
	for path, dir := range facade {
		key := path + "/" + filepath.Base(path)
		got := Symbols[key]
		if got == nil {
			t.Errorf("no symbols for %s; run go generate ./repl/symbols", path)
			continue
		}
		want := exportedNonGeneric(t, dir)
		for _, name := range want {
			if _, ok := got[name]; !ok {
				t.Errorf("%s.%s is missing from the symbols; run go generate ./repl/symbols", path, name)
			}
		}
		for name := range got {
			if !slices.Contains(want, name) {
				t.Errorf("%s.%s is in the symbols but not in the package; run go generate ./repl/symbols", path, name)
			}
		}
	}
}

// exportedNonGeneric lists the exported package-level names of the Go
// package in dir that yaegi can use (no type parameters).
func exportedNonGeneric(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() && d.Type.TypeParams == nil {
					names = append(names, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() && s.TypeParams == nil {
							names = append(names, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, id := range s.Names {
							if id.IsExported() {
								names = append(names, id.Name)
							}
						}
					}
				}
			}
		}
	}
	return names
}
