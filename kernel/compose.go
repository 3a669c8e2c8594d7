package kernel

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// loc is where a line of the generated main.go came from: a cell and its line
// (1-based), or cell 0 for lines the kernel wrote.
type loc struct{ cell, line int }

// source is a generated main.go and, for each of its lines, where it came from.
type source struct {
	text  string
	lines []loc
}

// showFunc is the function a cell's last expression is passed to so that the
// kernel sends its value as the cell's execute_result.
const showFunc = "mmftKernelShow"

// resultMetadata marks the display that carries a cell's result.
const resultMetadata = "mmft/execute_result"

// showHelper defines showFunc; it writes through gonbui's pipe to the kernel.
const showHelper = `func ` + showFunc + `(v any) {
	text := mmftkernel_fmt.Sprintf("%+v", v)
	if s, ok := v.(string); ok {
		text = mmftkernel_strconv.Quote(s)
	}
	mmftkernel_gonbui.SendData(&mmftkernel_protocol.DisplayData{
		Data:     map[mmftkernel_protocol.MIMEType]any{mmftkernel_protocol.MIMETextPlain: text},
		Metadata: map[string]any{"` + resultMetadata + `": true},
	})
}`

// helperPrefix starts the names of the imports the kernel adds, so as not to clash with the cell's.
const helperPrefix = "mmftkernel_"

// showImports are the imports showHelper needs.
var showImports = []string{
	`mmftkernel_fmt "fmt"`,
	`mmftkernel_strconv "strconv"`,
	`mmftkernel_gonbui "github.com/janpfeifer/gonb/gonbui"`,
	`mmftkernel_protocol "github.com/janpfeifer/gonb/gonbui/protocol"`,
}

// compose writes the Go program of a cell: the kept declarations, the cell's own
// and its main, with the given import specs.
func compose(p *program, cell int, imports []string) source {
	var s source
	add := func(text string, cell, line int) {
		for i, l := range strings.Split(text, "\n") {
			s.text += l + "\n"
			if cell == 0 {
				s.lines = append(s.lines, loc{})
			} else {
				s.lines = append(s.lines, loc{cell, line + i})
			}
		}
	}
	add("package main\n", 0, 0)
	specs := slices.Clone(imports)
	if p.show != nil {
		specs = append(specs, showImports...)
	}
	if len(specs) > 0 {
		add("import (", 0, 0)
		for _, spec := range specs {
			add("\t"+spec, 0, 0)
		}
		add(")\n", 0, 0)
	}
	for _, u := range p.next.units {
		add(u.text+"\n", u.cell, u.line)
	}
	switch {
	case p.mainUnit != nil:
		add(p.mainUnit.text, p.mainUnit.cell, p.mainUnit.line)
	default:
		body := p.body
		if p.show != nil {
			a, b := p.show[0], p.show[1]
			body = body[:a] + showFunc + "(" + body[a:b] + ")" + body[b:]
		}
		add("func main() {", 0, 0)
		add(body, cell, 1)
		add("}", 0, 0)
	}
	if p.show != nil {
		add("\n"+showHelper, 0, 0)
	}
	return s
}

// importSpecs lists the kept imports as specs, sorted by path.
func importSpecs(imports map[string]string) []string {
	paths := make([]string, 0, len(imports))
	for p := range imports {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	specs := make([]string, len(paths))
	for i, p := range paths {
		specs[i] = imports[p]
	}
	return specs
}

// where names a line of main.go as the cell line it came from, or as main.go:N.
func (s source) where(line int) string {
	if line >= 1 && line <= len(s.lines) && s.lines[line-1].cell != 0 {
		l := s.lines[line-1]
		return fmt.Sprintf("cell[%d]:%d", l.cell, l.line)
	}
	return fmt.Sprintf("main.go:%d", line)
}

// compilerLine matches a compiler message about main.go: "./main.go:12:5: msg".
var compilerLine = regexp.MustCompile(`^(?:\./|.*/)?main\.go:(\d+)(?::(\d+))?: ?(.*)$`)

// mapCompilerOutput turns the output of go build into lines naming cell lines.
func (s source) mapCompilerOutput(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "# ") || strings.TrimSpace(l) == "" {
			continue
		}
		m := compilerLine.FindStringSubmatch(l)
		if m == nil {
			lines = append(lines, l)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		w := s.where(n)
		if m[2] != "" {
			w += ":" + m[2]
		}
		lines = append(lines, w+": "+strings.ReplaceAll(m[3], showFunc+"(", "("))
	}
	return lines
}

// mapTrace rewrites the references to path (the program's main.go) in a stack trace
// as cell lines.
func (s source) mapTrace(path, text string) string {
	re := regexp.MustCompile(regexp.QuoteMeta(path) + `:(\d+)`)
	return re.ReplaceAllStringFunc(text, func(m string) string {
		n, _ := strconv.Atoi(m[len(path)+1:])
		return s.where(n)
	})
}

// compileError is a cell that does not parse or compile: one line per message, each
// naming the cell line.
type compileError struct {
	lines []string
}

func (e *compileError) Error() string { return strings.Join(e.lines, "\n") }
