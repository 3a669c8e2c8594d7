package script

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mmft-go/mmft/rewards"
)

const good = `import (
	"strings"
	"unicode/utf8"
)

// Reward: the accuracy of the answer, plus 0.5 for the strict format,
// minus a length penalty past 20 tokens.
func Reward(s Sample, c Completion) float64 {
	r := Accuracy(s, c) + 0.5*Format(s, c)
	if c.Tokens > 20 {
		r -= 0.01 * float64(c.Tokens-20)
	}
	if ans, ok := ExtractAnswer(Output(s, c)); ok && strings.Contains(ans, "%") && utf8.RuneCountInString(ans) < 10 {
		r += 0.25
	}
	return r
}
`

func compile(t *testing.T, src string, opts Options) *Reward {
	t.Helper()
	r, err := Compile(src, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r
}

func TestWorkingReward(t *testing.T) {
	for _, src := range []string{good, "package main\n\n" + good} {
		r := compile(t, src, Options{Name: "acc"})
		s := Sample{Question: "Growth?", Answer: "12%", Prefill: "<think>"}
		cases := []struct {
			c    Completion
			want float64
		}{
			{Completion{Text: "it grew</think><answer>12 %</answer>", Tokens: 10}, 1.75},
			{Completion{Text: "it grew</think><answer>13%</answer>", Tokens: 10}, 0.75},
			{Completion{Text: "no tags, 12%", Tokens: 30}, -0.1},
		}
		for _, c := range cases {
			got, err := r.Score(context.Background(), s, c.c)
			if err != nil {
				t.Fatal(err)
			}
			// The same sum on the Go side, through the rewards package.
			want := c.want
			if d := got - want; d > 1e-12 || d < -1e-12 {
				t.Errorf("Reward(%q) = %v, want %v", c.c.Text, got, want)
			}
		}
		in := rewards.Input{Prefill: "<think>", Completion: "x</think><answer>12%</answer>", Answer: "12%", CompletionIDs: make([]int, 25)}
		got, err := r.ScoreInput(context.Background(), in)
		want := rewards.Accuracy{}.Score(in) + 0.5*rewards.Format(in) - 0.05 + 0.25
		if err != nil || got != want {
			t.Errorf("ScoreInput = %v, %v; want %v", got, err, want)
		}
	}
}

// compileError compiles src, expects an *Error and returns it.
func compileError(t *testing.T, src string) *Error {
	t.Helper()
	_, err := Compile(src, Options{Name: "cell"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Compile error %v (%T), want an *Error", err, err)
	}
	if !strings.HasPrefix(e.Error(), "script: cell: line ") {
		t.Errorf("error %q does not start with the package, the name and the line", e)
	}
	return e
}

func TestSyntaxErrorHasTheUsersLine(t *testing.T) {
	for _, c := range []struct {
		src        string
		line, col  int
		msgContain string
	}{
		{"func Reward(s Sample, c Completion) float64 {\n\tx := 1 +\n}\n", 3, 1, "expected operand"},
		{"package main\n\nfunc Reward(s Sample, c Completion) float64 {\n\treturn 1 +\n}\n", 5, 1, "expected operand"},
		{"func Reward(s Sample, c Completion) float64 {\n\tn := 0\n\treturn nope + float64(n)\n}\n", 3, 9, "undefined: nope"},
		{"func Reward(s Sample, c Completion) float64 { return missing }", 1, 54, "undefined: missing"},
		{"package main\nfunc Reward(s Sample, c Completion) float64 {\n\treturn \"text\"\n}\n", 3, 0, ""},
	} {
		e := compileError(t, c.src)
		if e.Line != c.line || (c.col > 0 && e.Column != c.col) || !strings.Contains(e.Msg, c.msgContain) {
			t.Errorf("source %q: error %v (line %d, column %d), want line %d column %d containing %q",
				c.src, e, e.Line, e.Column, c.line, c.col, c.msgContain)
		}
	}
}

func TestDisallowedImports(t *testing.T) {
	for _, path := range []string{"os/exec", "os", "unsafe", "net/http", "syscall", "runtime"} {
		src := "package main\n\nimport (\n\t\"strings\"\n\t\"" + path + "\"\n)\n\nfunc Reward(s Sample, c Completion) float64 { return 0 }\n"
		e := compileError(t, src)
		if e.Line != 5 || !strings.Contains(e.Msg, `"`+path+`" is not allowed`) {
			t.Errorf("import %s: error %v (line %d), want line 5 saying it is not allowed", path, e, e.Line)
		}
	}
}

func TestRefusedSources(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"func Reward(s Sample, c Completion) float64 {\n\tgo func() { panic(1) }()\n\treturn 0\n}", "line 2, column 2: go statements are not allowed"},
		{"package other\nfunc Reward(s Sample, c Completion) float64 { return 0 }", "line 1, column 9: package other"},
		{"func Score(s Sample, c Completion) float64 { return 0 }", "defines no func Reward"},
		{"func Reward(s Sample) float64 { return 0 }", "want func(s Sample, c Completion) float64"},
		{"var x = func() int { for {} }()\nfunc Reward(s Sample, c Completion) float64 { return 0 }", "initialisation did not finish"},
		{"var __mmft_x = 1\nfunc Reward(s Sample, c Completion) float64 { return 0 }", "reserved"},
	} {
		_, err := Compile(c.src, Options{Timeout: 200 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("source %q: error %v, want one containing %q", c.src, err, c.want)
		}
	}
	if _, err := Compile(strings.Repeat(" ", MaxSourceLen+1), Options{}); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized source: error %v", err)
	}
}

func TestPanicIsAnError(t *testing.T) {
	r := compile(t, `func Reward(s Sample, c Completion) float64 {
	if s.Answer == "boom" {
		var xs []float64
		return xs[3]
	}
	return 1
}`, Options{})
	_, err := r.Score(context.Background(), Sample{Answer: "boom"}, Completion{})
	if err == nil || !strings.Contains(err.Error(), "panicked in Reward (line 1)") || !strings.Contains(err.Error(), "index out of range") {
		t.Fatalf("panicking reward: error %v, want a panic in Reward (line 1)", err)
	}
	if v, err := r.Score(context.Background(), Sample{Answer: "fine"}, Completion{}); err != nil || v != 1 {
		t.Fatalf("the call after a panic: %v, %v; want 1", v, err)
	}
}

func TestRunawayCallsAreStopped(t *testing.T) {
	for _, c := range []struct {
		name, body, want string
		timeout          time.Duration
	}{
		{"tight loop", "n := 0\n\tfor {\n\t\tn++\n\t}", "did not return within", 300 * time.Millisecond},
		{"blocked receive", "<-make(chan int)\n\treturn 0", "did not return within", 300 * time.Millisecond},
		{"select forever", "select {}", "did not return within", 300 * time.Millisecond},
		{"recursion", "return deep(0)", "call depth over 1000", 10 * time.Second},
		{"closure recursion", "var f func(int) float64\n\tf = func(n int) float64 { return f(n+1) }\n\treturn f(0)", "call depth over 1000", 10 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "func deep(n int) float64 { return deep(n+1) + 1 }\n\nfunc Reward(s Sample, c Completion) float64 {\n\tif s.Answer != \"stuck\" {\n\t\treturn 2\n\t}\n\t" + c.body + "\n}\n"
			r := compile(t, src, Options{Timeout: c.timeout})
			base := runtime.NumGoroutine()
			start := time.Now()
			_, err := r.Score(context.Background(), Sample{Answer: "stuck"}, Completion{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if took := time.Since(start); took > c.timeout+5*time.Second {
				t.Fatalf("the call came back after %v", took)
			}
			// The stopped goroutine ends: yaegi checks for cancellation between interpreted steps.
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > base {
				t.Errorf("%d goroutines after the stopped call, %d before", n, base)
			}
			if v, err := r.Score(context.Background(), Sample{Answer: "ok"}, Completion{}); err != nil || v != 2 {
				t.Fatalf("the call after a stopped one: %v, %v; want 2", v, err)
			}
		})
	}
}

func TestCancelledContext(t *testing.T) {
	r := compile(t, "func Reward(s Sample, c Completion) float64 { for {} }", Options{Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := r.Score(ctx, Sample{}, Completion{})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("cancelled call: error %v", err)
	}
}

func TestNonFiniteResultAndFunc(t *testing.T) {
	r := compile(t, `import "math"

func Reward(s Sample, c Completion) float64 {
	if s.Answer == "nan" {
		return math.NaN()
	}
	return math.Sqrt(float64(len(c.Text)))
}`, Options{Name: "sqrt"})
	var reported []error
	f := r.Func(func(err error) { reported = append(reported, err) })
	if v := f(rewards.Input{Completion: "abcd", Answer: "x"}); v != 2 || len(reported) != 0 {
		t.Fatalf("Func = %v (errors %v), want 2", v, reported)
	}
	if v := f(rewards.Input{Answer: "nan"}); v != 0 || len(reported) != 1 || !strings.Contains(reported[0].Error(), "script: sqrt: Reward returned NaN") {
		t.Fatalf("Func on NaN = %v, errors %v", v, reported)
	}
}

func TestQualifiedFacadeImportAndShadowing(t *testing.T) {
	for src, want := range map[string]float64{
		"import \"mmft/reward\"\n\nfunc Reward(s reward.Sample, c reward.Completion) float64 {\n\treturn reward.Format(s, c) + 3\n}": 4,
		// A name of the source's own wins over the facade's.
		"func Format(x int) int { return x * 2 }\n\nfunc Reward(s Sample, c Completion) float64 { return float64(Format(c.Tokens)) }": 14,
	} {
		r := compile(t, src, Options{})
		got, err := r.Score(context.Background(), Sample{}, Completion{Text: "<think>a</think><answer>1</answer>", Tokens: 7})
		if err != nil || got != want {
			t.Errorf("source %q: %v, %v; want %v", src, got, err, want)
		}
	}
}

// BenchmarkScore is the cost of one call of a small reward (the interpreter's
// per-call execution and the facade's Accuracy and Format). Its ns/op and
// B/op must not grow with -benchtime: evaluating the call anew each time grew
// the interpreter's frame with every call (0.27 ms at 1000 calls, 2.6 ms at
// 10000).
func BenchmarkScore(b *testing.B) {
	r, err := Compile(good, Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := Sample{Answer: "12%", Prefill: "<think>"}
	c := Completion{Text: "it grew</think><answer>12 %</answer>", Tokens: 10}
	for b.Loop() {
		if _, err := r.Score(context.Background(), s, c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStuckInCompiledCode: a call stuck inside a compiled function comes back
// at the timeout with an error and the next call runs on a fresh interpreter,
// while the stuck goroutine runs on until the compiled function returns.
func TestStuckInCompiledCode(t *testing.T) {
	r := compile(t, `import (
	"regexp"
	"strings"
)

func Reward(s Sample, c Completion) float64 {
	if s.Answer != "stuck" {
		return 3
	}
	if regexp.MustCompile("(a|aa)*b").MatchString(strings.Repeat("a", 20000000)) {
		return 1
	}
	return 0
}`, Options{Timeout: 50 * time.Millisecond})
	base := runtime.NumGoroutine()
	start := time.Now()
	_, err := r.Score(context.Background(), Sample{Answer: "stuck"}, Completion{})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "did not return within 50ms") {
		t.Fatalf("error %v, want a timeout", err)
	}
	if took > 2*time.Second {
		t.Fatalf("the call came back after %v", took)
	}
	t.Logf("came back after %v with %d goroutines (%d before)", took, runtime.NumGoroutine(), base)
	if v, err := r.Score(context.Background(), Sample{Answer: "ok"}, Completion{}); err != nil || v != 3 {
		t.Fatalf("the call after a stuck one: %v, %v; want 3", v, err)
	}
}
