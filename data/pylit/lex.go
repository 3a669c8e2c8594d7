package pylit

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// strings parses one string literal or several adjacent ones, concatenated.
func (p *parser) strings() (any, error) {
	var sb strings.Builder
	first := p.pos
	kind := -1 // 0 str, 1 bytes
	for {
		p.skipSpace()
		if p.pos >= len(p.src) {
			break
		}
		start := p.pos
		end := p.pos
		for end < len(p.src) && end-start <= 2 && isIdent(p.src[end]) {
			end++
		}
		if end >= len(p.src) || p.src[end] != '\'' && p.src[end] != '"' {
			break
		}
		prefix := strings.ToLower(p.src[start:end])
		raw, isBytes := false, false
		switch prefix {
		case "":
		case "r":
			raw = true
		case "u":
		case "b":
			isBytes = true
		case "br", "rb":
			raw, isBytes = true, true
		case "f", "rf", "fr":
			return nil, p.errorf(start, "f-strings are not literals (they evaluate code)")
		default:
			if start == first {
				return nil, p.errorf(start, "unknown string prefix %q", p.src[start:end])
			}
			return nil, p.errorf(start, "unexpected %s after a string", p.describe(start))
		}
		k := 0
		if isBytes {
			k = 1
		}
		if kind >= 0 && kind != k {
			return nil, p.errorf(start, "cannot mix bytes and str literals in a concatenation")
		}
		kind = k
		p.pos = end
		if err := p.stringBody(&sb, raw, isBytes); err != nil {
			return nil, err
		}
	}
	if kind == 1 {
		return Bytes(sb.String()), nil
	}
	return sb.String(), nil
}

// stringBody parses one quoted body at p.pos (the opening quote), appending its
// value to sb: UTF-8 text for str, raw bytes for bytes.
func (p *parser) stringBody(sb *strings.Builder, raw, isBytes bool) error {
	open := p.pos
	q := p.src[p.pos]
	triple := strings.HasPrefix(p.src[p.pos:], strings.Repeat(string(q), 3))
	if triple {
		p.pos += 3
	} else {
		p.pos++
	}
	pendingHigh := rune(-1) // a high surrogate from \uD8xx waiting for its low half
	flushHigh := func() {
		if pendingHigh >= 0 {
			sb.WriteRune(utf8.RuneError)
			pendingHigh = -1
		}
	}
	for {
		if p.pos >= len(p.src) {
			if triple {
				return p.errorf(open, "triple-quoted string is never closed")
			}
			return p.errorf(open, "string is never closed")
		}
		c := p.src[p.pos]
		switch {
		case c == q && (!triple || strings.HasPrefix(p.src[p.pos:], strings.Repeat(string(q), 3))):
			flushHigh()
			if triple {
				p.pos += 3
			} else {
				p.pos++
			}
			return nil
		case (c == '\n' || c == '\r') && !triple:
			return p.errorf(open, "string is never closed on its line (use a triple-quoted string or \\n)")
		case c == '\\':
			if raw {
				// In raw strings a backslash is kept, but it still stops the next
				// character (a quote or a backslash) from ending the string.
				flushHigh()
				if p.pos+1 >= len(p.src) {
					return p.errorf(open, "string is never closed")
				}
				sb.WriteByte('\\')
				n := p.pos + 1
				r, size := utf8.DecodeRuneInString(p.src[n:])
				if isBytes && p.src[n] >= 0x80 {
					return p.errorf(n, "bytes literals may only contain ASCII characters")
				}
				if r == utf8.RuneError && size == 1 {
					return p.errorf(n, "invalid UTF-8 in a string literal")
				}
				sb.WriteString(p.src[n : n+size])
				p.pos = n + size
				continue
			}
			r, isRune, err := p.escape(sb, isBytes)
			if err != nil {
				return err
			}
			if !isRune {
				flushHigh()
				continue
			}
			switch {
			case r >= 0xD800 && r < 0xDC00:
				flushHigh()
				pendingHigh = r
			case r >= 0xDC00 && r < 0xE000:
				if pendingHigh >= 0 {
					sb.WriteRune(0x10000 + (pendingHigh-0xD800)<<10 + (r - 0xDC00))
					pendingHigh = -1
				} else {
					sb.WriteRune(utf8.RuneError)
				}
			default:
				flushHigh()
				sb.WriteRune(r)
			}
		default:
			flushHigh()
			if c >= 0x80 {
				if isBytes {
					return p.errorf(p.pos, "bytes literals may only contain ASCII characters")
				}
				r, size := utf8.DecodeRuneInString(p.src[p.pos:])
				if r == utf8.RuneError && size == 1 {
					return p.errorf(p.pos, "invalid UTF-8 in a string literal")
				}
				sb.WriteString(p.src[p.pos : p.pos+size])
				p.pos += size
				continue
			}
			sb.WriteByte(c)
			p.pos++
		}
	}
}

// escape parses the escape sequence at p.pos (a backslash). It either writes
// bytes to sb itself (isRune false) or returns a code point for the caller.
func (p *parser) escape(sb *strings.Builder, isBytes bool) (r rune, isRune bool, err error) {
	start := p.pos
	if p.pos+1 >= len(p.src) {
		return 0, false, p.errorf(start, "string ends with a lone backslash")
	}
	c := p.src[p.pos+1]
	p.pos += 2
	if v, ok := simpleEscape(c); ok {
		sb.WriteByte(v)
		return 0, false, nil
	}
	switch c {
	case '\n':
		return 0, false, nil // line continuation inside the string
	case '\r':
		if p.pos < len(p.src) && p.src[p.pos] == '\n' {
			p.pos++
		}
		return 0, false, nil
	case '0', '1', '2', '3', '4', '5', '6', '7':
		v := int(c - '0')
		for i := 0; i < 2 && p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '7'; i++ {
			v = v*8 + int(p.src[p.pos]-'0')
			p.pos++
		}
		if isBytes {
			if v > 0xFF {
				// Python keeps only the low byte (with a warning); refuse instead of guessing.
				return 0, false, p.errorf(start, "octal escape value %o is over 0o377 in a bytes literal", v)
			}
			sb.WriteByte(byte(v))
			return 0, false, nil
		}
		return rune(v), true, nil
	case 'x':
		v, err := p.hexDigits(start, 2, "\\xhh")
		if err != nil {
			return 0, false, err
		}
		if isBytes {
			sb.WriteByte(byte(v))
			return 0, false, nil
		}
		return rune(v), true, nil
	}
	if !isBytes {
		switch c {
		case 'u':
			v, err := p.hexDigits(start, 4, "\\uXXXX")
			return rune(v), err == nil, err
		case 'U':
			v, err := p.hexDigits(start, 8, "\\UXXXXXXXX")
			if err != nil {
				return 0, false, err
			}
			if v > unicode_MaxRune {
				return 0, false, p.errorf(start, "\\U%08x is beyond the last Unicode code point U+10FFFF", v)
			}
			return rune(v), true, nil
		case 'N':
			if p.pos >= len(p.src) || p.src[p.pos] != '{' {
				return 0, false, p.errorf(start, "malformed \\N escape: expected \\N{NAME}")
			}
			end := strings.IndexByte(p.src[p.pos:], '}')
			if end < 0 || strings.ContainsAny(p.src[p.pos:p.pos+end], "'\"\n") {
				return 0, false, p.errorf(start, "malformed \\N escape: missing '}'")
			}
			name := p.src[p.pos+1 : p.pos+end]
			p.pos += end + 1
			r, ok := lookupName(name)
			if !ok {
				return 0, false, p.errorf(start, "unknown Unicode character name %q in \\N{...}", name)
			}
			return r, true, nil
		}
	}
	// An unknown escape keeps its backslash (Python warns but accepts it).
	sb.WriteByte('\\')
	p.pos--
	return 0, false, nil
}

const unicode_MaxRune = 0x10FFFF

func (p *parser) hexDigits(start, n int, form string) (uint64, error) {
	if p.pos+n > len(p.src) {
		return 0, p.errorf(start, "truncated escape: expected %s", form)
	}
	digits := p.src[p.pos : p.pos+n]
	v, err := strconv.ParseUint(digits, 16, 32)
	if err != nil || strings.ContainsAny(digits, "+-_") {
		return 0, p.errorf(start, "truncated or malformed escape: expected %s", form)
	}
	p.pos += n
	return v, nil
}

// signed parses a number with one or more leading signs (-1, +2.5, - -3).
func (p *parser) signed() (any, error) {
	start := p.pos
	neg := false
	for p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
		if p.src[p.pos] == '-' {
			neg = !neg
		}
		p.pos++
		p.skipSpace()
	}
	if p.pos >= len(p.src) || !(p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.') {
		return nil, p.errorf(start, "a sign must be followed by a number")
	}
	return p.number(neg)
}

// number parses an int or float literal at p.pos.
func (p *parser) number(neg bool) (any, error) {
	start := p.pos
	end := p.pos
	isFloat := false
	base := 10
	if strings.HasPrefix(strings.ToLower(p.src[p.pos:]), "0x") {
		base = 16
	} else if strings.HasPrefix(strings.ToLower(p.src[p.pos:]), "0o") {
		base = 8
	} else if strings.HasPrefix(strings.ToLower(p.src[p.pos:]), "0b") {
		base = 2
	}
	if base != 10 {
		end += 2
		for end < len(p.src) && (isIdent(p.src[end]) && p.src[end] < 0x80) {
			end++
		}
	} else {
		for end < len(p.src) {
			c := p.src[end]
			switch {
			case c >= '0' && c <= '9' || c == '_':
			case c == '.':
				isFloat = true
			case c == 'e' || c == 'E':
				isFloat = true
				if end+1 < len(p.src) && (p.src[end+1] == '+' || p.src[end+1] == '-') {
					end++
				}
			case c == 'j' || c == 'J':
				return nil, p.errorf(start, "complex numbers are not supported")
			case isIdent(c):
				return nil, p.errorf(start, "malformed number %q", p.src[start:end+1])
			default:
				goto done
			}
			end++
		}
	}
done:
	text := p.src[start:end]
	p.pos = end
	if !validUnderscores(text, base) {
		return nil, p.errorf(start, "malformed number %q", text)
	}
	clean := strings.ReplaceAll(text, "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(clean, 64)
		if err != nil {
			if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
				// Python rounds out-of-range literals to inf or 0 rather than failing.
				if math.Abs(f) > 1 {
					f = math.Inf(1)
				} else {
					f = 0
				}
			} else {
				return nil, p.errorf(start, "malformed number %q", text)
			}
		}
		if neg {
			f = -f
		}
		return f, nil
	}
	digits := clean
	if base != 10 {
		digits = clean[2:]
	} else if len(clean) > 1 && clean[0] == '0' && strings.Trim(clean, "0") != "" {
		return nil, p.errorf(start, "leading zeros in decimal integer %q are not allowed (use 0o for octal)", text)
	}
	if digits == "" {
		return nil, p.errorf(start, "malformed number %q", text)
	}
	n, ok := new(big.Int).SetString(digits, base)
	if !ok {
		return nil, p.errorf(start, "malformed number %q", text)
	}
	if neg {
		n.Neg(n)
	}
	if n.IsInt64() {
		return n.Int64(), nil
	}
	return n, nil
}

// validUnderscores checks Python's rule: underscores only between digits
// (or right after a base prefix).
func validUnderscores(text string, base int) bool {
	if !strings.Contains(text, "_") {
		return true
	}
	body := text
	if base != 10 {
		body = text[2:]
		if strings.HasPrefix(body, "_") {
			body = body[1:]
		}
	}
	isDigit := func(c byte) bool {
		if base == 16 {
			return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		}
		return c >= '0' && c <= '9'
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '_' {
			continue
		}
		if i == 0 || i == len(body)-1 || !isDigit(body[i-1]) || !isDigit(body[i+1]) {
			return false
		}
	}
	return true
}

// simpleEscape maps the one-character escapes (\n, \t, ...) to their byte.
func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '\\', '\'', '"':
		return c, true
	case 'a':
		return 7, true
	case 'b':
		return 8, true
	case 'f':
		return 12, true
	case 'n':
		return 10, true
	case 'r':
		return 13, true
	case 't':
		return 9, true
	case 'v':
		return 11, true
	}
	return 0, false
}
