package export

import (
	"fmt"
	"go/ast"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// declarations are the package-level names GoNB remembers between cells,
// keyed as GoNB keys them: imports by alias (or the path's last element),
// methods as "Type~Method", everything else by name.
type declarations struct {
	imports map[string]*importDecl
	types   map[string]*textDecl
	consts  map[string]*constDecl
	vars    map[string]*varDecl
	funcs   map[string]*textDecl
	// seq numbers the declarations so that `_` variables get unique keys.
	seq int
}

type importDecl struct {
	alias, path string
	cell        int
}

// textDecl is a type spec (without "type") or a whole func declaration, with
// the func's doc comment.
type textDecl struct {
	doc, text string
	cell      int
}

// varDecl is one variable; the variables of `var a, b = f()` share a tuple.
type varDecl struct {
	name, typ, value string
	tuple            *[]string // keys of the variables declared together, or nil
	cell             int
}

// constDecl is one constant; those of one const block are chained so that
// iota and implicit repetition keep working.
type constDecl struct {
	name, typ, value string
	prev, next       *constDecl
	cell             int
}

func newDeclarations() declarations {
	return declarations{
		imports: map[string]*importDecl{},
		types:   map[string]*textDecl{},
		consts:  map[string]*constDecl{},
		vars:    map[string]*varDecl{},
		funcs:   map[string]*textDecl{},
	}
}

// versionSuffix matches a trailing major-version element such as "v2".
var versionSuffix = regexp.MustCompile(`^v[0-9]+$`)

func (d *declarations) addImport(spec *ast.ImportSpec, cell int) {
	p, _ := strconv.Unquote(spec.Path.Value)
	imp := &importDecl{path: p, cell: cell}
	key := path.Base(p)
	if versionSuffix.MatchString(key) && path.Dir(p) != "." {
		key = path.Base(path.Dir(p))
	}
	if spec.Name != nil {
		imp.alias = spec.Name.Name
		key = imp.alias
		if key == "." || key == "_" {
			key += "~" + p // several dot or blank imports can coexist
		}
	}
	d.imports[key] = imp
}

func (d *declarations) addFunc(decl *ast.FuncDecl, text func(ast.Node) string, cell int) error {
	key := decl.Name.Name
	if strings.HasPrefix(key, genPrefix) {
		return fmt.Errorf("the name %s is reserved for the code export generates; rename it", key)
	}
	if decl.Recv != nil && len(decl.Recv.List) > 0 {
		key = receiverType(decl.Recv.List[0].Type) + "~" + key
	}
	src, doc := text(decl), ""
	if decl.Doc != nil {
		doc = text(decl.Doc) + "\n//\n"
	}
	if strings.HasPrefix(decl.Name.Name, "init_") && decl.Recv == nil {
		// GoNB renders func init_xxx() as func init(), so each cell can have one.
		src = strings.Replace(src, "func "+decl.Name.Name, "func init", 1)
	}
	d.funcs[key] = &textDecl{doc: doc, text: src, cell: cell}
	return nil
}

// receiverType names a method's receiver type: T for T, *T, T[P] and *T[P].
func receiverType(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return "unknown"
		}
	}
}

func (d *declarations) addTypes(decl *ast.GenDecl, text func(ast.Node) string, cell int) error {
	for _, spec := range decl.Specs {
		ts := spec.(*ast.TypeSpec)
		if strings.HasPrefix(ts.Name.Name, genPrefix) {
			return fmt.Errorf("the name %s is reserved for the code export generates; rename it", ts.Name.Name)
		}
		d.types[ts.Name.Name] = &textDecl{text: text(ts), cell: cell}
	}
	return nil
}

func (d *declarations) addVars(decl *ast.GenDecl, text func(ast.Node) string, cell int) error {
	for _, spec := range decl.Specs {
		vs := spec.(*ast.ValueSpec)
		typ := ""
		if vs.Type != nil {
			typ = text(vs.Type)
		}
		var tuple *[]string
		if len(vs.Values) == 1 && len(vs.Names) > 1 {
			tuple = &[]string{}
		}
		for i, name := range vs.Names {
			if strings.HasPrefix(name.Name, genPrefix) {
				return fmt.Errorf("the name %s is reserved for the code export generates; rename it", name.Name)
			}
			v := &varDecl{name: name.Name, typ: typ, tuple: tuple, cell: cell}
			if i < len(vs.Values) {
				v.value = text(vs.Values[i])
			}
			key := name.Name
			if key == "_" {
				d.seq++
				key = fmt.Sprintf("_~%06d", d.seq)
			}
			if tuple != nil {
				*tuple = append(*tuple, key)
			}
			d.vars[key] = v
		}
	}
	return nil
}

func (d *declarations) addConsts(decl *ast.GenDecl, text func(ast.Node) string, cell int) error {
	var prev *constDecl
	for _, spec := range decl.Specs {
		vs := spec.(*ast.ValueSpec)
		typ := ""
		if vs.Type != nil {
			typ = text(vs.Type)
		}
		for i, name := range vs.Names {
			if strings.HasPrefix(name.Name, genPrefix) {
				return fmt.Errorf("the name %s is reserved for the code export generates; rename it", name.Name)
			}
			c := &constDecl{name: name.Name, typ: typ, prev: prev, cell: cell}
			if i < len(vs.Values) {
				c.value = text(vs.Values[i])
			}
			if prev != nil {
				prev.next = c
			}
			prev = c
			d.consts[name.Name] = c
		}
	}
	return nil
}

// merge adds the declarations of a newer cell, replacing those of the same
// key. A variable declared in a tuple takes the whole old tuple with it.
func (d *declarations) merge(newer declarations) {
	for k, v := range newer.imports {
		d.imports[k] = v
	}
	for k, v := range newer.types {
		d.types[k] = v
	}
	for k, v := range newer.consts {
		d.consts[k] = v
	}
	for k, v := range newer.funcs {
		d.funcs[k] = v
	}
	// Keys of `_` variables are unique per cell only; renumber the newer ones.
	for k, v := range newer.vars {
		if strings.HasPrefix(k, "_~") {
			d.seq++
			nk := fmt.Sprintf("_~%06d", d.seq)
			if v.tuple != nil {
				i := slices.Index(*v.tuple, k)
				(*v.tuple)[i] = nk
			}
			d.vars[nk] = v
		}
	}
	for k, v := range newer.vars {
		if strings.HasPrefix(k, "_~") {
			continue
		}
		if old, ok := d.vars[k]; ok && old.tuple != nil && old.tuple != v.tuple {
			for _, tk := range *old.tuple {
				if d.vars[tk] != nil && d.vars[tk].tuple == old.tuple {
					delete(d.vars, tk)
				}
			}
		}
		d.vars[k] = v
	}
}

// remove drops the declarations with the given key, as `%rm KEY` does.
func (d *declarations) remove(key string) {
	delete(d.imports, key)
	delete(d.consts, key)
	delete(d.types, key)
	delete(d.vars, key)
	delete(d.funcs, key)
}

// render writes the declarations in GoNB's order: imports, types, constants,
// variables, functions, each sorted by key.
func (d *declarations) render(b *strings.Builder) {
	if len(d.imports) > 0 {
		b.WriteString("import (\n")
		for _, k := range sortedKeys(d.imports) {
			imp := d.imports[k]
			b.WriteString("\t")
			if imp.alias != "" {
				b.WriteString(imp.alias + " ")
			}
			fmt.Fprintf(b, "%q // cell %d\n", imp.path, imp.cell)
		}
		b.WriteString(")\n\n")
	}
	for _, k := range sortedKeys(d.types) {
		t := d.types[k]
		fmt.Fprintf(b, "// From cell %d.\ntype %s\n\n", t.cell, t.text)
	}
	d.renderConsts(b)
	if len(d.vars) > 0 {
		b.WriteString("var (\n")
		for _, k := range sortedKeys(d.vars) {
			v := d.vars[k]
			names := v.name
			if v.tuple != nil {
				if (*v.tuple)[0] != k {
					continue // rendered with the tuple's first variable
				}
				ns := make([]string, len(*v.tuple))
				for i, tk := range *v.tuple {
					ns[i] = d.vars[tk].name
				}
				names = strings.Join(ns, ", ")
			}
			fmt.Fprintf(b, "\t// From cell %d.\n\t%s", v.cell, names)
			if v.typ != "" {
				b.WriteString(" " + v.typ)
			}
			if v.value != "" {
				b.WriteString(" = " + v.value)
			}
			b.WriteString("\n")
		}
		b.WriteString(")\n\n")
	}
	for _, k := range sortedKeys(d.funcs) {
		f := d.funcs[k]
		fmt.Fprintf(b, "%s// From cell %d.\n%s\n\n", f.doc, f.cell, f.text)
	}
}

// renderConsts writes each const block whose first constant is still
// remembered, with its members that were not redefined since.
func (d *declarations) renderConsts(b *strings.Builder) {
	for _, k := range sortedKeys(d.consts) {
		c := d.consts[k]
		if d.consts[k] != c || d.hasCurrentBefore(c) {
			continue // rendered with the first remembered constant of its block
		}
		fmt.Fprintf(b, "// From cell %d.\nconst (\n", c.cell)
		for ; c != nil; c = c.next {
			if d.consts[c.name] != c {
				continue
			}
			b.WriteString("\t" + c.name)
			if c.typ != "" {
				b.WriteString(" " + c.typ)
			}
			if c.value != "" {
				b.WriteString(" = " + c.value)
			}
			b.WriteString("\n")
		}
		b.WriteString(")\n\n")
	}
}

// hasCurrentBefore says whether a constant before c in its block is still remembered.
func (d *declarations) hasCurrentBefore(c *constDecl) bool {
	for p := c.prev; p != nil; p = p.prev {
		if d.consts[p.name] == p {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
