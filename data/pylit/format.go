package pylit

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Format writes v (a value of the kinds Parse returns) as Python source, the way
// Python's repr() would, so that Parse(Format(v)) gives v back. Two departures
// from repr: an infinite float is written 1e999 (repr's "inf" is not a literal),
// and a NaN float is refused since no literal spells it. For convenience it
// also takes a Dict value, []string, int, int32, uint64 and float32. Other Go
// types are refused with an error naming the type.
func Format(v any) (string, error) {
	var sb strings.Builder
	if err := format(&sb, v, 0); err != nil {
		return "", err
	}
	return sb.String(), nil
}

func format(sb *strings.Builder, v any, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("pylit: value nested more than %d deep", MaxDepth)
	}
	switch v := v.(type) {
	case nil:
		sb.WriteString("None")
	case bool:
		if v {
			sb.WriteString("True")
		} else {
			sb.WriteString("False")
		}
	case int64:
		sb.WriteString(strconv.FormatInt(v, 10))
	case int:
		sb.WriteString(strconv.Itoa(v))
	case *big.Int:
		if v == nil {
			return fmt.Errorf("pylit: nil *big.Int")
		}
		sb.WriteString(v.String())
	case float64:
		return formatFloat(sb, v)
	case string:
		quoteStr(sb, v)
	case Bytes:
		quoteBytes(sb, v)
	case []any:
		return formatSeq(sb, v, "[", "]", false, depth)
	case Tuple:
		return formatSeq(sb, v, "(", ")", len(v) == 1, depth)
	case Set:
		if len(v) == 0 {
			return fmt.Errorf("pylit: an empty set has no literal form (Python writes set())")
		}
		return formatSeq(sb, v, "{", "}", false, depth)
	case Dict:
		return format(sb, &v, depth)
	case []string:
		items := make([]any, len(v))
		for i, e := range v {
			items[i] = e
		}
		return formatSeq(sb, items, "[", "]", false, depth)
	case int32:
		sb.WriteString(strconv.FormatInt(int64(v), 10))
	case uint64:
		sb.WriteString(strconv.FormatUint(v, 10))
	case float32:
		return formatFloat(sb, float64(v))
	case *Dict:
		sb.WriteByte('{')
		if v != nil {
			for i, it := range v.Items {
				if i > 0 {
					sb.WriteString(", ")
				}
				if err := format(sb, it.Key, depth+1); err != nil {
					return err
				}
				sb.WriteString(": ")
				if err := format(sb, it.Value, depth+1); err != nil {
					return err
				}
			}
		}
		sb.WriteByte('}')
	default:
		return fmt.Errorf("pylit: cannot format a Go %T as a Python literal", v)
	}
	return nil
}

func formatSeq(sb *strings.Builder, items []any, open, close string, trailingComma bool, depth int) error {
	sb.WriteString(open)
	for i, e := range items {
		if i > 0 {
			sb.WriteString(", ")
		}
		if err := format(sb, e, depth+1); err != nil {
			return err
		}
	}
	if trailingComma {
		sb.WriteByte(',')
	}
	sb.WriteString(close)
	return nil
}

func formatFloat(sb *strings.Builder, f float64) error {
	switch {
	case math.IsNaN(f):
		return fmt.Errorf("pylit: NaN has no Python literal form")
	case math.IsInf(f, 1):
		sb.WriteString("1e999")
		return nil
	case math.IsInf(f, -1):
		sb.WriteString("-1e999")
		return nil
	}
	// Python's repr: shortest round-trip digits, exponent form outside [1e-4, 1e16).
	abs := math.Abs(f)
	var s string
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s = strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes 1e+16 and 1e-05; Python writes 1e+16 and 1e-05 as well.
	} else {
		s = strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
	}
	sb.WriteString(s)
	return nil
}

// quoteStr writes s as Python's repr() of a str does.
func quoteStr(sb *strings.Builder, s string) {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	sb.WriteByte(q)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not UTF-8: keep the byte's value as a code point so nothing is lost.
			r = rune(s[i])
			fmt.Fprintf(sb, "\\x%02x", r)
			i++
			continue
		}
		i += size
		switch {
		case r == '\\':
			sb.WriteString(`\\`)
		case r == rune(q):
			sb.WriteByte('\\')
			sb.WriteByte(q)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(sb, "\\x%02x", r)
		case r < 0x80 || unicode.IsPrint(r):
			sb.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(sb, "\\x%02x", r)
		case r < 0x10000:
			fmt.Fprintf(sb, "\\u%04x", r)
		default:
			fmt.Fprintf(sb, "\\U%08x", r)
		}
	}
	sb.WriteByte(q)
}

// quoteBytes writes b as Python's repr() of bytes does.
func quoteBytes(sb *strings.Builder, b []byte) {
	q := byte('\'')
	if strings.IndexByte(string(b), '\'') >= 0 && strings.IndexByte(string(b), '"') < 0 {
		q = '"'
	}
	sb.WriteString("b")
	sb.WriteByte(q)
	for _, c := range b {
		switch {
		case c == '\\':
			sb.WriteString(`\\`)
		case c == q:
			sb.WriteByte('\\')
			sb.WriteByte(q)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(sb, "\\x%02x", c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte(q)
}
