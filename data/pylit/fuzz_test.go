package pylit

import (
	"math"
	"math/big"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives Format and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`[{'question': '<image>What?', 'answer': '$1M'}, {'question': "What's up?", 'answer': 'it\'s "ok"'}]`,
		`{'a': (1, 2.5, -3e10, None, True), "b": [b'\x00', r'\d', '''x
y'''], 0x1f: {1, 2}}`,
		`'\N{EURO SIGN}\u00e9\U0001F600\101\x41'`, `'a' "b" u'c'`, `1_000`, `-0.0`, `()`, `(1,)`,
		`123456789012345678901234567890`, `'\ud83d\ude00'`, `{}`, `[1, # c` + "\n]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		v, err := Parse(src)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("Parse(%q) returned %T, want *SyntaxError", src, err)
			}
			return
		}
		text, err := Format(v)
		if err != nil {
			t.Fatalf("Format of Parse(%q) = %#v: %v", src, v, err)
		}
		back, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = Parse(%q): %v", src, text, err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Fatalf("round trip of %q changed the value:\n%#v\n%#v", src, v, back)
		}
	})
}

// FuzzRoundTrip builds a value from the fuzzer's bytes, formats it and parses
// it back.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte("hello, world: \xe4\xb8\xad 'quoted' \"dq\" \\ \n"))
	f.Add([]byte{9, 3, 7, 2, 0x41, 0x27, 10, 2, 5, 0xff, 0xfe, 1, 8, 4})
	f.Fuzz(func(t *testing.T, seed []byte) {
		g := &gen{b: seed}
		v := g.value(0)
		text, err := Format(v)
		if err != nil {
			t.Fatalf("Format(%#v): %v", v, err)
		}
		back, err := Parse(text)
		if err != nil {
			t.Fatalf("Parse(Format(v)) = Parse(%q): %v", text, err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Fatalf("round trip changed the value via %q:\n%#v\n%#v", text, v, back)
		}
	})
}

// gen turns fuzz bytes into a Python value.
type gen struct {
	b []byte
	i int
}

func (g *gen) byte() byte {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return c
}

func (g *gen) value(depth int) any {
	k := g.byte() % 12
	if depth > 4 && k >= 8 {
		k %= 8
	}
	switch k {
	case 0:
		return nil
	case 1:
		return g.byte()%2 == 0
	case 2:
		return int64(int8(g.byte())) * int64(g.byte()) * 1000003
	case 3:
		n := new(big.Int).SetBytes([]byte{g.byte(), g.byte(), g.byte(), g.byte(), g.byte(), g.byte(), g.byte(), g.byte(), g.byte(), 1})
		if g.byte()%2 == 0 {
			n.Neg(n)
		}
		if n.IsInt64() { // Parse's canonical form for ints that fit
			return n.Int64()
		}
		return n
	case 4:
		var bits uint64
		for range 8 {
			bits = bits<<8 | uint64(g.byte())
		}
		f := math.Float64frombits(bits)
		if math.IsNaN(f) {
			f = 0.5
		}
		return f
	case 5, 6:
		return g.str()
	case 7:
		return Bytes(g.str())
	case 8:
		n := int(g.byte() % 4)
		l := make([]any, 0, n)
		for range n {
			l = append(l, g.value(depth+1))
		}
		return l
	case 9:
		n := int(g.byte() % 4)
		tu := Tuple{}
		for range n {
			tu = append(tu, g.value(depth+1))
		}
		return tu
	case 10:
		n := int(g.byte() % 4)
		d := &Dict{Items: []Item{}}
		for range n {
			d.set(g.str(), g.value(depth+1))
		}
		return d
	default:
		s := Set{g.str()}
		return appendUnique(s, g.str())
	}
}

// str makes a valid UTF-8 string from the next bytes, steering some of them to
// quotes, backslashes and control characters.
func (g *gen) str() string {
	n := int(g.byte() % 10)
	var out []rune
	for range n {
		c := g.byte()
		switch c % 8 {
		case 0:
			out = append(out, []rune{'\'', '"', '\\', '\n', '\x00', '\t', '\r', 0x7f}[c/8%8])
		case 1:
			r := rune(c)<<8 | rune(g.byte())
			if !utf8.ValidRune(r) {
				r = 0xFFFD
			}
			out = append(out, r)
		case 2:
			out = append(out, 0x1F600+rune(c%32))
		default:
			out = append(out, rune(c%95+32))
		}
	}
	return string(out)
}
