package kernel

import (
	"bytes"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIsComplete(t *testing.T) {
	cases := []struct {
		code, status, indent string
	}{
		{"%%\nfmt.Println(1)", "complete", ""},
		{"func f() int { return 1 }", "complete", ""},
		{"x := 1\n_ = x", "complete", ""},
		{"import \"fmt\"\n%%\nfmt.Println()", "complete", ""},
		{"!ls\n%%", "complete", ""},
		{"func f() {", "incomplete", "\t"},
		{"%%\nfor {\n\tif x {", "incomplete", "\t\t"},
		{"x := []int{\n1,", "incomplete", "\t"},
		{"s := `raw", "incomplete", ""},
		{"x := 1 +", "incomplete", ""},
		{"%%\nx := )", "invalid", ""},
		{"func f() }", "invalid", ""},
		{"%%\nif {", "invalid", ""},
		{"%bogus", "invalid", ""},
		{"func f() {\n\tx := )", "invalid", ""},
	}
	for _, c := range cases {
		status, indent := isComplete(c.code)
		if status != c.status || indent != c.indent {
			t.Errorf("isComplete(%q) = %q, %q; want %q, %q", c.code, status, indent, c.status, c.indent)
		}
	}
}

// TestStreamWriterKeepsUTF8 writes multi-byte text in random cuts: every message is
// valid UTF-8 and together they are the text; bytes that are not UTF-8 become U+FFFD.
func TestStreamWriterKeepsUTF8(t *testing.T) {
	text := strings.Repeat("é€😀a", 20000)
	raw := append([]byte(text), 0xff, 'b', 0xe2, 0x82) // an invalid byte and a cut-off sequence at the end
	var got strings.Builder
	msgs := 0
	w := newStreamWriter(0, func(s string) {
		if !utf8.ValidString(s) {
			t.Fatalf("message is not UTF-8: %q", s)
		}
		msgs++
		got.WriteString(s)
	})
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(raw); {
		n := min(1+r.IntN(7), len(raw)-i)
		w.Write(raw[i : i+n])
		i += n
	}
	w.Flush()
	want := text + "\uFFFDb\uFFFD"
	if got.String() != want {
		g := got.String()
		t.Fatalf("got %d bytes with %d U+FFFD, want %d bytes with 2", len(g), strings.Count(g, "\uFFFD"), len(want))
	}
}

func TestCompletePrefix(t *testing.T) {
	euro := []byte("€") // e2 82 ac
	cases := []struct {
		in   []byte
		want int
	}{
		{[]byte("abc"), 3},
		{append([]byte("a"), euro[:1]...), 1},
		{append([]byte("a"), euro[:2]...), 1},
		{append([]byte("a"), euro...), 4},
		{[]byte{'a', 0xff}, 2},       // invalid: final
		{[]byte{'a', 0xe2, 'b'}, 3},  // broken sequence: final
		{[]byte{'a', 0xe0, 0x80}, 3}, // overlong start: never valid
	}
	for _, c := range cases {
		if got := completePrefix(c.in); got != c.want {
			t.Errorf("completePrefix(% x) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestCellsKeepAndReplaceDeclarations parses cells as the kernel does: later cells
// replace a declaration by name, and the program's lines map back to cell lines.
func TestCellsKeepAndReplaceDeclarations(t *testing.T) {
	s := newState()
	run := func(n int, code string) *program {
		t.Helper()
		c, err := splitCell(n, code)
		if err != nil {
			t.Fatal(err)
		}
		p, err := parseCell(s, c)
		if err != nil {
			t.Fatal(err)
		}
		s = p.next
		return p
	}
	run(1, "import \"strings\"\nfunc f() int { return 1 }\nvar a, b = 1, 2")
	run(2, "func f() int { return 2 }\ntype T struct{}\nfunc (T) M() {}")
	p := run(3, "var a = 5\n%%\nx := f()\nx + a")
	var texts []string
	for _, u := range s.units {
		texts = append(texts, u.text)
	}
	got := strings.Join(texts, "|")
	want := "func f() int { return 2 }|type T struct{}|func (T) M() {}|var a = 5"
	if got != want {
		t.Fatalf("kept declarations %q, want %q", got, want)
	}
	if s.imports["strings"] != `"strings"` {
		t.Fatalf("imports %v", s.imports)
	}
	if p.show == nil || p.body[p.show[0]:p.show[1]] != "x + a" {
		t.Fatalf("result expression %v in %q", p.show, p.body)
	}
	src := compose(p, 3, []string{`"strings"`})
	if !strings.Contains(src.text, showFunc+"(x + a)") {
		t.Fatalf("program does not show the last value:\n%s", src.text)
	}
	for i, l := range strings.Split(src.text, "\n") {
		if strings.Contains(l, "x := f()") && src.where(i+1) != "cell[3]:3" {
			t.Fatalf("line %d %q maps to %s, want cell[3]:3", i+1, l, src.where(i+1))
		}
	}
	lines := src.mapCompilerOutput("# mmftcell\n./main.go:1:1: something\n")
	if len(lines) != 1 || lines[0] != "main.go:1:1: something" {
		t.Fatalf("mapped %q", lines)
	}
}

func TestCellErrors(t *testing.T) {
	if _, err := splitCell(4, "%%\nx := 1\n%%"); err == nil || !strings.Contains(err.Error(), "cell[4]:3") {
		t.Errorf("two %%%% lines: %v", err)
	}
	if _, err := splitCell(4, "%magic"); err == nil || !strings.Contains(err.Error(), "unknown special command") {
		t.Errorf("unknown command: %v", err)
	}
	c, _ := splitCell(5, "func f() {\n\treturn 1 +\n}\n%%")
	if _, err := parseCell(newState(), c); err == nil || !strings.HasPrefix(err.Error(), "cell[5]:3:") {
		t.Errorf("syntax error: %v", err)
	}
	c, _ = splitCell(6, "func main() {}\n%%\nprintln()")
	if _, err := parseCell(newState(), c); err == nil || !strings.Contains(err.Error(), "func main") {
		t.Errorf("main and %%%%: %v", err)
	}
}

func TestNoResultForActions(t *testing.T) {
	for _, body := range []string{"fmt.Println(1)", "println(1)", "x := 1", "ch <- 1", "<-ch", "gonbui.DisplayHTML(\"\")"} {
		if r, err := lastExpression(1, body); err != nil || r != nil {
			t.Errorf("lastExpression(%q) = %v, %v; want none", body, r, err)
		}
	}
	if r, _ := lastExpression(1, "x\n"); r == nil {
		t.Error("a plain value is a result")
	}
}

func TestSignerRejectsTampering(t *testing.T) {
	s := signer{key: []byte("secret")}
	frames, err := s.encode(&message{identities: [][]byte{[]byte("id")}, header: newHeader("kernel_info_request", "s"), content: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.decode(frames)
	if err != nil || m.header.MsgType != "kernel_info_request" || string(m.identities[0]) != "id" {
		t.Fatalf("round trip: %v %+v", err, m)
	}
	frames[len(frames)-1] = []byte(`{"a":2}`)
	if _, err := s.decode(frames); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("tampered content accepted: %v", err)
	}
	if _, err := (signer{key: []byte("other")}).decode(frames); err == nil {
		t.Fatal("message signed with another key accepted")
	}
	if _, err := s.decode([][]byte{[]byte("x")}); err == nil {
		t.Fatal("frames without a delimiter accepted")
	}
}

func TestReadConnectionErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := dir + "/c.json"
		if err := writeFile(p, text); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := ReadConnection(dir + "/missing.json"); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := ReadConnection(write("{")); err == nil || !strings.Contains(err.Error(), "-f") {
		t.Errorf("bad JSON: %v", err)
	}
	good := `{"transport":"tcp","ip":"127.0.0.1","shell_port":1,"control_port":2,"stdin_port":3,"iopub_port":4,"hb_port":5,"key":"k","signature_scheme":"hmac-sha256"}`
	if _, err := ReadConnection(write(good)); err != nil {
		t.Errorf("good file: %v", err)
	}
	if _, err := ReadConnection(write(strings.Replace(good, `"hb_port":5`, `"hb_port":0`, 1))); err == nil || !strings.Contains(err.Error(), "hb_port") {
		t.Errorf("bad port: %v", err)
	}
	if _, err := ReadConnection(write(strings.Replace(good, "hmac-sha256", "hmac-md5", 1))); err == nil {
		t.Error("unsupported scheme accepted")
	}
}

func TestDescribePanic(t *testing.T) {
	re := &runError{ename: "ExitError", evalue: "exit status 2"}
	describePanic(re, "some output\npanic: it broke [recovered]\n\tpanic: again\n\ngoroutine 1 [running]:\nmain.main()\n\tcell[3]:4 +0x1d\nexit status 2\n")
	if re.ename != "panic" || !strings.HasPrefix(re.evalue, "it broke") || !strings.Contains(re.evalue, "cell[3]:4") {
		t.Fatalf("%+v", re)
	}
	if !bytes.Contains([]byte(strings.Join(re.traceback, "\n")), []byte("cell[3]:4")) {
		t.Fatalf("traceback %q", re.traceback)
	}
}

func writeFile(p, text string) error { return os.WriteFile(p, []byte(text), 0o600) }
