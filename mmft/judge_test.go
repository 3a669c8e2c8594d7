package mmft

import (
	"context"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/rewards"
)

// TestJudgeRewardRunsThroughTheEngine grades completions with the embedded
// model as judge: completions without an answer score −1 without a call;
// the others are rendered as chat prompts, generated greedily on the base
// model and parsed (a random model's reply holds no grade: −1, or a grade/5).
func TestJudgeRewardRunsThroughTheEngine(t *testing.T) {
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(context.Background(), be, "embedded", ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	br := JudgeReward(m, 0.5)
	if br.Name != "judge" || br.Weight != 0.5 {
		t.Fatalf("got %+v", br)
	}
	ins := []rewards.Input{
		{Prefill: "<think>", Completion: "x</think><answer>12</answer>", Answer: "12", Question: "What is the value of A?"},
		{Prefill: "<think>", Completion: "no answer", Answer: "12"},
	}
	got, err := br.Score(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != -1 {
		t.Fatalf("scores %v: want two, the second −1 (no answer to grade)", got)
	}
	if v := got[0]; v != -1 && v != 0 && v != 1 && v != 2 {
		t.Fatalf("score %v is not −1 or a grade/5", v)
	}
	for _, spec := range []string{"structural,judge", "judge=0.5,accuracy"} {
		rest, w, err := SplitJudge(spec)
		if err != nil || w == 0 || rest == spec {
			t.Errorf("SplitJudge(%q) = %q, %v, %v", spec, rest, w, err)
		}
	}
	if _, _, err := SplitJudge("judge=x"); err == nil {
		t.Error("a bad judge weight must be refused")
	}
}
