package rewards

import (
	"strings"
	"testing"
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

func TestLongInput(t *testing.T) {
	// A long, number-heavy answer must still be handled (no blow-up).
	pred := strings.Repeat("$1,234 on 2023-03-31 and 12% (5) = ", 2000)
	_ = Accuracy{}.Match(pred, "12%")
	_ = Accuracy{}.Match(pred, "March 31, 2023")
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
