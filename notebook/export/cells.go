package export

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"regexp"
	"slices"
	"strings"
)

// gonbPrefix may precede a special command so that editors see a comment
// (`//gonb:%%` is `%%`), as in GoNB.
const gonbPrefix = "//gonb:"

// genPrefix starts the names export generates in main.go; a notebook that
// declares a name with this prefix is refused.
const genPrefix = "mmftExport"

// envName matches the environment variable names a shell can export.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// cellMagics are the commands that turn a whole cell into something other
// than Go when they are on its first line.
var cellMagics = []string{"%%writefile", "%%script", "%%bash", "%%sh"}

// ignoredCommands change only how the notebook shows or edits code, so the
// batch version has nothing to do for them.
var ignoredCommands = []string{"autoget", "noautoget", "help", "version", "ls", "list", "track", "untrack", "goworkfix"}

// unsupportedCommands need Jupyter or a person; the reason says what to do.
var unsupportedCommands = map[string]string{
	"test":          "cells run as tests have no batch equivalent; move the test into a _test.go file",
	"wasm":          "WebAssembly cells run in the browser; there is no browser in a batch job",
	"widgets":       "widgets need the Jupyter front end",
	"widgets_hb":    "widgets need the Jupyter front end",
	"with_inputs":   "it prompts a person for input; pass the input to the command in the cell instead",
	"with_password": "it prompts a person for a password; read it from an environment variable instead",
	"capture":       "redirect run.sh's output instead (./run.sh > FILE)",
}

// program is what GoNB holds after running the cells in order, plus what each
// cell ran: the remembered declarations, the cells' programs and the shell.
type program struct {
	decls   declarations
	steps   []step
	shell   []shellCmd
	goFlags []string
}

// step is what main does for one cell: environment and directory changes
// (in order), then the cell's program with its arguments, if it has one.
type step struct {
	cell    int
	actions []action
	args    []string
	body    string // the body of the cell's main, without braces; "" when the cell has none
	hasMain bool
}

// action is a `%env` (setenv) or `%cd` (chdir) of a cell.
type action struct {
	kind  string // "setenv" or "chdir"
	key   string
	value string
}

// shellCmd is one entry of setup.sh.
type shellCmd struct {
	cell, line int
	kind       string // "bash" (a ! line), "bash-here" (a !* line), "env", "cd", "script", "writefile"
	text       string
	args       []string
	input      string
}

// errorAt formats an error that names the cell and the line in it (1-based).
func errorAt(cell, line int, format string, args ...any) error {
	return fmt.Errorf("cell %d, line %d: %s", cell, line, fmt.Sprintf(format, args...))
}

// assemble runs the notebook's code cells through GoNB's rules.
func assemble(nb *Notebook) (*program, error) {
	p := &program{decls: newDeclarations()}
	for _, c := range nb.Cells {
		if c.Type != "code" {
			continue
		}
		if err := p.addCell(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// addCell runs one code cell: its special commands first (as GoNB does), then
// its Go code.
func (p *program) addCell(c Cell) error {
	lines := strings.Split(strings.ReplaceAll(c.Source, "\r\n", "\n"), "\n")
	first := strings.TrimPrefix(lines[0], gonbPrefix)
	if fields := splitCommand(first); len(fields) > 0 && slices.Contains(cellMagics, fields[0]) {
		return p.addMagicCell(c.Index, fields, lines[1:])
	}

	st := step{cell: c.Index}
	used := map[int]bool{}
	for i := 0; i < len(lines); i++ {
		if used[i] {
			continue
		}
		line := strings.TrimPrefix(lines[i], gonbPrefix)
		if len(line) < 2 || (line[0] != '%' && line[0] != '!') {
			continue
		}
		cmd := joinContinued(lines, i, used)
		kind, rest := cmd[0], strings.TrimLeft(cmd[1:], " \t")
		if rest == "" {
			continue
		}
		if kind == '!' {
			sc := shellCmd{cell: c.Index, line: i + 1, kind: "bash", text: rest}
			if strings.HasPrefix(rest, "*") {
				sc.kind, sc.text = "bash-here", rest[1:]
			}
			p.shell = append(p.shell, sc)
			continue
		}
		if err := p.special(&st, i+1, splitCommand(rest)); err != nil {
			return err
		}
	}

	src, fileToCell := composeFile(lines, used)
	if err := p.addGo(&st, src, fileToCell); err != nil {
		return err
	}
	if st.hasMain || len(st.actions) > 0 {
		p.steps = append(p.steps, st)
	}
	return nil
}

// special carries out one `%` command of a cell; line is 1-based.
func (p *program) special(st *step, line int, parts []string) error {
	if len(parts) == 0 {
		return nil
	}
	name := parts[0]
	switch {
	case name == "%" || name == "main" || name == "args":
		st.args = slices.Clone(parts[1:])
	case name == "exec":
		if len(parts) < 2 {
			return errorAt(st.cell, line, "%%exec needs the name of the function to run (%%exec myFunc [ARGS...])")
		}
		st.args = slices.Clone(parts[2:])
	case name == "env":
		if len(parts) == 2 {
			if k, v, ok := strings.Cut(parts[1], "="); ok && k != "" {
				parts = []string{name, k, v}
			}
		}
		if len(parts) == 3 && !envName.MatchString(parts[1]) {
			return errorAt(st.cell, line, "%%env %s: a variable name is letters, digits and _, not starting with a digit", parts[1])
		}
		if len(parts) != 3 {
			return errorAt(st.cell, line, "%%env takes a name and a value (%%env NAME VALUE or %%env NAME=VALUE), got %d arguments", len(parts)-1)
		}
		st.actions = append(st.actions, action{kind: "setenv", key: parts[1], value: parts[2]})
		p.shell = append(p.shell, shellCmd{cell: st.cell, line: line, kind: "env", args: parts[1:]})
	case name == "cd":
		if len(parts) > 2 {
			return errorAt(st.cell, line, "%%cd takes one directory, got %d arguments", len(parts)-1)
		}
		if len(parts) == 2 {
			st.actions = append(st.actions, action{kind: "chdir", value: parts[1]})
			p.shell = append(p.shell, shellCmd{cell: st.cell, line: line, kind: "cd", args: parts[1:]})
		}
	case name == "goflags":
		if len(parts) > 1 {
			p.goFlags = slices.DeleteFunc(slices.Clone(parts[1:]), func(s string) bool { return s == "" })
		}
	case name == "reset":
		if len(parts) == 2 && parts[1] == "go.mod" {
			return nil
		}
		if len(parts) > 1 {
			return errorAt(st.cell, line, "%%reset takes no argument or \"go.mod\"")
		}
		p.decls = newDeclarations()
	case name == "rm" || name == "remove":
		for _, key := range parts[1:] {
			p.decls.remove(key)
		}
	case slices.Contains(ignoredCommands, name):
	case unsupportedCommands[name] != "":
		return errorAt(st.cell, line, "%%%s cannot be exported: %s", name, unsupportedCommands[name])
	case slices.Contains(cellMagics, "%"+name):
		return errorAt(st.cell, line, "%%%s must be the first line of its cell", name)
	default:
		return errorAt(st.cell, line, "unknown special command %%%s (GoNB v0.11.1 has no such command)", name)
	}
	return nil
}

// addMagicCell turns a %%bash, %%sh, %%script or %%writefile cell into setup.sh.
func (p *program) addMagicCell(cell int, fields, body []string) error {
	sc := shellCmd{cell: cell, line: 1, input: strings.Join(body, "\n") + "\n"}
	switch fields[0] {
	case "%%writefile":
		args := fields[1:]
		if len(args) > 0 && args[0] == "-a" {
			sc.kind = "append"
			args = args[1:]
		} else {
			sc.kind = "writefile"
		}
		if len(args) != 1 {
			return errorAt(cell, 1, "%%%%writefile takes one file name (%%%%writefile [-a] FILE)")
		}
		sc.args = args
	case "%%script":
		if len(fields) < 2 {
			return errorAt(cell, 1, "%%%%script needs the program to run (%%%%script python3)")
		}
		sc.kind, sc.args = "script", fields[1:]
	default: // %%bash, %%sh
		if len(fields) != 1 {
			return errorAt(cell, 1, "%s takes no arguments", fields[0])
		}
		sc.kind, sc.args = "script", []string{fields[0][2:]}
	}
	p.shell = append(p.shell, sc)
	return nil
}

// joinContinued joins line i with the following ones while a line ends in a
// backslash, marking them used, as GoNB does for special commands.
func joinContinued(lines []string, i int, used map[int]bool) string {
	var b strings.Builder
	for ; i < len(lines); i++ {
		line := strings.TrimPrefix(lines[i], gonbPrefix)
		used[i] = true
		if !strings.HasSuffix(line, `\`) {
			b.WriteString(line)
			break
		}
		b.WriteString(line[:len(line)-1] + " ")
	}
	return b.String()
}

// splitCommand splits a special command into words at spaces; double quotes
// group words (and may be empty), and within them \n, \t and \X are escapes.
func splitCommand(s string) []string {
	var parts []string
	var cur strings.Builder
	started, quoted := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case !quoted && (ch == ' ' || ch == '\t' || ch == '\n'):
			if started {
				parts = append(parts, cur.String())
			}
			cur.Reset()
			started = false
		case ch == '"':
			quoted = !quoted
			started = true
		case quoted && ch == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			default:
				cur.WriteByte(s[i])
			}
		default:
			cur.WriteByte(ch)
			started = true
		}
	}
	if started {
		parts = append(parts, cur.String())
	}
	return parts
}

// composeFile writes the cell's Go lines as GoNB's main.go for the cell:
// `package main`, the lines that are not special commands (a `%%` or `%main`
// line opens `func main() { flag.Parse()` that closes at the end of the cell,
// `%exec f` adds a main that calls f) and no `package` lines. fileToCell maps
// each 0-based line of the file to the 1-based cell line, 0 for added lines.
func composeFile(lines []string, used map[int]bool) (src string, fileToCell []int) {
	var b strings.Builder
	add := func(text string, cellLine int) {
		for range strings.Count(text, "\n") {
			fileToCell = append(fileToCell, cellLine)
		}
		b.WriteString(text)
	}
	add("package main\n\n", 0)
	openMain := false
	for i, line := range lines {
		trimmed := strings.TrimPrefix(line, gonbPrefix)
		switch {
		case strings.HasPrefix(trimmed, "%main") || strings.HasPrefix(trimmed, "%%"):
			add("func main() {\n\tflag.Parse()\n", i+1)
			openMain = true
		case strings.HasPrefix(trimmed, "%exec"):
			if f := strings.Fields(trimmed); len(f) > 1 {
				add("func main() {\n\tflag.Parse()\n\t"+f[1]+"()\n}\n", i+1)
			}
		case used[i], strings.HasPrefix(line, "package"):
		default:
			add(line+"\n", i+1)
		}
	}
	if openMain {
		add("\n}\n", 0)
	}
	return b.String(), fileToCell
}

// addGo parses the cell's Go file, merges its declarations into p and keeps
// its main as the cell's program.
func (p *program) addGo(st *step, src string, fileToCell []int) error {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", src, parser.SkipObjectResolution|parser.ParseComments)
	if err != nil {
		return cellParseError(st.cell, err, fileToCell)
	}
	cellLine := func(pos token.Pos) int {
		l := fset.Position(pos).Line - 1
		if l >= 0 && l < len(fileToCell) && fileToCell[l] > 0 {
			return fileToCell[l]
		}
		return 1
	}
	text := func(n ast.Node) string { return src[fset.Position(n.Pos()).Offset:fset.Position(n.End()).Offset] }
	d := newDeclarations()
	for _, spec := range f.Imports {
		d.addImport(spec, st.cell)
	}
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if decl.Recv == nil && decl.Name.Name == "main" {
				if decl.Body == nil {
					return errorAt(st.cell, cellLine(decl.Pos()), "func main has no body")
				}
				if decl.Type.Params.NumFields() > 0 || decl.Type.Results != nil {
					return errorAt(st.cell, cellLine(decl.Pos()), "func main must have no arguments and no results")
				}
				st.body = src[fset.Position(decl.Body.Lbrace).Offset+1 : fset.Position(decl.Body.Rbrace).Offset]
				st.hasMain = true
				continue
			}
			if err := d.addFunc(decl, text, st.cell); err != nil {
				return errorAt(st.cell, cellLine(decl.Pos()), "%v", err)
			}
		case *ast.GenDecl:
			var err error
			switch decl.Tok {
			case token.VAR:
				err = d.addVars(decl, text, st.cell)
			case token.CONST:
				err = d.addConsts(decl, text, st.cell)
			case token.TYPE:
				err = d.addTypes(decl, text, st.cell)
			}
			if err != nil {
				return errorAt(st.cell, cellLine(decl.Pos()), "%v", err)
			}
		}
	}
	p.decls.merge(d)
	return nil
}

// cellParseError turns a Go parse error into one naming the cell and line.
func cellParseError(cell int, err error, fileToCell []int) error {
	var list scanner.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		return fmt.Errorf("cell %d: %w", cell, err)
	}
	e := list[0]
	line := 1
	if l := e.Pos.Line - 1; l >= 0 && l < len(fileToCell) && fileToCell[l] > 0 {
		line = fileToCell[l]
	} else if l >= len(fileToCell) && len(fileToCell) > 0 {
		line = fileToCell[len(fileToCell)-1]
	}
	hint := ""
	if strings.Contains(e.Msg, "expected declaration") {
		hint = " (GoNB runs statements only inside func main or after a %% line)"
	}
	more := ""
	if len(list) > 1 {
		more = fmt.Sprintf(" (and %d more errors)", len(list)-1)
	}
	return errorAt(cell, line, "%s%s%s", e.Msg, hint, more)
}
