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
