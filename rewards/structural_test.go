package rewards

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

// TestStructuralFixture checks the seed's structural reward against the
// reference values in fixtures/rewards/structural_cases.json, exactly.
func TestStructuralFixture(t *testing.T) {
	raw, err := os.ReadFile(shared.Fixture(t, "rewards", "structural_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Prefill string `json:"prefill"`
		Cases   []struct {
			Completion string  `json:"completion"`
			Reward     float64 `json:"reward"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("structural_cases.json: %v", err)
	}
	if len(fx.Cases) < 50 {
		t.Fatalf("only %d cases in the fixture", len(fx.Cases))
	}
	for i, c := range fx.Cases {
		got := Structural(Input{Prefill: fx.Prefill, Completion: c.Completion})
		if got != c.Reward {
			t.Errorf("case %d %q: got %v, want %v", i, c.Completion, got, c.Reward)
		}
	}
}

func TestStructuralPythonWhitespace(t *testing.T) {
	// U+001F is white space for Python's str.strip, so trailing it costs nothing.
	in := Input{Completion: "<think>a</think><answer>1</answer>\x1f"}
	if got := Structural(in); got != 2 {
		t.Errorf("got %v, want 2", got)
	}
	in.Completion = "<think>a</think><answer>1</answer>x"
	if got := Structural(in); got != 1.5 {
		t.Errorf("got %v, want 1.5", got)
	}
}

func TestFormat(t *testing.T) {
	const seed = "Let me solve this step by step.\n<think>"
	cases := []struct {
		prefill, completion string
		want                float64
	}{
		{seed, " 40+2</think><answer>42</answer>", 1},
		{seed, " 40+2</think>\n\n<answer> 42 </answer>\n", 1},
		{seed, "</think><answer>42</answer>", 1},       // empty thought is allowed
		{seed, " a</think><answer>  </answer>", 0},     // blank answer
		{seed, " a</think> so <answer>42</answer>", 0}, // text between
		{seed, " a</think><answer>42</answer> done", 0},
		{seed, " a</think><answer>42</answer><|im_end|>", 0},
		{seed, " a</think><answer>42", 0},
		{seed, " a<think>b</think><answer>42</answer>", 0},
		{seed, " a</think><answer>4</answer><answer>2</answer>", 0},
		{"", "<think>a</think><answer>42</answer>", 1},
		{"", "  \n<think>a</think><answer>42</answer>", 1},
		{"", "Sure! <think>a</think><answer>42</answer>", 0}, // the model's own preamble
		{"", "<answer>42</answer><think>a</think>", 0},
		{"", "</think><think><answer>42</answer>", 0},
		{"", "", 0},
	}
	for _, c := range cases {
		if got := Format(Input{Prefill: c.prefill, Completion: c.completion}); got != c.want {
			t.Errorf("Format(%q + %q) = %v, want %v", c.prefill, c.completion, got, c.want)
		}
	}
}

func TestExtractAnswer(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"<think>x</think><answer> $5M </answer>", "$5M", true},
		{"<answer>1</answer> then <answer>2</answer>", "2", true},
		{"<answer>1", "", false},
		{"1</answer>", "", false},
		{"no tags", "", false},
	} {
		got, ok := ExtractAnswer(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ExtractAnswer(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
