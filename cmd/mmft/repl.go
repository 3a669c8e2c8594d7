package main

import (
	"fmt"

	"github.com/mmft-go/mmft/repl"
)

func runRepl(c *cli, args []string) error {
	fs := c.newFlags("repl", "[--history FILE | --no-history]", `
An interactive Go REPL (yaegi) with persistent state over the standard library and
the non-generic facade of mmft (package github.com/mmft-go/mmft/rewards for now).
Import packages as in Go: import "fmt". An input may span lines: it runs once it
is complete (the prompt is "..." until then). The value of an expression is shown.
Errors and panics are printed and the session goes on. On a terminal, lines are
edited (arrows, Ctrl-R) and kept in the history file; Ctrl-C cancels the input or
the running evaluation, Ctrl-D exits. With stdin not a terminal, lines are read
plainly without prompts or history (echo 'x := 1' | mmft repl).`)
	defHistory, defErr := repl.DefaultHistoryFile()
	history := fs.String("history", defHistory, "file that keeps the lines typed between sessions")
	noHistory := fs.Bool("no-history", false, "keep no history")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft repl: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *noHistory {
		*history = ""
	} else if *history == "" && defErr != nil {
		return defErr
	}
	return repl.Run(repl.Config{Stdin: c.stdin, Stdout: c.stdout, Stderr: c.stderr, HistoryFile: *history})
}
