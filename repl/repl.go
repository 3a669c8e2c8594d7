// Package repl is `mmft repl`: an interactive Go interpreter (yaegi) whose
// state persists from one input to the next, over the standard library and
// the non-generic facade of mmft in package repl/symbols.
//
// An input may span lines: it is evaluated once Complete says the parser has
// all of it; until then the prompt is "...". On a terminal, lines are edited
// with github.com/peterh/liner and kept in a history file; otherwise lines are
// read plainly from the input. Errors and panics in the code are printed and
// the session goes on; Ctrl-C cancels the input being typed or the evaluation
// running, Ctrl-D (end of input) ends the session.
package repl

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/mmft-go/mmft/repl/symbols"
)

// Prompts of the REPL: the first line of an input, and its continuation lines.
const (
	Prompt             = "mmft> "
	ContinuationPrompt = "...   "
)

// Session is an interpreter whose declarations and variables persist across
// Eval calls.
type Session struct {
	in     *interp.Interpreter
	stdout io.Writer
}

// NewSession starts an interpreter that can import the standard library and
// the packages of repl/symbols; code it runs reads stdin and writes stdout and
// stderr.
func NewSession(stdin io.Reader, stdout, stderr io.Writer) (*Session, error) {
	in := interp.New(interp.Options{Stdin: stdin, Stdout: stdout, Stderr: stderr, Args: []string{"mmft-repl"}})
	if err := in.Use(stdlib.Symbols); err != nil {
		return nil, fmt.Errorf("repl: loading the standard library symbols: %w", err)
	}
	if err := in.Use(symbols.Symbols); err != nil {
		return nil, fmt.Errorf("repl: loading the mmft symbols: %w", err)
	}
	return &Session{in: in, stdout: stdout}, nil
}

// Eval evaluates one complete input. It returns the value to show (the
// value of an expression input; "" otherwise) or the error, with panics in
// the code turned into errors. Cancelling ctx stops the evaluation.
func (s *Session) Eval(ctx context.Context, src string) (shown string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	v, err := s.in.EvalWithContext(ctx, src)
	if err != nil {
		return "", describe(err)
	}
	if !v.IsValid() || !echoes(src) || v.Type() == reflect.TypeFor[*any]() {
		return "", nil
	}
	return fmt.Sprintf("%#v", v.Interface()), nil
}

// describe turns an interpreter error into the message a person reads.
func describe(err error) error {
	var p interp.Panic
	var list scanner.ErrorList
	switch {
	case errors.As(err, &p):
		return fmt.Errorf("panic: %v", p.Value)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.As(err, &list) && len(list) > 0:
		return errors.New(strings.TrimPrefix(list[0].Error(), "_.go:"))
	}
	return err
}

// echoes says whether the value of src is shown: src is one expression, and
// not a call of fmt's or log's print functions (whose results are noise).
func echoes(src string) bool {
	e, err := parser.ParseExpr(src)
	if err != nil {
		return false
	}
	if call, ok := e.(*ast.CallExpr); ok {
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
			if pkg, ok := sel.X.(*ast.Ident); ok && (pkg.Name == "fmt" || pkg.Name == "log") && strings.Contains(sel.Sel.Name, "rint") {
				return false
			}
		}
	}
	return true
}

// Config says where a REPL reads and writes.
type Config struct {
	// Stdin, Stdout and Stderr are the session's streams. When Stdin is the
	// process's terminal (os.Stdin), lines are edited with liner and prompts
	// shown; otherwise lines are read plainly, without prompts.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// HistoryFile keeps the lines typed on a terminal between sessions; ""
	// keeps none. DefaultHistoryFile gives the usual place.
	HistoryFile string
}

// DefaultHistoryFile is where `mmft repl` keeps its history: mmft/repl_history
// under the user's cache folder.
func DefaultHistoryFile() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("repl: no cache folder for the history (%w); pass --history FILE", err)
	}
	return filepath.Join(dir, "mmft", "repl_history"), nil
}

// Run reads and evaluates inputs until end of input (Ctrl-D). Errors in the
// code are printed to Stderr and do not end it; Ctrl-C (SIGINT) cancels the
// input being typed or the evaluation running.
func Run(cfg Config) error {
	s, err := NewSession(cfg.Stdin, cfg.Stdout, cfg.Stderr)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	defer signal.Stop(sig)

	in, err := newInput(cfg, sig)
	if err != nil {
		return err
	}
	defer in.close()
	if in.interactive() {
		fmt.Fprintf(cfg.Stdout, "mmft repl: Go (yaegi) with the standard library and %s.\nImport packages as in Go; an input goes on while it is incomplete. Ctrl-C cancels, Ctrl-D exits.\n",
			strings.Join(facadePackages(), ", "))
	}
	var lines []string
	for {
		prompt := Prompt
		if len(lines) > 0 {
			prompt = ContinuationPrompt
		}
		line, err := in.readLine(prompt)
		switch {
		case errors.Is(err, errInterrupted):
			lines = nil
			continue
		case errors.Is(err, io.EOF):
			if in.interactive() {
				fmt.Fprintln(cfg.Stdout)
			}
			return nil
		case err != nil:
			return err
		}
		if err := in.remember(line); err != nil {
			fmt.Fprintf(cfg.Stderr, "repl: %v\n", err)
		}
		lines = append(lines, line)
		src := strings.Join(lines, "\n")
		if !Complete(src) {
			continue
		}
		lines = nil
		if strings.TrimSpace(src) == "" {
			continue
		}
		shown, err := s.evalInterruptible(src, sig)
		if err != nil {
			fmt.Fprintf(cfg.Stderr, "error: %v\n", err)
		} else if shown != "" {
			fmt.Fprintln(cfg.Stdout, shown)
		}
	}
}

// evalInterruptible evaluates src, cancelling it on SIGINT.
func (s *Session) evalInterruptible(src string, sig <-chan os.Signal) (string, error) {
	for len(sig) > 0 {
		<-sig // an interrupt from before this evaluation
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			cancel()
		case <-done:
		}
	}()
	return s.Eval(ctx, src)
}

// facadePackages lists the import paths of repl/symbols.
func facadePackages() []string {
	var paths []string
	for k := range symbols.Symbols {
		paths = append(paths, filepath.Dir(k))
	}
	return paths
}
