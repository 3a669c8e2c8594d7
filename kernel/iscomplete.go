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
	depth, unterminated, bad := bracketDepth(text)
	switch {
	case bad || depth < 0:
		return "invalid", ""
	case unterminated || depth > 0:
		return "incomplete", strings.Repeat("\t", max(depth, 0))
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

// bracketDepth counts the brackets left open in text; unterminated is a raw string
// or comment still open at the end, bad another scanner error.
func bracketDepth(text string) (depth int, unterminated, bad bool) {
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
	for {
		_, tok, _ := s.Scan()
		switch tok {
		case token.EOF:
			return depth, unterminated, bad
		case token.LPAREN, token.LBRACK, token.LBRACE:
			depth++
		case token.RPAREN, token.RBRACK, token.RBRACE:
			depth--
			if depth < 0 {
				return depth, unterminated, bad
			}
		}
	}
}
