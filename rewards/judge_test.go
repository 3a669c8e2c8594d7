package rewards

import (
	"context"
	"strings"
	"testing"
)

func TestParseGrade(t *testing.T) {
	for reply, want := range map[string]float64{"10": 2, "5": 1, "0": 0, " 10.": 2, "Grade: 5/10": 1, "I'd say 0": 0,
		"": -1, "seven": -1, "100": -1, "50": -1, "7": -1} {
		if got, _ := ParseGrade(reply); got != want {
			t.Errorf("ParseGrade(%q) = %g, want %g", reply, got, want)
		}
	}
}

func TestJudgeScoreBatch(t *testing.T) {
	var seen []string
	j := Judge{Generate: func(_ context.Context, prompts []string) ([]string, error) {
		seen = prompts
		out := make([]string, len(prompts))
		for i, p := range prompts {
			switch {
			case strings.Contains(p, "Predicted answer: 42\n"):
				out[i] = "10"
			case strings.Contains(p, "Predicted answer: 41\n"):
				out[i] = "5"
			default:
				out[i] = "no idea"
			}
		}
		return out, nil
	}}
	ins := []Input{
		{Prefill: "<think>", Completion: "x</think><answer>42</answer>", Answer: "42", Question: "q"},
		{Prefill: "<think>", Completion: "x</think><answer>41</answer>", Answer: "42"},
		{Prefill: "<think>", Completion: "no answer at all", Answer: "42"},
		{Prefill: "<think>", Completion: "x</think><answer>9</answer>", Answer: "42"},
	}
	got, err := j.ScoreBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2, 1, -1, -1}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("score %d = %g, want %g", i, got[i], want[i])
		}
	}
	if len(seen) != 3 {
		t.Errorf("the judge was asked %d prompts, want 3 (a completion without an answer is not sent)", len(seen))
	}
	if _, err := (Judge{}).ScoreBatch(context.Background(), ins); err == nil {
		t.Error("a judge without a generator must fail")
	}
}
