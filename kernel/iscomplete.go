package kernel

import (
	"go/parser"
	"go/scanner"
	"go/token"
	"strings"
)

// isComplete answers is_complete_request from Go's scanner and parser: "complete" when
// the cell parses (as declarations, statements, or both around "%%"), "incomplete"
// with an indent when brackets are open or the text stops mid-statement, "invalid"
// otherwise.
func isComplete(code string) (status, indent string) {
	c, err := splitCell(0, code)
	if err != nil {
		return "invalid", ""
	}
	text := c.decls + "\n" + c.body
	closers, unterminated, bad := openBrackets(text)
	switch {
	case bad:
		return "invalid", ""
	case unterminated:
		return "incomplete", ""
	case closers != "":
		// Open brackets: incomplete when closing them gives Go that parses up to the
		// end of what was typed, invalid when an error comes before.
		if closed := closeCell(c, closers); closed != nil && !atEnd(closed, text) {
			return "invalid", ""
		}
		return "incomplete", strings.Repeat("\t", len(closers))
	}
	declsOK := parses(declPrefix, c.decls, "")
	if !c.hasBody && !declsOK {
		// A cell of statements alone.
		if err := parseErr(bodyPrefix, c.decls, "\n}"); err == nil {
			return "complete", ""
		} else if atEnd(err, bodyPrefix+c.decls) {
			return "incomplete", ""
		}
		return "invalid", ""
	}
	if !declsOK {
		return "invalid", ""
	}
	if c.hasBody {
		if err := parseErr(bodyPrefix, c.body, "\n}"); err != nil {
			if atEnd(err, bodyPrefix+c.body) {
				return "incomplete", ""
			}
			return "invalid", ""
		}
	}
	return "complete", ""
}

func parses(prefix, text, suffix string) bool { return parseErr(prefix, text, suffix) == nil }

func parseErr(prefix, text, suffix string) error {
	_, err := parser.ParseFile(token.NewFileSet(), "cell", prefix+text+suffix, parser.SkipObjectResolution)
	return err
}

// atEnd reports whether a parse error is at the end of src (more text could fix it).
func atEnd(err error, src string) bool {
	el, ok := err.(scanner.ErrorList)
	if !ok || len(el) == 0 {
		return false
	}
	return el[0].Pos.Offset >= len(strings.TrimRight(src, " \t\n"))
}

// closeCell parses the cell with the open brackets closed and returns the error.
// Positions in the error are offsets in c.decls + "\n" + c.body.
func closeCell(c *parsedCell, closers string) error {
	if c.hasBody {
		if err := parseErr(declPrefix, c.decls, ""); err != nil {
			return shift(err, -len(declPrefix))
		}
		err := parseErr(bodyPrefix, c.body+"\n"+closers, "\n}")
		return shift(err, len(c.decls)+1-len(bodyPrefix))
	}
	if err := parseErr(declPrefix, c.decls+"\n"+closers, ""); err == nil {
		return nil
	}
	return shift(parseErr(bodyPrefix, c.decls+"\n"+closers, "\n}"), -len(bodyPrefix))
}

// shift moves the offsets of a parse error by d.
func shift(err error, d int) error {
	el, ok := err.(scanner.ErrorList)
	if !ok {
		return err
	}
	out := make(scanner.ErrorList, len(el))
	for i, e := range el {
		c := *e
		c.Pos.Offset += d
		out[i] = &c
	}
	return out
}

// openBrackets returns the closing brackets text needs, innermost first; unterminated
// is a raw string or comment still open at the end, bad another scanner error or a
// closing bracket that matches none.
func openBrackets(text string) (closers string, unterminated, bad bool) {
	fset := token.NewFileSet()
	file := fset.AddFile("cell", -1, len(text))
	var s scanner.Scanner
	s.Init(file, []byte(text), func(pos token.Position, msg string) {
		if strings.Contains(msg, "raw string literal not terminated") || strings.Contains(msg, "comment not terminated") {
			unterminated = true
		} else {
			bad = true
		}
	}, 0)
	var stack []byte
	pairs := map[token.Token]byte{token.LPAREN: ')', token.LBRACK: ']', token.LBRACE: '}'}
	for {
		_, tok, _ := s.Scan()
		switch tok {
		case token.EOF:
			for i := len(stack) - 1; i >= 0; i-- {
				closers += string(stack[i])
			}
			return closers, unterminated, bad
		case token.LPAREN, token.LBRACK, token.LBRACE:
			stack = append(stack, pairs[tok])
		case token.RPAREN, token.RBRACK, token.RBRACE:
			if len(stack) == 0 || tok.String() != string(stack[len(stack)-1]) {
				return "", unterminated, true
			}
			stack = stack[:len(stack)-1]
		}
	}
}
