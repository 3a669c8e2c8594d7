package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

func TestTokenizeCommand(t *testing.T) {
	dir := shared.Asset(t)
	in := `{"text": "Hello world"}` + "\n\n" +
		`{"text": "<|im_start|>user\n财务<|im_end|>"}` + "\n" +
		`{"txt": "oops"}` + "\n" +
		`not json` + "\n" +
		`{"text": 7}` + "\n" +
		`{"text": "last line without newline"}`
	var out, errb bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(in), stdout: &out, stderr: &errb}
	code := c.main([]string{"tokenize", "--model", dir})
	if code != 1 {
		t.Fatalf("exit %d, want 1 for the malformed lines; stderr:\n%s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("got %d output lines, want 6:\n%s", len(lines), out.String())
	}
	var first struct {
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.IDs, []int{9707, 1879}) || first.Decoded != "Hello world" {
		t.Errorf("line 1: %s", lines[0])
	}
	if !strings.Contains(lines[1], `"decoded":"<|im_start|>user\n财务<|im_end|>"`) || !strings.HasPrefix(lines[1], `{"ids":[151644,`) {
		t.Errorf("line 3: %s", lines[1])
	}
	for i, want := range []string{`"line":4`, `"line":5`, `"line":6`} {
		if !strings.Contains(lines[2+i], want) || !strings.Contains(lines[2+i], `"error"`) {
			t.Errorf("output %d = %s, want an error record with %s", 3+i, lines[2+i], want)
		}
	}
	if !strings.Contains(lines[5], `"decoded":"last line without newline"`) {
		t.Errorf("last line: %s", lines[5])
	}
	for _, want := range []string{"line 4: no \"text\" field", "line 5: not a JSON object", "line 6: \"text\" must be a string", "3 malformed input line(s) (first: line 4)"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

// TestParseTextLine checks that every kind of malformed line gets a message
// that says what the line is and what was expected, not a Go type name.
func TestParseTextLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"text": "hi"}`, ""},
		{`[1, 2]`, `not a JSON object {"text": "..."}: got [1, 2]`},
		{`null`, `not a JSON object {"text": "..."}: got null`},
		{`"hi"`, `not a JSON object {"text": "..."}: got "hi"`},
		{`{"text": "hi"`, `not a JSON object {"text": "..."}: unexpected end of JSON input`},
		{`{"b": 1, "a": 2}`, `no "text" field (fields: a, b)`},
		{`{}`, `no "text" field (the object is empty)`},
		{`{"text": null}`, `"text" must be a string, got null`},
	} {
		text, err := parseTextLine([]byte(c.in))
		switch {
		case c.want == "" && (err != nil || text != "hi"):
			t.Errorf("parseTextLine(%s) = %q, %v; want \"hi\"", c.in, text, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("parseTextLine(%s) error = %v; want %s", c.in, err, c.want)
		}
	}
}

func TestTokenizeSkipSpecialAndUsage(t *testing.T) {
	dir := shared.Asset(t)
	var out, errb bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(`{"text": "<|im_start|>hi<|im_end|>"}`), stdout: &out, stderr: &errb}
	if code := c.main([]string{"tokenize", "--model", dir, "--skip-special"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if want := `{"ids":[151644,6023,151645],"decoded":"hi"}` + "\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	out.Reset()
	errb.Reset()
	c = &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := c.main([]string{"tokenize"}); code != 2 || !strings.Contains(errb.String(), "--model") {
		t.Errorf("without --model: exit %d, stderr %q", code, errb.String())
	}
	c = &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := c.main([]string{"tokenize", "--model", t.TempDir()}); code != 1 || !strings.Contains(errb.String(), "tokenizer") {
		t.Errorf("empty model folder: exit %d, stderr %q", code, errb.String())
	}
}
