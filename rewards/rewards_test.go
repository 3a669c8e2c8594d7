package rewards

import (
	"strings"
	"testing"
	"time"
)

func TestRegistryAndSet(t *testing.T) {
	reg := Default()
	if got := strings.Join(reg.Names(), ","); got != "accuracy,format,structural" {
		t.Fatalf("Default names = %s", got)
	}
	// A custom reward using the completion's token ids: shorter is better.
	brevity := func(in Input) float64 { return -float64(len(in.CompletionIDs)) / 100 }
	if err := reg.Register("brevity", brevity); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"brevity", "", "Has Space"} {
		if err := reg.Register(bad, brevity); err == nil {
			t.Errorf("Register(%q) succeeded", bad)
		}
	}
	if err := reg.Register("nilfunc", nil); err == nil {
		t.Error("Register of a nil func succeeded")
	}
	if _, err := reg.Get("acuracy"); err == nil || !strings.Contains(err.Error(), "accuracy") {
		t.Errorf("Get of a misspelt name: %v (want the known names listed)", err)
	}

	set, err := reg.ParseSet("structural=0.5, accuracy=2,brevity")
	if err != nil {
		t.Fatal(err)
	}
	in := Input{
		Prefill:       "Let me solve this step by step.\n<think>",
		Completion:    " 40 + 2</think><answer>$42M</answer>",
		CompletionIDs: make([]int, 10),
		Answer:        "42 million dollars",
	}
	res := set.Score(in)
	want := 0.5*2 + 2*1 + 1*(-0.1)
	if res.Total != want {
		t.Errorf("total = %v, want %v", res.Total, want)
	}
	m := res.Map()
	if m["structural"] != 2 || m["accuracy"] != 1 || m["brevity"] != -0.1 || len(m) != 3 {
		t.Errorf("components = %v", m)
	}
	if got := set.Func()(in); got != want {
		t.Errorf("Set.Func = %v, want %v", got, want)
	}
	for _, bad := range []string{"structural=x", "nope", "accuracy,accuracy", "accuracy,,format", "format=NaN", ""} {
		if _, err := reg.ParseSet(bad); err == nil {
			t.Errorf("ParseSet(%q) succeeded", bad)
		}
	}
	// Registries are independent values: no global state.
	if _, err := Default().Get("brevity"); err == nil {
		t.Error("a custom reward leaked into another registry")
	}
}

func BenchmarkAccuracyMatch(b *testing.B) {
	a := Accuracy{}
	for b.Loop() {
		for _, c := range accuracyCases {
			a.Match(c.pred, c.gold)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(accuracyCases)), "ns/pair")
}

func BenchmarkStructural(b *testing.B) {
	in := Input{Prefill: "Let me solve this step by step.\n<think>", Completion: strings.Repeat("reasoning ", 200) + "</think><answer>$42M</answer>"}
	for b.Loop() {
		Structural(in)
	}
}

// TestLongInput holds the rewards to their bounds on long, number-heavy
// input: a predicted answer over MaxAnswerLen bytes never matches (even when
// it holds the gold), one just under it is still read in full, and a 1 MB
// completion gets its rewards within a generous deadline (a blow-up guard,
// not a speed measure: that is in the benchmarks).
func TestLongInput(t *testing.T) {
	unit := "$1,234 on 2023-03-31 and 12% (5) = "
	under := strings.Repeat(unit, (MaxAnswerLen-10)/len(unit)) + "12%"
	over := strings.Repeat(unit, 2000)
	completion := "<think>" + strings.Repeat(unit, 30000) + "</think><answer>12%</answer>"
	type result struct {
		under, underDate, underWrong, over bool
		structural, format, accuracy       float64
	}
	done := make(chan result, 1)
	go func() {
		in := Input{Completion: completion, Answer: "12%"}
		done <- result{
			Accuracy{}.Match(under, "12%"), Accuracy{}.Match(under, "March 31, 2023"), Accuracy{}.Match(under, "13%"),
			Accuracy{}.Match(over, "12%"), Structural(in), Format(in), Accuracy{}.Score(in),
		}
	}()
	select {
	case r := <-done:
		if len(under) > MaxAnswerLen || !r.under || !r.underDate || r.underWrong {
			t.Errorf("a %d-byte answer: match 12%% %v, the date %v, 13%% %v; want true, true, false", len(under), r.under, r.underDate, r.underWrong)
		}
		if r.over {
			t.Errorf("a %d-byte answer (over MaxAnswerLen %d) matched", len(over), MaxAnswerLen)
		}
		if r.structural != 2 || r.format != 1 || r.accuracy != 1 {
			t.Errorf("a %d-byte completion: structural %v, format %v, accuracy %v; want 2, 1, 1", len(completion), r.structural, r.format, r.accuracy)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("rewards on long input did not finish within 30 s")
	}
}

func TestOverlongPenalty(t *testing.T) {
	f, err := OverlongPenalty(100, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    int
		want float64
	}{{0, 0}, {80, 0}, {90, -0.5}, {100, -1}, {101, -1}} {
		if got := f(Input{CompletionIDs: make([]int, c.n)}); got != c.want {
			t.Errorf("%d tokens: %v, want %v", c.n, got, c.want)
		}
	}
	for _, bad := range [][2]int{{0, 1}, {10, 0}, {10, 11}} {
		if _, err := OverlongPenalty(bad[0], bad[1]); err == nil {
			t.Errorf("OverlongPenalty(%d, %d) succeeded", bad[0], bad[1])
		}
	}
}

// FuzzRewards checks that no built-in reward panics or leaves its range.
func FuzzRewards(f *testing.F) {
	f.Add("Let me solve this step by step.\n<think>", " 1+1</think><answer>2</answer>", "2")
	f.Add("", "<answer>(1,234)</answer>", "-1,234")
	f.Add("", "<think></think><answer>March 31, 2023 = 12%</answer>", "31/03/2023")
	reg := Default()
	set, err := reg.ParseSet("structural,format,accuracy")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, prefill, completion, answer string) {
		in := Input{Prefill: prefill, Completion: completion, Answer: answer}
		res := set.Score(in)
		m := res.Map()
		if s := m["structural"]; s < -1 || s > 2 {
			t.Errorf("structural %v out of range", s)
		}
		for _, k := range []string{"format", "accuracy"} {
			if v := m[k]; v != 0 && v != 1 {
				t.Errorf("%s = %v", k, v)
			}
		}
		if m["format"] == 1 && m["structural"] != 2 {
			t.Errorf("strict format passed but structural is %v", m["structural"])
		}
	})
}
