package pylit

import (
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

func dict(kv ...any) *Dict {
	d := &Dict{Items: []Item{}}
	for i := 0; i < len(kv); i += 2 {
		d.Items = append(d.Items, Item{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func TestParseValues(t *testing.T) {
	big1, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	cases := []struct {
		src  string
		want any
	}{
		{`'abc'`, "abc"},
		{`"it's"`, "it's"},
		{`'say "hi"'`, `say "hi"`},
		{`'it\'s'`, "it's"},
		{`"a\"b"`, `a"b`},
		{`'\n\t\\\r\a\b\f\v\0'`, "\n\t\\\r\a\b\f\v\x00"},
		{`'\x41\x7a'`, "Az"},
		{`'\101\60\1'`, "A0\x01"},
		{`'\u00e9\u4e2d'`, "é中"},
		{`'\U0001F600'`, "😀"},
		{`'\ud83d\ude00'`, "😀"},
		{`'\ud83d'`, "\uFFFD"},
		{`'\N{LATIN SMALL LETTER E WITH ACUTE}\N{euro sign}'`, "é€"},
		{`'\N{CJK UNIFIED IDEOGRAPH-4E2D}'`, "中"},
		{`'\d\w'`, `\d\w`},
		{`'line\
continued'`, "linecontinued"},
		{`'中文 — ünïcode 😀'`, "中文 — ünïcode 😀"},
		{`r'C:\new\t'`, `C:\new\t`},
		{`R"\d+\"x"`, `\d+\"x`},
		{`r'\''`, `\'`},
		{`u'x'`, "x"},
		{`'''tri'ple
"quoted"'''`, "tri'ple\n\"quoted\""},
		{`"""a""b"""`, `a""b`},
		{`'a' "b" '''c'''`, "abc"},
		{"('a'\n 'b')", "ab"},
		{`b'a\x00\xff\n'`, Bytes("a\x00\xff\n")},
		{`rb'\x00'`, Bytes(`\x00`)},
		{`b'\u00e9'`, Bytes(`\u00e9`)},
		{`True`, true},
		{`False`, false},
		{`None`, nil},
		{`0`, int64(0)},
		{`-42`, int64(-42)},
		{`+7`, int64(7)},
		{`- -3`, int64(3)},
		{`1_000_000`, int64(1000000)},
		{`0x_ff`, int64(255)},
		{`0o17`, int64(15)},
		{`0B101`, int64(5)},
		{`00`, int64(0)},
		{`123456789012345678901234567890`, big1},
		{`1.5`, 1.5},
		{`-0.25`, -0.25},
		{`.5`, 0.5},
		{`5.`, 5.0},
		{`1e3`, 1000.0},
		{`1E-2`, 0.01},
		{`1_0.5e1_0`, 10.5e10},
		{`1e999`, math.Inf(1)},
		{`-1e999`, math.Inf(-1)},
		{`[]`, []any{}},
		{`[1, 'a', None,]`, []any{int64(1), "a", nil}},
		{`()`, Tuple{}},
		{`(1,)`, Tuple{int64(1)}},
		{`(1)`, int64(1)},
		{`(1, (2, 3), [4])`, Tuple{int64(1), Tuple{int64(2), int64(3)}, []any{int64(4)}}},
		{`{}`, dict()},
		{`{'a': 1, 'b': [True], 'a': 2,}`, dict("a", int64(2), "b", []any{true})},
		{`{1, 2, 1}`, Set{int64(1), int64(2)}},
		{`{(1, 'x'): None}`, dict(Tuple{int64(1), "x"}, nil)},
		{"  [1, # a comment\n 2]  # end\n", []any{int64(1), int64(2)}},
		{`[{'question': '<image>What was the revenue in Q1?', 'answer': '$23M'}, {'question': "What's the company's highest quarterly revenue?", 'answer': '91 million dollars'}, {'question': 'Which quarter is labelled "Q3"?', 'answer': 'The third quarter'}]`,
			[]any{
				dict("question", "<image>What was the revenue in Q1?", "answer", "$23M"),
				dict("question", "What's the company's highest quarterly revenue?", "answer", "91 million dollars"),
				dict("question", `Which quarter is labelled "Q3"?`, "answer", "The third quarter"),
			}},
	}
	for _, c := range cases {
		got, err := Parse(c.src)
		if err != nil {
			t.Errorf("Parse(%s): %v", c.src, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%s) = %#v, want %#v", c.src, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ src, msg string }{
		{``, "empty input"},
		{`   `, "empty input"},
		{`[{'question': 'unterminated`, "never closed"},
		{`'abc`, "never closed"},
		{"'a\nb'", "never closed on its line"},
		{`'''abc''`, "triple-quoted string is never closed"},
		{`[1, 2`, "never closed"},
		{`[1 2]`, "expected ','"},
		{`{'a' 1}`, "expected ','"},
		{`{'a': 1, 2}`, "expected ':'"},
		{`{1, 'a': 2}`, "unexpected ':'"},
		{`{[1]: 2}`, "unhashable"},
		{`__import__('os')`, "not a literal"},
		{`foo`, "not a literal"},
		{`f'{x}'`, "f-strings"},
		{`1j`, "complex"},
		{`1+2j`, "unexpected"},
		{`01`, "leading zeros"},
		{`1__0`, "malformed number"},
		{`0x`, "malformed number"},
		{`0b2`, "malformed number"},
		{`1.2.3`, "malformed number"},
		{`'\x4'`, "\\xhh"},
		{`'\u12'`, "\\uXXXX"},
		{`'\U00110000'`, "beyond"},
		{`'\N{NO SUCH CHARACTER NAME}'`, "unknown Unicode character name"},
		{`'\N{LATIN'`, "missing '}'"},
		{`b'é'`, "ASCII"},
		{`b'a' 'b'`, "cannot mix"},
		{`'a' 1`, "unexpected"},
		{`-'a'`, "sign"},
		{`[1] [2]`, "after the literal"},
		{"'\xff'", "invalid UTF-8"},
		{strings.Repeat("[", MaxDepth+10), "nested"},
	}
	for _, c := range cases {
		_, err := Parse(c.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): error %v, want a *SyntaxError", c.src, err)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Parse(%q): error %q, want it to mention %q", c.src, err, c.msg)
		}
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	_, err := Parse("[1,\n 2 3]")
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 || se.Col != 4 {
		t.Fatalf("got %#v, want line 2 col 4", err)
	}
}

func TestDictGetKeys(t *testing.T) {
	v, err := Parse(`{'question': 'Q', 'answer': 'A', 3: 'x'}`)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*Dict)
	if q, ok := d.Get("question"); !ok || q != "Q" {
		t.Errorf("Get(question) = %v, %v", q, ok)
	}
	if _, ok := d.Get("missing"); ok {
		t.Errorf("Get(missing) found something")
	}
	if got := d.Keys(); !reflect.DeepEqual(got, []string{"question", "answer"}) {
		t.Errorf("Keys() = %v", got)
	}
}

func TestFormatRepr(t *testing.T) {
	big1, _ := new(big.Int).SetString("-99999999999999999999", 10)
	cases := []struct {
		v    any
		want string
	}{
		{"abc", `'abc'`},
		{"it's", `"it's"`},
		{`it's "x"`, `'it\'s "x"'`},
		{"a\nb\t\\\x01\x7f", `'a\nb\t\\\x01\x7f'`},
		{"é中😀", `'é中😀'`},
		{"\u200b", `'\u200b'`},
		{"\u0085", `'\x85'`},
		{Bytes("a'\x00\xff"), `b"a'\x00\xff"`},
		{int64(-5), `-5`},
		{big1, `-99999999999999999999`},
		{1.0, `1.0`},
		{0.1, `0.1`},
		{1e16, `1e+16`},
		{1.5e-5, `1.5e-05`},
		{math.Inf(1), `1e999`},
		{[]any{true, false, nil}, `[True, False, None]`},
		{Tuple{int64(1)}, `(1,)`},
		{Tuple{}, `()`},
		{Set{int64(1)}, `{1}`},
		{dict("question", "Q?", "answer", "A"), `{'question': 'Q?', 'answer': 'A'}`},
	}
	for _, c := range cases {
		got, err := Format(c.v)
		if err != nil {
			t.Errorf("Format(%#v): %v", c.v, err)
			continue
		}
		if got != c.want {
			t.Errorf("Format(%#v) = %s, want %s", c.v, got, c.want)
		}
		back, err := Parse(got)
		if err != nil || !reflect.DeepEqual(back, c.v) {
			t.Errorf("Parse(Format(%#v)) = %#v, %v", c.v, back, err)
		}
	}
	conv := []struct {
		v    any
		want string
	}{
		{*dict("question", "Q", "answer", "A"), `{'question': 'Q', 'answer': 'A'}`},
		{[]string{"a", "it's"}, `['a', "it's"]`},
		{int32(-3), `-3`},
		{uint64(1 << 63), `9223372036854775808`},
		{float32(0.5), `0.5`},
		{7, `7`},
	}
	for _, c := range conv {
		if got, err := Format(c.v); err != nil || got != c.want {
			t.Errorf("Format(%#v) = %s, %v; want %s", c.v, got, err, c.want)
		}
	}
	for _, bad := range []any{math.NaN(), Set{}, map[string]int{}, struct{}{}} {
		if _, err := Format(bad); err == nil {
			t.Errorf("Format(%#v) succeeded, want an error", bad)
		}
	}
}
