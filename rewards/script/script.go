// Package script runs custom rewards written as Go source, interpreted with
// yaegi (github.com/traefik/yaegi), so that a notebook cell can send a reward
// to a long-lived worker without rebuilding it.
//
// A reward's source defines
//
//	func Reward(s Sample, c Completion) float64
//
// in package main (the package clause may be left out). It sees the facade of
// this package unqualified: the types Sample and Completion and the helpers
// Output, Structural, Format, Accuracy, AccuracyTol, ExtractAnswer, Match and
// MatchTol, which wrap the rewards package without generics (yaegi cannot
// call generic functions). It may import only the packages AllowedImports
// lists.
//
// # What a reward cannot do to the process
//
//   - Compile errors (syntax, types, a disallowed import, a go statement, no
//     Reward or one of the wrong type) are returned as *Error values whose
//     line and column are those of the user's source.
//   - A panic in the reward is recovered and returned as an error naming the
//     panic and, when yaegi reports it, the innermost function of the source
//     and the line where that function starts (yaegi reports frames, not
//     statements).
//   - Runaway recursion is stopped at Options.MaxDepth nested calls of the
//     reward's own functions with an error (Go's stack overflow is fatal and
//     cannot be recovered, so every function body of the source is given a
//     depth counter before it is interpreted; the source's line numbers are
//     kept).
//   - A call that does not return within Options.Timeout (or before its
//     context ends) returns an error. yaegi checks for cancellation between
//     interpreted steps, so a tight interpreted loop (for {}) and a blocked
//     channel operation stop promptly and their goroutine ends. A call stuck
//     inside a compiled function (a regexp or strings call on a huge input)
//     cannot be interrupted: its goroutine runs until that function returns
//     and its result is dropped. Either way the interpreter of a call that
//     timed out is never reused; the next call builds a fresh one from the
//     same source.
//   - go statements are refused at compile time: a panic in another goroutine
//     would end the process.
//
// Not guarded: memory. A reward that allocates more memory than the machine
// has ends the process (Go's out-of-memory is fatal), and one that grows its
// memory in a loop can take up to Options.Timeout's worth of allocation.
//
// A Reward runs one call at a time; compile one per goroutine to score in parallel.
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/mmft-go/mmft/rewards"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one call of a reward.
	DefaultTimeout = time.Second
	// DefaultMaxDepth bounds the nesting of the reward's own function calls.
	// yaegi unwinds a panic through n interpreted frames in time quadratic in
	// n (1000 frames: 0.06 s, 4000: 0.7 s on the 2-core machine), so the limit
	// is kept low; 1000 nested calls is far more than a reward needs.
	DefaultMaxDepth = 1000
	// DefaultName names a reward in errors.
	DefaultName = "reward"
)

// MaxSourceLen is the largest reward source Compile accepts, in bytes.
const MaxSourceLen = 1 << 20

// Options configure Compile; the zero value is usable.
type Options struct {
	// Name names the reward in errors; empty means DefaultName.
	Name string
	// Timeout bounds each call (and the source's package initialisation);
	// zero means DefaultTimeout.
	Timeout time.Duration
	// MaxDepth bounds the nesting of the source's own function calls; zero
	// means DefaultMaxDepth.
	MaxDepth int
}

// AllowedImports returns the import paths a reward's source may use.
func AllowedImports() []string {
	return []string{"math", "regexp", "strconv", "strings", "unicode", "unicode/utf8", FacadePath}
}

// Error is a compile error at a place in the user's source.
type Error struct {
	// Name is the reward's name (Options.Name).
	Name string
	// Line and Column are 1-based, in the source given to Compile; Column is
	// 0 when unknown.
	Line, Column int
	// Msg says what is wrong.
	Msg string
}

// Error formats the error as "script: NAME: line L, column C: MSG".
func (e *Error) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("script: %s: line %d, column %d: %s", e.Name, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("script: %s: line %d: %s", e.Name, e.Line, e.Msg)
}

// Names the prepared source uses; the __mmft_ prefix keeps them out of the
// user's way.
const (
	guardPath = "mmft/guard"
	callPath  = "mmft/call"
	guardName = "__mmft_guard"
	callName  = "__mmft_call"
	callExpr  = "Reward(*" + callName + ".S, *" + callName + ".C)"
)

// Reward is a compiled custom reward.
type Reward struct {
	name     string
	timeout  time.Duration
	maxDepth int
	prepared string
	where    *sourceMap

	mu sync.Mutex
	in *instance // nil after a call timed out: the next call builds another
}

// instance is one interpreter holding the reward, with the state its
// exported call and guard packages read.
type instance struct {
	interp     *interp.Interpreter
	call       *interp.Program
	sample     Sample
	completion Completion
	depth      int
	stderr     bytes.Buffer
}

// Compile checks and interprets src, which must define
// func Reward(s Sample, c Completion) float64. Errors in the source are
// *Error values (several are joined with errors.Join).
func Compile(src string, opts Options) (r *Reward, err error) {
	r = &Reward{name: opts.Name, timeout: opts.Timeout, maxDepth: opts.MaxDepth}
	if r.name == "" {
		r.name = DefaultName
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.maxDepth <= 0 {
		r.maxDepth = DefaultMaxDepth
	}
	if len(src) > MaxSourceLen {
		return nil, fmt.Errorf("script: %s: source of %d bytes is over the %d-byte limit", r.name, len(src), MaxSourceLen)
	}
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("script: %s: the interpreter failed on this source: %v", r.name, p)
		}
	}()
	if r.prepared, r.where, err = prepare(src, r.name); err != nil {
		return nil, err
	}
	if r.in, err = r.instantiate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Name returns the reward's name.
func (r *Reward) Name() string { return r.name }

// Score calls the reward on one completion. It returns an error when the
// reward panics, does not return within the timeout or before ctx ends, or
// returns NaN or an infinity.
func (r *Reward) Score(ctx context.Context, s Sample, c Completion) (v float64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			r.in = nil
			v, err = 0, fmt.Errorf("script: %s: the interpreter failed: %v", r.name, p)
		}
	}()
	if r.in == nil {
		if r.in, err = r.instantiate(); err != nil {
			return 0, err
		}
	}
	in := r.in
	in.sample, in.completion, in.depth = s, c, 0
	in.stderr.Reset()
	callCtx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := in.interp.ExecuteWithContext(callCtx, in.call)
	if err != nil {
		return 0, r.callError(ctx, in, err)
	}
	if !res.IsValid() || res.Kind() != reflect.Float64 {
		return 0, fmt.Errorf("script: %s: Reward returned %v, not a float64", r.name, res)
	}
	v = res.Float()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("script: %s: Reward returned %v; a reward must be a finite number", r.name, v)
	}
	return v, nil
}

// ScoreInput is Score on a rewards.Input.
func (r *Reward) ScoreInput(ctx context.Context, in rewards.Input) (float64, error) {
	s, c := FromInput(in)
	return r.Score(ctx, s, c)
}

// Func adapts the reward to rewards.Func: a call that fails scores 0 and its
// error goes to onError (which may be nil, and must be safe for concurrent
// use when the Func is).
func (r *Reward) Func(onError func(error)) rewards.Func {
	return func(in rewards.Input) float64 {
		v, err := r.ScoreInput(context.Background(), in)
		if err != nil && onError != nil {
			onError(err)
		}
		return v
	}
}

// callError explains a failed call and retires the interpreter of a call
// that was stopped (it may still be running inside a compiled function).
func (r *Reward) callError(ctx context.Context, in *instance, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		r.in = nil
		if ctx.Err() != nil {
			return fmt.Errorf("script: %s: stopped: %w", r.name, ctx.Err())
		}
		return fmt.Errorf("script: %s: Reward did not return within %v: %w", r.name, r.timeout, err)
	}
	var p interp.Panic
	if errors.As(err, &p) {
		return fmt.Errorf("script: %s: Reward panicked%s: %v", r.name, r.panicLine(in.stderr.String()), p.Value)
	}
	return fmt.Errorf("script: %s: %w", r.name, err)
}

// panicLine is " in F (line N)" for the innermost function of the user's
// source that yaegi printed for a panic (N is the line where F starts), or "".
func (r *Reward) panicLine(stderr string) string {
	m := panicLineRE.FindStringSubmatch(stderr)
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	line, _ = r.where.original(line, col)
	return fmt.Sprintf(" in %s (line %d)", m[3], line)
}

var (
	panicLineRE = regexp.MustCompile(`(?m)^(\d+):(\d+): panic: main\.(\w+)\(`)
	posErrorRE  = regexp.MustCompile(`^(?:[^\s:]*\.go:)?(\d+):(\d+): (.*)$`)
	rewardType  = reflect.TypeOf((func(Sample, Completion) float64)(nil))
)

// instantiate builds an interpreter holding the prepared source.
func (r *Reward) instantiate() (*instance, error) {
	in := &instance{}
	in.interp = interp.New(interp.Options{
		Stdout: io.Discard, Stderr: &in.stderr, Args: []string{}, Env: []string{},
		SourcecodeFilesystem: fstest.MapFS{}, // no source package can be loaded from disk
	})
	symbols := interp.Exports{}
	for _, path := range AllowedImports() {
		if path == FacadePath {
			continue
		}
		key := path + "/" + path[strings.LastIndex(path, "/")+1:]
		symbols[key] = stdlib.Symbols[key]
	}
	symbols[FacadePath+"/reward"] = facadeSymbols()
	symbols[guardPath+"/guard"] = map[string]reflect.Value{
		"Enter": reflect.ValueOf(func() {
			if in.depth++; in.depth > r.maxDepth {
				panic(fmt.Sprintf("call depth over %d: runaway recursion?", r.maxDepth))
			}
		}),
		"Exit": reflect.ValueOf(func() { in.depth-- }),
	}
	symbols[callPath+"/call"] = map[string]reflect.Value{
		"S": reflect.ValueOf(&in.sample),
		"C": reflect.ValueOf(&in.completion),
	}
	if err := in.interp.Use(symbols); err != nil {
		return nil, fmt.Errorf("script: %s: %w", r.name, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	if _, err := in.interp.EvalWithContext(ctx, r.prepared); err != nil {
		return nil, r.compileError(err)
	}
	fn, err := in.interp.EvalWithContext(ctx, "Reward")
	if err != nil {
		return nil, fmt.Errorf("script: %s: the source defines no func Reward(s Sample, c Completion) float64", r.name)
	}
	if !fn.IsValid() || fn.Type() != rewardType {
		return nil, fmt.Errorf("script: %s: Reward is %v; want func(s Sample, c Completion) float64", r.name, typeOf(fn))
	}
	if _, err := in.interp.EvalWithContext(ctx, fmt.Sprintf("import %s %q", callName, callPath)); err != nil {
		return nil, fmt.Errorf("script: %s: %w", r.name, err)
	}
	// The call is compiled once and executed for every Score: evaluating it
	// anew each time would grow the interpreter's global frame with every call.
	if in.call, err = in.interp.Compile(callExpr); err != nil {
		return nil, fmt.Errorf("script: %s: %w", r.name, err)
	}
	return in, nil
}

func typeOf(v reflect.Value) any {
	if !v.IsValid() {
		return "undefined"
	}
	return v.Type()
}

// compileError turns yaegi's error on the prepared source into one whose
// position is in the user's source.
func (r *Reward) compileError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("script: %s: the source's package initialisation did not finish within %v", r.name, r.timeout)
	}
	var p interp.Panic
	if errors.As(err, &p) {
		return fmt.Errorf("script: %s: the source's package initialisation panicked: %v", r.name, p.Value)
	}
	var list scanner.ErrorList
	if errors.As(err, &list) {
		errs := make([]error, len(list))
		for i, e := range list {
			line, col := r.where.original(e.Pos.Line, e.Pos.Column)
			errs[i] = &Error{Name: r.name, Line: line, Column: col, Msg: e.Msg}
		}
		return errors.Join(errs...)
	}
	if m := posErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		line, col = r.where.original(line, col)
		return &Error{Name: r.name, Line: line, Column: col, Msg: m[3]}
	}
	return fmt.Errorf("script: %s: %w", r.name, err)
}

// prepare checks src and returns the source yaegi runs: src with a package
// clause when it has none, the facade and guard imported after the package
// clause, and a depth guard at the top of every function body, all inserted
// without adding lines; where maps positions back to src.
func prepare(src, name string) (string, *sourceMap, error) {
	var inserts []insertion
	full := src
	if _, err := parser.ParseFile(token.NewFileSet(), "", src, parser.PackageClauseOnly); err != nil {
		inserts = append(inserts, insertion{at: 0, text: "package main; "})
		full = "package main; " + src
	}
	where := &sourceMap{src: src, inserts: inserts}
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "reward.go", full, parser.AllErrors)
	if err != nil {
		var list scanner.ErrorList
		if errors.As(err, &list) {
			list.Sort()
			errs := make([]error, 0, len(list))
			for _, e := range list {
				line, col := where.original(e.Pos.Line, e.Pos.Column)
				errs = append(errs, &Error{Name: name, Line: line, Column: col, Msg: e.Msg})
			}
			return "", nil, errors.Join(errs...)
		}
		return "", nil, fmt.Errorf("script: %s: %w", name, err)
	}
	at := func(p token.Pos) (int, int) { pos := fset.Position(p); return where.original(pos.Line, pos.Column) }
	fail := func(p token.Pos, format string, args ...any) error {
		line, col := at(p)
		return &Error{Name: name, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
	}
	if file.Name.Name != "main" {
		return "", nil, fail(file.Name.Pos(), "package %s: a reward is package main (or has no package clause)", file.Name.Name)
	}
	allowed := AllowedImports()
	for _, imp := range file.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if !slices.Contains(allowed, path) {
			return "", nil, fail(imp.Path.Pos(), "import %q is not allowed; a reward may import %s", path, strings.Join(allowed, ", "))
		}
	}
	offset := func(p token.Pos) int { return fset.Position(p).Offset - len(full) + len(src) }
	imports := fmt.Sprintf("import . %q; import %s %q", FacadePath, guardName, guardPath)
	if len(full) > len(src) { // the package clause is Compile's: the imports follow it
		inserts[0].text += imports + "; "
	} else {
		inserts = append(inserts, insertion{at: offset(file.Name.End()), text: "; " + imports})
	}
	guard := fmt.Sprintf(" %s.Enter(); defer %s.Exit();", guardName, guardName)
	var bad error
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			if bad == nil {
				bad = fail(n.Pos(), "go statements are not allowed in a reward (a panic in another goroutine would end the process)")
			}
		case *ast.FuncDecl:
			if n.Body != nil {
				inserts = append(inserts, insertion{at: offset(n.Body.Lbrace) + 1, text: guard})
			}
		case *ast.FuncLit:
			inserts = append(inserts, insertion{at: offset(n.Body.Lbrace) + 1, text: guard})
		case *ast.Ident:
			if strings.HasPrefix(n.Name, "__mmft_") && bad == nil {
				bad = fail(n.Pos(), "the name %s is reserved", n.Name)
			}
		}
		return true
	})
	if bad != nil {
		return "", nil, bad
	}
	where.inserts = inserts
	return where.apply(), where, nil
}

// insertion is text inserted at a byte offset of the user's source.
type insertion struct {
	at   int
	text string
}

// sourceMap maps positions of the prepared source back to the user's.
type sourceMap struct {
	src     string
	inserts []insertion
}

// apply returns the prepared source.
func (m *sourceMap) apply() string {
	sort.SliceStable(m.inserts, func(i, j int) bool { return m.inserts[i].at < m.inserts[j].at })
	var b strings.Builder
	last := 0
	for _, ins := range m.inserts {
		b.WriteString(m.src[last:ins.at])
		b.WriteString(ins.text)
		last = ins.at
	}
	b.WriteString(m.src[last:])
	return b.String()
}

// original maps a 1-based line and column of the prepared source to the
// user's source; text that Compile inserted maps to where it was inserted.
func (m *sourceMap) original(line, col int) (int, int) {
	prepared := m.apply()
	off := lineStart(prepared, line) + max(col, 1) - 1
	shift := 0 // bytes inserted before off
	for _, ins := range m.inserts {
		start := ins.at + shift
		if off < start {
			break
		}
		if off < start+len(ins.text) {
			off, shift = ins.at, 0
			break
		}
		shift += len(ins.text)
	}
	off -= shift
	off = min(max(off, 0), len(m.src))
	before := m.src[:off]
	l := strings.Count(before, "\n") + 1
	return l, off - strings.LastIndex(before, "\n")
}

// lineStart is the byte offset where 1-based line starts in s (len(s) past the end).
func lineStart(s string, line int) int {
	off := 0
	for range line - 1 {
		i := strings.IndexByte(s[off:], '\n')
		if i < 0 {
			return len(s)
		}
		off += i + 1
	}
	return off
}
