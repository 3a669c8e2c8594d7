// Package pylit parses Python literal expressions — the subset of Python that
// ast.literal_eval accepts — without evaluating anything.
//
// It exists because datasets exported from Python often store structured fields
// as the repr() of a Python value, e.g. the Sujet-Finance-QA-Vision-100k column
// qa_pairs holds "[{'question': ..., 'answer': ...}, ...]", which is not JSON
// (single quotes, True/None, tuples).
//
// Parse maps Python values onto Go values:
//
//	str                     string (UTF-8)
//	bytes (b'...')          Bytes
//	int                     int64, or *big.Int when it does not fit
//	float                   float64 (1e999 gives +Inf)
//	True / False            bool
//	None                    nil
//	list                    []any
//	tuple                   Tuple
//	set                     Set
//	dict                    *Dict (keys kept in source order)
//
// Strings support every prefix literal_eval accepts (r, u, b, br, rb in any
// case), single, double and triple quotes, adjacent-literal concatenation and
// all Python escapes, including \N{NAME}. Complex numbers and f-strings are
// refused with a clear error. Lone UTF-16 surrogates written as \uD800 cannot
// be held in a valid Go string: a high surrogate directly followed by a low one
// is combined into one code point (as a JSON decoder would), and a lone one
// becomes U+FFFD.
package pylit

import (
	"fmt"
	"math/big"
	"strings"
)

// Bytes is the value of a Python bytes literal (b'...').
type Bytes []byte

// Tuple is the value of a Python tuple literal.
type Tuple []any

// Set is the value of a Python set literal ({1, 2}), elements in source order.
type Set []any

// Item is one key/value pair of a Dict.
type Item struct {
	Key   any
	Value any
}

// Dict is the value of a Python dict literal, its items in source order. A key
// repeated in the source keeps its last value at its first position, as Python does.
type Dict struct {
	Items []Item
}

// Get returns the value stored under the string key k.
func (d *Dict) Get(k string) (any, bool) {
	if d == nil {
		return nil, false
	}
	for _, it := range d.Items {
		if s, ok := it.Key.(string); ok && s == k {
			return it.Value, true
		}
	}
	return nil, false
}

// Keys returns the string keys of d in order; keys that are not strings are skipped.
func (d *Dict) Keys() []string {
	if d == nil {
		return nil
	}
	keys := make([]string, 0, len(d.Items))
	for _, it := range d.Items {
		if s, ok := it.Key.(string); ok {
			keys = append(keys, s)
		}
	}
	return keys
}

// SyntaxError reports where and why a literal could not be parsed.
type SyntaxError struct {
	// Offset is the byte offset in the source where the problem was found.
	Offset int
	// Line and Col are the 1-based line and column (in bytes) of Offset.
	Line, Col int
	// Msg says what was wrong.
	Msg string
}

// Error formats the position and the reason.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("python literal: line %d col %d: %s", e.Line, e.Col, e.Msg)
}

// MaxDepth is how deeply containers may nest before Parse refuses the input
// (to bound recursion on hostile input).
const MaxDepth = 500

// Parse parses src, which must hold exactly one Python literal (surrounding
// whitespace and comments allowed), and returns its Go value as described in
// the package documentation. It never evaluates anything: names other than
// True, False and None, calls, operators other than a sign on a number, and
// complex numbers are refused with a *SyntaxError.
func Parse(src string) (any, error) {
	p := &parser{src: src}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errorf(p.pos, "empty input: expected a Python literal")
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.src) {
		return nil, p.errorf(p.pos, "unexpected %s after the literal", p.describe(p.pos))
	}
	return v, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) errorf(off int, format string, args ...any) error {
	line, col := 1, 1
	for i := 0; i < off && i < len(p.src); i++ {
		if p.src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &SyntaxError{Offset: off, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// describe names the token at off for error messages.
func (p *parser) describe(off int) string {
	if off >= len(p.src) {
		return "end of input"
	}
	end := off + 1
	for end < len(p.src) && end-off < 12 && isIdent(p.src[end]) && isIdent(p.src[off]) {
		end++
	}
	return fmt.Sprintf("%q", p.src[off:end])
}

// skipSpace skips whitespace, comments and backslash line continuations.
func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; c {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.pos++
		case '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case '\\':
			if strings.HasPrefix(p.src[p.pos:], "\\\n") {
				p.pos += 2
			} else if strings.HasPrefix(p.src[p.pos:], "\\\r\n") {
				p.pos += 3
			} else {
				return
			}
		default:
			return
		}
	}
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func (p *parser) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, p.errorf(p.pos, "containers nested more than %d deep", MaxDepth)
	}
	p.skipSpace()
	if p.pos >= len(p.src) {
		return nil, p.errorf(p.pos, "unexpected end of input: expected a value")
	}
	start := p.pos
	c := p.src[p.pos]
	switch {
	case c == '[':
		p.pos++
		items, _, err := p.sequence(']', depth)
		if err != nil {
			return nil, err
		}
		if items == nil {
			items = []any{}
		}
		return items, nil
	case c == '(':
		p.pos++
		items, trailingComma, err := p.sequence(')', depth)
		if err != nil {
			return nil, err
		}
		if len(items) == 1 && !trailingComma {
			return items[0], nil // parenthesised expression, not a tuple
		}
		if items == nil {
			items = []any{}
		}
		return Tuple(items), nil
	case c == '{':
		p.pos++
		return p.dictOrSet(depth)
	case c == '"' || c == '\'':
		return p.strings()
	case c == '+' || c == '-':
		return p.signed()
	case c >= '0' && c <= '9' || c == '.' && p.pos+1 < len(p.src) && p.src[p.pos+1] >= '0' && p.src[p.pos+1] <= '9':
		return p.number(false)
	case isIdent(c):
		end := p.pos
		for end < len(p.src) && isIdent(p.src[end]) {
			end++
		}
		word := p.src[p.pos:end]
		if end < len(p.src) && (p.src[end] == '\'' || p.src[end] == '"') && len(word) <= 2 {
			return p.strings()
		}
		p.pos = end
		switch word {
		case "True":
			return true, nil
		case "False":
			return false, nil
		case "None":
			return nil, nil
		}
		return nil, p.errorf(start, "name %q is not a literal (only True, False and None are)", word)
	}
	return nil, p.errorf(start, "unexpected %s: expected a value", p.describe(start))
}

// sequence parses comma-separated values up to close, after the opening bracket.
func (p *parser) sequence(close byte, depth int) (items []any, trailingComma bool, err error) {
	open := p.pos - 1
	for {
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, false, p.errorf(open, "%q is never closed", p.src[open])
		}
		if p.src[p.pos] == close {
			p.pos++
			return items, trailingComma, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, false, err
		}
		items = append(items, v)
		trailingComma = false
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			trailingComma = true
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == close {
			continue
		}
		if p.pos >= len(p.src) {
			return nil, false, p.errorf(open, "%q is never closed", p.src[open])
		}
		return nil, false, p.errorf(p.pos, "unexpected %s: expected ',' or %q", p.describe(p.pos), close)
	}
}

func (p *parser) dictOrSet(depth int) (any, error) {
	open := p.pos - 1
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return &Dict{Items: []Item{}}, nil
	}
	var d *Dict
	var set Set
	for {
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf(open, "'{' is never closed")
		}
		if p.src[p.pos] == '}' {
			p.pos++
			break
		}
		keyPos := p.pos
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		isPair := p.pos < len(p.src) && p.src[p.pos] == ':'
		switch {
		case d == nil && set == nil && isPair:
			d = &Dict{}
		case d == nil && set == nil:
			set = Set{}
		case d != nil && !isPair:
			return nil, p.errorf(p.pos, "expected ':' after a dict key")
		case set != nil && isPair:
			return nil, p.errorf(p.pos, "unexpected ':' in a set")
		}
		if err := checkHashable(k); err != nil {
			return nil, p.errorf(keyPos, "%v", err)
		}
		if d != nil {
			p.pos++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			d.set(k, v)
		} else {
			set = appendUnique(set, k)
		}
		p.skipSpace()
		if p.pos < len(p.src) && p.src[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.pos < len(p.src) && p.src[p.pos] == '}' {
			continue
		}
		if p.pos >= len(p.src) {
			return nil, p.errorf(open, "'{' is never closed")
		}
		return nil, p.errorf(p.pos, "unexpected %s: expected ',' or '}'", p.describe(p.pos))
	}
	if d != nil {
		return d, nil
	}
	return set, nil
}

// checkHashable refuses keys Python could not hash (lists, dicts, sets).
func checkHashable(k any) error {
	switch k := k.(type) {
	case []any:
		return fmt.Errorf("a list cannot be a dict key or set element (unhashable)")
	case *Dict:
		return fmt.Errorf("a dict cannot be a dict key or set element (unhashable)")
	case Set:
		return fmt.Errorf("a set cannot be a dict key or set element (unhashable)")
	case Tuple:
		for _, e := range k {
			if err := checkHashable(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *Dict) set(k, v any) {
	for i := range d.Items {
		if keyEqual(d.Items[i].Key, k) {
			d.Items[i].Value = v
			return
		}
	}
	d.Items = append(d.Items, Item{Key: k, Value: v})
}

func appendUnique(s Set, k any) Set {
	for _, e := range s {
		if keyEqual(e, k) {
			return s
		}
	}
	return append(s, k)
}

// keyEqual compares hashable values as Python would for dict keys
// (1 == 1.0 == True, but that mixing is rare in data; numbers compare by value).
func keyEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		if fb, ok := number(b); ok {
			return fa.Cmp(fb) == 0
		}
		return false
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case Bytes:
		bb, ok := b.(Bytes)
		return ok && string(a) == string(bb)
	case Tuple:
		bt, ok := b.(Tuple)
		if !ok || len(a) != len(bt) {
			return false
		}
		for i := range a {
			if !keyEqual(a[i], bt[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// number converts Python numeric values (bool, int, float) to a big.Float for comparison.
func number(v any) (*big.Float, bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return big.NewFloat(1), true
		}
		return big.NewFloat(0), true
	case int64:
		return new(big.Float).SetInt64(v), true
	case *big.Int:
		return new(big.Float).SetInt(v), true
	case float64:
		if v != v { // NaN never equals anything
			return nil, false
		}
		return big.NewFloat(v), true
	}
	return nil, false
}
