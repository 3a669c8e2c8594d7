package repl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/peterh/liner"
	"golang.org/x/term"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// errInterrupted is returned by readLine when Ctrl-C cancels the line.
var errInterrupted = errors.New("interrupted")

// input reads the REPL's lines.
type input interface {
	// readLine returns the next line, io.EOF at the end, errInterrupted on Ctrl-C.
	readLine(prompt string) (string, error)
	// remember adds a line to the history (and its file).
	remember(line string) error
	interactive() bool
	close()
}

// newInput picks liner for a terminal on the process's stdin and stdout, and
// a plain reader otherwise.
func newInput(cfg Config, sig <-chan os.Signal) (input, error) {
	if f, ok := cfg.Stdin.(*os.File); ok && f == os.Stdin && term.IsTerminal(int(f.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) {
		return newTerminal(cfg.HistoryFile)
	}
	return newPlain(cfg.Stdin, sig), nil
}

// terminal edits lines with liner and keeps a history file.
type terminal struct {
	l       *liner.State
	history string
}

func newTerminal(history string) (*terminal, error) {
	t := &terminal{l: liner.NewLiner(), history: history}
	t.l.SetCtrlCAborts(true)
	t.l.SetMultiLineMode(true)
	if history != "" {
		f, err := os.Open(history)
		switch {
		case err == nil:
			_, err = t.l.ReadHistory(f)
			f.Close()
			if err != nil {
				t.l.Close()
				return nil, fmt.Errorf("repl: reading the history %s: %w (delete it to start afresh)", history, err)
			}
		case !errors.Is(err, os.ErrNotExist):
			t.l.Close()
			return nil, fmt.Errorf("repl: history %s: %w", history, err)
		}
	}
	return t, nil
}

func (t *terminal) readLine(prompt string) (string, error) {
	line, err := t.l.Prompt(prompt)
	if errors.Is(err, liner.ErrPromptAborted) {
		return "", errInterrupted
	}
	return line, err
}

// remember appends the line to the history and rewrites the history file
// atomically, so that a crash keeps what was typed before it.
func (t *terminal) remember(line string) error {
	if line == "" {
		return nil
	}
	t.l.AppendHistory(line)
	if t.history == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(t.history), 0o755); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return atomicfile.Write(t.history, func(w io.Writer) error {
		_, err := t.l.WriteHistory(w)
		return err
	})
}

func (t *terminal) interactive() bool { return true }
func (t *terminal) close()            { t.l.Close() }

// plain reads lines from any reader, without prompts or history; Ctrl-C
// (SIGINT) while waiting for a line cancels the input typed so far.
type plain struct {
	lines chan string
	err   chan error
	sig   <-chan os.Signal
}

func newPlain(r io.Reader, sig <-chan os.Signal) *plain {
	p := &plain{lines: make(chan string), err: make(chan error, 1), sig: sig}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		p.err <- err
	}()
	return p
}

func (p *plain) readLine(string) (string, error) {
	select {
	case line := <-p.lines:
		return line, nil
	case err := <-p.err:
		p.err <- err // later calls see it too
		return "", err
	case <-p.sig:
		return "", errInterrupted
	}
}

func (p *plain) remember(string) error { return nil }
func (p *plain) interactive() bool     { return false }
func (p *plain) close()                {}
