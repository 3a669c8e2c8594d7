package export

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// writeNotebook writes an nbformat-4 notebook with the given cells; a cell
// starting with "#md " is a markdown cell. Sources are stored as lists of
// lines, as Jupyter saves them.
func writeNotebook(t *testing.T, dir string, cells ...string) string {
	t.Helper()
	type cell struct {
		CellType string   `json:"cell_type"`
		Metadata struct{} `json:"metadata"`
		Source   []string `json:"source"`
		Outputs  []any    `json:"outputs,omitempty"`
	}
	nb := struct {
		Cells    []cell         `json:"cells"`
		Metadata map[string]any `json:"metadata"`
		NBFormat int            `json:"nbformat"`
		Minor    int            `json:"nbformat_minor"`
	}{Metadata: map[string]any{"kernelspec": map[string]string{"name": "gonb"}}, NBFormat: 4, Minor: 5}
	for _, src := range cells {
		c := cell{CellType: "code", Outputs: []any{}}
		if rest, ok := strings.CutPrefix(src, "#md "); ok {
			c = cell{CellType: "markdown"}
			src = rest
		}
		c.Source = strings.SplitAfter(src, "\n")
		nb.Cells = append(nb.Cells, c)
	}
	data, err := json.MarshalIndent(nb, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "nb.ipynb")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tutorialCells exercise GoNB's rules: declarations that later cells
// redefine, imports added by goimports, ! lines, %env, %args, %% with
// arguments, an explicit func main, %exec, %%writefile and %%bash cells,
// same-named locals in several cells, and an import of this module.
var tutorialCells = []string{
	"#md # A notebook\nMarkdown is skipped.",
	`!echo "shell ran" > shell.txt
%env GREETING=hello
import "strings"

// shout is redefined in a later cell.
func shout(s string) string { return strings.ToUpper(s) }

const (
	Red = iota
	Green
)

var counter = 10`,
	`%%
x := 1
fmt.Println("cell3", shout(os.Getenv("GREETING")), x, counter, Green)`,
	`func shout(s string) string { return strings.ToUpper(s) + "!" }

type point struct{ X, Y int }

func (p point) String() string { return fmt.Sprintf("(%d,%d)", p.X, p.Y) }

var a, b = split()

func split() (int, int) { return 1, 2 }`,
	`var n = flag.Int("n", 1, "repeats")
%% --n=3
x := "local"
fmt.Println("cell5", shout("hi"), point{1, 2}, *n, x, a+b, flag.Args())`,
	`import "github.com/mmft-go/mmft/rewards"

func main() {
	flag.Parse()
	r := rewards.Format(rewards.Input{Completion: "<think>x</think><answer>4</answer>"})
	fmt.Println("cell6", r, *n, shout("again"))
}`,
	`%%writefile note.txt
written by a cell`,
	`%%bash
echo "bash cell" >> shell.txt
cat note.txt >> shell.txt`,
	`func greet() { data, _ := os.ReadFile("shell.txt"); fmt.Printf("cell10 %q\n", string(data)) }
%args -n 7
%exec greet`,
	`%rm counter
var counter = 42
//gonb:%%
fmt.Println("cell11", counter, os.Getenv("GREETING"))`,
}

func TestExportBuildsAndRunsLikeTheNotebook(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	tmp := t.TempDir()
	nbPath := writeNotebook(t, tmp, tutorialCells...)
	out := filepath.Join(tmp, "batch")
	names, err := Export(nbPath, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 5 {
		t.Fatalf("wrote %v", names)
	}
	mainGo, _ := os.ReadFile(filepath.Join(out, MainFile))
	for _, want := range []string{`"fmt"`, `"os"`, `"github.com/mmft-go/mmft/rewards"`, `strings.ToUpper(s) + "!"`} {
		if !strings.Contains(string(mainGo), want) {
			t.Errorf("main.go lacks %s:\n%s", want, mainGo)
		}
	}
	if strings.Count(string(mainGo), "func shout(") != 1 {
		t.Errorf("shout should be declared once (the later cell's):\n%s", mainGo)
	}
	goMod, _ := os.ReadFile(filepath.Join(out, GoModFile))
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(goMod), "replace github.com/mmft-go/mmft => "+root) {
		t.Errorf("go.mod does not pin this checkout %s:\n%s", root, goMod)
	}

	// Run it as a user would, from a work folder, offline.
	work := filepath.Join(tmp, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(out, RunFile))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "GREETING=")
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh: %v\n%s\nmain.go:\n%s", err, got, mainGo)
	}
	// Every cell sees the declarations as they are after the last cell (as
	// documented): cell 3 sees the redefined shout and counter.
	want := strings.Join([]string{
		"cell3 HELLO! 1 42 1",
		"cell5 HI! (1,2) 3 local 3 []",
		"cell6 1 1 AGAIN!",
		`cell10 "shell ran\nbash cell\nwritten by a cell\n"`,
		"cell11 42 hello",
	}, "\n") + "\n"
	if string(got) != want {
		t.Errorf("output:\n%s\nwant:\n%s\nmain.go:\n%s", got, want, mainGo)
	}
}

func TestExportErrorsNameTheCellAndLine(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cells []string
		want  string
	}{
		{"statement outside main", []string{"#md x", "import \"fmt\"\n\nfmt.Println(1)"}, "cell 2, line 3: expected declaration"},
		{"parse error after %%", []string{"%%\nx := 1\nfmt.Println(x))"}, "cell 1, line 3:"},
		{"wasm", []string{"var x = 1", "%wasm\n%%\nprintln(x)"}, "cell 2, line 1: %wasm cannot be exported"},
		{"with_inputs", []string{"%with_inputs\n!read x"}, "cell 1, line 1: %with_inputs cannot be exported"},
		{"unknown", []string{"var x = 1\n%frobnicate"}, "cell 1, line 2: unknown special command %frobnicate"},
		{"bad env", []string{"%env A B C"}, "cell 1, line 1: %env takes a name and a value"},
		{"late cell magic", []string{"var x = 1\n%%writefile a.txt"}, "cell 1, line 2: %%writefile must be the first line"},
		{"reserved name", []string{"func mmftExportCell1() {}"}, "cell 1, line 1: the name mmftExportCell1 is reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			nb := writeNotebook(t, tmp, tc.cells...)
			out := filepath.Join(tmp, "out")
			_, err := Export(nb, out, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Errorf("a failed export created %s", out)
			}
		})
	}
}

func TestMalformedNotebooks(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"not json", "{cells: [", "not a Jupyter notebook (invalid JSON"},
		{"json but not a notebook", `{"hello": 1}`, "no \"nbformat\" or \"cells\""},
		{"old format", `{"nbformat": 3, "cells": []}`, "nbformat 3 is not supported"},
		{"bad source", `{"nbformat": 4, "cells": [{"cell_type": "code", "source": 42}]}`, "cell 1: \"source\" must be a string or a list"},
		{"no cell type", `{"nbformat": 4, "cells": [{"source": "x"}]}`, "cell 1: no \"cell_type\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.ipynb")
			os.WriteFile(p, []byte(tc.data), 0o644)
			_, err := Export(p, filepath.Join(t.TempDir(), "out"), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.ipynb") {
				t.Fatalf("got %v, want an error naming bad.ipynb with %q", err, tc.want)
			}
		})
	}
	if _, err := Export(filepath.Join(t.TempDir(), "missing.ipynb"), t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "missing.ipynb") {
		t.Fatalf("missing notebook: %v", err)
	}
}

func TestExportRefusesAForeignFolder(t *testing.T) {
	tmp := t.TempDir()
	nb := writeNotebook(t, tmp, "%%\nfmt.Println(1)")
	out := filepath.Join(tmp, "out")
	os.Mkdir(out, 0o755)
	os.WriteFile(filepath.Join(out, "precious.txt"), []byte("keep"), 0o644)
	if _, err := Export(nb, out, Options{}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("export into a foreign folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, MainFile)); err == nil {
		t.Fatal("a refused export wrote main.go")
	}
	if _, err := Export(nb, out, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "precious.txt")); string(b) != "keep" {
		t.Fatal("--force lost a file that was there")
	}
	// A folder that an export wrote is replaced without --force.
	own := filepath.Join(tmp, "own")
	if _, err := Export(nb, own, Options{}); err != nil {
		t.Fatal(err)
	}
	nb2 := writeNotebook(t, tmp, "%%\nfmt.Println(2)")
	if _, err := Export(nb2, own, Options{}); err != nil {
		t.Fatalf("re-export into its own folder: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(own, MainFile)); !strings.Contains(string(b), "fmt.Println(2)") {
		t.Fatalf("re-export did not replace main.go:\n%s", b)
	}
	if st, _ := os.Stat(filepath.Join(own, RunFile)); st == nil || st.Mode().Perm()&0o100 == 0 {
		t.Fatal("run.sh is not executable")
	}
}

func TestMergeFollowsGoNB(t *testing.T) {
	nb := &Notebook{Name: "m.ipynb", Cells: []Cell{
		{Index: 1, Type: "code", Source: "var a, b = pair()\nfunc pair() (int, int) { return 1, 2 }\ntype T int\nfunc (t *T) Inc() { *t++ }"},
		{Index: 2, Type: "code", Source: "import m \"math\"\nvar b = 5\nfunc (t *T) Inc() { *t += 2 }\nvar _ = m.Pi"},
		{Index: 3, Type: "code", Source: "%reset\nconst K = 1"},
		{Index: 4, Type: "code", Source: "var _ = 1\nvar _ = 2"},
	}}
	p, err := assemble(&Notebook{Name: nb.Name, Cells: nb.Cells[:2]})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.decls.vars["a"]; ok {
		t.Error("redefining b alone should drop the tuple a, b (as GoNB does)")
	}
	if v := p.decls.vars["b"]; v == nil || v.value != "5" {
		t.Errorf("b = %+v", v)
	}
	if f := p.decls.funcs["T~Inc"]; f == nil || !strings.Contains(f.text, "+= 2") {
		t.Errorf("method T~Inc = %+v", f)
	}
	if p.decls.imports["m"] == nil {
		t.Error("aliased import not keyed by its alias")
	}
	p, err = assemble(nb)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.decls.funcs) != 0 || len(p.decls.types) != 0 || p.decls.consts["K"] == nil {
		t.Errorf("%%reset did not clear the earlier declarations: %+v", p.decls)
	}
	if len(p.decls.vars) != 2 {
		t.Errorf("two blank variables should both be kept: %v", sortedKeys(p.decls.vars))
	}
}

func TestExportNeedsTheMMFTCheckout(t *testing.T) {
	tmp := t.TempDir()
	nb := writeNotebook(t, tmp, "%%\nfmt.Println(1)")
	_, err := Export(nb, filepath.Join(tmp, "out"), Options{MMFTDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--mmft") {
		t.Fatalf("export against a folder without mmft's go.mod: %v", err)
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 1 {
		t.Fatalf("a failed export left files beside the notebook: %v", entries)
	}
}

func TestShellPathExpandsOnlyWhatGoNBExpands(t *testing.T) {
	for in, want := range map[string]string{
		"out.txt":          "'out.txt'",
		"~/a b.txt":        `"$HOME"'/a b.txt'`,
		"${DIR}/x-$USER":   `"${DIR:-}"'/x-'"${USER:-}"`,
		"$(rm -rf x)`y`'z": `'$(rm -rf x)` + "`y`" + `'\''z'`,
		"":                 "''",
	} {
		if got := shellPath(in); got != want {
			t.Errorf("shellPath(%q) = %s, want %s", in, got, want)
		}
	}
}
