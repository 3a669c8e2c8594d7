package kernel

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"slices"
	"strconv"
	"strings"
)

// A cell's text has Go declarations, optionally a line "%%" (or "%main") after which
// come the statements of its main function, lines starting with "!" that run in the
// shell, and "%" commands. A cell with no "%%" whose text is not declarations but
// statements runs them as its main function.

// Special commands a cell may hold, one a line.
const (
	mainMarker    = "%%"
	mainMarkerAlt = "%main"
	resetCommand  = "%reset"
	helpCommand   = "%help"
)

// helpText lists what a cell may hold; "%help" prints it.
const helpText = `mmft Go kernel: a cell holds Go declarations (func, type, var, const, import), kept for later
cells, then optionally a line "%%" after which come statements run as the body of main.
A cell of statements alone runs as main too. A last line that is a single value shows it as the result.
  !CMD     run CMD in the shell (bash) before the Go code
  %reset   forget every declaration kept so far
  %help    this text
Packages of the mmft module and github.com/janpfeifer/gonb/gonbui import with no network.`

// parsedCell is a cell split into its parts. decls and body are the cell's text with
// the lines of the other parts blanked, so that line N of either is line N of the cell.
type parsedCell struct {
	number  int
	shell   []shellLine
	reset   bool
	help    bool
	hasBody bool
	decls   string
	body    string
}

// shellLine is a "!" line: the command and its line in the cell (1-based).
type shellLine struct {
	line int
	cmd  string
}

// splitCell separates a cell's special lines, declarations and main body.
func splitCell(number int, code string) (*parsedCell, error) {
	lines := strings.Split(code, "\n")
	decls := make([]string, len(lines))
	body := make([]string, len(lines))
	c := &parsedCell{number: number}
	inBody := false
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "!"):
			c.shell = append(c.shell, shellLine{line: i + 1, cmd: strings.TrimSpace(t[1:])})
			continue
		case t == mainMarker || t == mainMarkerAlt:
			if inBody {
				return nil, fmt.Errorf("cell[%d]:%d: a second %q line; a cell has one main body", number, i+1, t)
			}
			inBody, c.hasBody = true, true
			continue
		case t == resetCommand:
			c.reset = true
			continue
		case t == helpCommand:
			c.help = true
			continue
		case strings.HasPrefix(t, "%"):
			return nil, fmt.Errorf("cell[%d]:%d: unknown special command %q (this kernel knows %%%%, %%main, %%reset, %%help and !CMD)", number, i+1, strings.Fields(t)[0])
		}
		if inBody {
			body[i] = l
		} else {
			decls[i] = l
		}
	}
	c.decls = strings.Join(decls, "\n")
	c.body = strings.Join(body, "\n")
	return c, nil
}

// The prefixes put before a cell's text to parse it; they add no line, so that
// positions in the parsed file are positions in the cell.
const (
	declPrefix = "package main;"
	bodyPrefix = "package main;func main(){"
)

// unit is one top-level declaration kept across cells: its source and where it came from.
type unit struct {
	keys []string
	text string
	cell int
	line int // line in the cell where text starts (1-based)
}

// state is what a kernel keeps across cells: declarations and imports.
type state struct {
	units   []unit
	imports map[string]string // import path -> spec as written ("name \"path\"" or "\"path\"")
}

func newState() *state { return &state{imports: map[string]string{}} }

// clone returns a copy that can be changed without touching s.
func (s *state) clone() *state {
	c := &state{units: slices.Clone(s.units), imports: make(map[string]string, len(s.imports))}
	for k, v := range s.imports {
		c.imports[k] = v
	}
	return c
}

// program is one cell's Go program: the state with the cell merged in, and its main.
type program struct {
	next *state
	// mainUnit is the cell's own func main, when it declares one.
	mainUnit *unit
	// body is the cell's main body text (cell lines, others blank) or "" for none.
	body string
	// show is the byte range in body of a last expression whose value is the cell's result.
	show *[2]int
}

// parseCell merges the cell's declarations into a copy of s and finds its main body.
func parseCell(s *state, c *parsedCell) (*program, error) {
	p := &program{next: s.clone(), body: c.body}
	if c.reset {
		p.next = newState()
	}
	fset := token.NewFileSet()
	f, declErr := parser.ParseFile(fset, "cell", declPrefix+c.decls, parser.ParseComments|parser.SkipObjectResolution)
	if declErr != nil {
		if c.hasBody {
			return nil, cellSyntaxError(c.number, declErr, declPrefix)
		}
		// Statements with no "%%": the whole cell is the body.
		if _, err := parser.ParseFile(token.NewFileSet(), "cell", bodyPrefix+c.decls+"\n}", parser.SkipObjectResolution); err != nil {
			return nil, cellSyntaxError(c.number, declErr, declPrefix)
		}
		p.body, c.decls, c.hasBody = c.decls, "", true
		f, _ = parser.ParseFile(fset, "cell", declPrefix, parser.SkipObjectResolution)
	}
	src := declPrefix + c.decls
	for _, d := range f.Decls {
		start := d.Pos()
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Doc != nil {
			start = fd.Doc.Pos()
		}
		if gd, ok := d.(*ast.GenDecl); ok && gd.Doc != nil {
			start = gd.Doc.Pos()
		}
		u := unit{
			text: src[fset.Position(start).Offset:fset.Position(d.End()).Offset],
			cell: c.number,
			line: fset.Position(start).Line,
		}
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil && d.Name.Name == "main" {
				if c.hasBody {
					return nil, fmt.Errorf("cell[%d]:%d: the cell declares func main and has a %%%% body; keep one", c.number, u.line)
				}
				mu := u
				p.mainUnit = &mu
				continue
			}
			u.keys = []string{funcKey(d, c.number, u.line)}
		case *ast.GenDecl:
			if d.Tok == token.IMPORT {
				for _, spec := range d.Specs {
					is := spec.(*ast.ImportSpec)
					path, _ := strconv.Unquote(is.Path.Value)
					p.next.imports[path] = src[fset.Position(is.Pos()).Offset:fset.Position(is.End()).Offset]
				}
				continue
			}
			u.keys = genKeys(d, c.number, u.line)
		}
		p.next.replace(u)
	}
	if c.hasBody && p.mainUnit == nil {
		show, err := lastExpression(c.number, p.body)
		if err != nil {
			return nil, err
		}
		p.show = show
	} else {
		p.body = ""
	}
	return p, nil
}

// replace adds u, dropping the kept units that declare any of its names.
func (s *state) replace(u unit) {
	s.units = slices.DeleteFunc(s.units, func(old unit) bool {
		for _, k := range old.keys {
			if slices.Contains(u.keys, k) {
				return true
			}
		}
		return false
	})
	s.units = append(s.units, u)
}

// funcKey names a function or method declaration; every init is kept.
func funcKey(d *ast.FuncDecl, cell, line int) string {
	if d.Recv == nil {
		if d.Name.Name == "init" {
			return fmt.Sprintf("init@%d:%d", cell, line)
		}
		return "name:" + d.Name.Name
	}
	t := d.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.ParenExpr:
			t = x.X
			continue
		}
		break
	}
	recv := "?"
	if id, ok := t.(*ast.Ident); ok {
		recv = id.Name
	}
	return "method:" + recv + "." + d.Name.Name
}

// genKeys names what a type, var or const declaration declares; "_" is never shared.
func genKeys(d *ast.GenDecl, cell, line int) []string {
	var keys []string
	add := func(name string) {
		if name == "_" {
			keys = append(keys, fmt.Sprintf("_@%d:%d:%d", cell, line, len(keys)))
			return
		}
		keys = append(keys, "name:"+name)
	}
	for _, spec := range d.Specs {
		switch s := spec.(type) {
		case *ast.TypeSpec:
			add(s.Name.Name)
		case *ast.ValueSpec:
			for _, n := range s.Names {
				add(n.Name)
			}
		}
	}
	return keys
}

// noResultCalls are functions whose call as a last line is never shown as a result
// (they return nothing or a count and an error).
var noResultCalls = map[string]bool{"print": true, "println": true, "panic": true, "close": true, "delete": true, "clear": true}

// noResultPackages are packages whose calls as a last line are never shown as a result.
var noResultPackages = map[string]bool{"fmt": true, "log": true, "gonbui": true, "os": true}

// lastExpression returns the byte range in body of its last statement when that is an
// expression whose value the cell should show.
func lastExpression(cell int, body string) (*[2]int, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "cell", bodyPrefix+body+"\n}", parser.SkipObjectResolution)
	if err != nil {
		return nil, cellSyntaxError(cell, err, bodyPrefix)
	}
	fn := f.Decls[0].(*ast.FuncDecl)
	if len(fn.Body.List) == 0 {
		return nil, nil
	}
	es, ok := fn.Body.List[len(fn.Body.List)-1].(*ast.ExprStmt)
	if !ok {
		return nil, nil
	}
	if call, ok := es.X.(*ast.CallExpr); ok {
		switch fun := call.Fun.(type) {
		case *ast.Ident:
			if noResultCalls[fun.Name] {
				return nil, nil
			}
		case *ast.SelectorExpr:
			if id, ok := fun.X.(*ast.Ident); ok && noResultPackages[id.Name] {
				return nil, nil
			}
		}
	}
	if _, ok := es.X.(*ast.UnaryExpr); ok && es.X.(*ast.UnaryExpr).Op == token.ARROW {
		return nil, nil // a receive is an action, not a value to show
	}
	n := len(bodyPrefix)
	return &[2]int{fset.Position(es.Pos()).Offset - n, fset.Position(es.End()).Offset - n}, nil
}

// cellSyntaxError rewrites a parse error's positions as the cell's lines.
// A position on the cell's first line is shifted by the prefix the parser saw.
func cellSyntaxError(cell int, err error, prefix string) error {
	el, ok := err.(scanner.ErrorList)
	if !ok || len(el) == 0 {
		return &compileError{lines: []string{fmt.Sprintf("cell[%d]: %v", cell, err)}}
	}
	ce := &compileError{}
	for _, e := range el {
		col := e.Pos.Column
		if e.Pos.Line == 1 {
			col = max(col-len(prefix), 1)
		}
		ce.lines = append(ce.lines, fmt.Sprintf("cell[%d]:%d:%d: %s", cell, e.Pos.Line, col, e.Msg))
	}
	return ce
}
