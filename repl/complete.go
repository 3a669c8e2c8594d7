package repl

import (
	"errors"
	"go/parser"
	"go/scanner"
	"go/token"
	"strings"
)

// Complete says whether src is a whole input the REPL should evaluate, or
// whether it needs more lines: it is complete when go/parser accepts it as
// top-level declarations or as a statement list, or when its first syntax
// error lies inside the text (the interpreter then reports the error). It is
// incomplete when the parser runs off its end: an open brace, parenthesis,
// raw string or comment, or an operator waiting for its operand.
func Complete(src string) bool {
	if strings.TrimSpace(src) == "" {
		return true
	}
	const filePrefix = "package main\n"
	fileErr := parseErr(filePrefix+src+"\n", len(filePrefix)+len(src))
	if fileErr == nil {
		return true
	}
	const stmtPrefix = "package main\nfunc _() {\n"
	stmtErr := parseErr(stmtPrefix+src+"\n}\n", len(stmtPrefix)+len(src))
	if stmtErr == nil {
		return true
	}
	return !fileErr.pastEnd && !stmtErr.pastEnd
}

// syntaxErr is the first error of a parse, and whether it lies past the end
// of the user's text (in the wrapper or at EOF) or is an unterminated token.
type syntaxErr struct{ pastEnd bool }

func parseErr(wrapped string, end int) *syntaxErr {
	_, err := parser.ParseFile(token.NewFileSet(), "", wrapped, parser.SkipObjectResolution)
	if err == nil {
		return nil
	}
	var list scanner.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		return &syntaxErr{}
	}
	e := list[0]
	unterminated := e.Msg == "raw string literal not terminated" || e.Msg == "comment not terminated"
	return &syntaxErr{pastEnd: unterminated || e.Pos.Offset >= end || strings.HasSuffix(e.Msg, "found 'EOF'")}
}
