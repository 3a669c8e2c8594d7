package mmft

import (
	"context"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/compute"
)

func TestEvaluateGreedyAndScored(t *testing.T) {
	ctx := context.Background()
	if _, err := Evaluate(ctx, nil, nil, nil, EvalOptions{}); err == nil || !strings.Contains(err.Error(), "LoadModel") {
		t.Fatalf("no model: %v", err)
	}
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(ctx, be, "embedded", ModelOptions{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadData(ctx, "embedded", "test", DataOptions{NoShuffle: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(ctx, m, nil, d, EvalOptions{MaxSamples: -1}); err == nil {
		t.Fatal("negative max_samples accepted")
	}
	var progress []int
	o := EvalOptions{MaxSamples: 5, MaxNewTokens: 6, Batch: 2, Progress: func(done, total int) { progress = append(progress, done) }}
	a, err := Evaluate(ctx, m, nil, d, o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Samples != 5 || len(a.Records) != 5 || len(progress) != 3 || progress[2] != 5 {
		t.Fatalf("samples %d, records %d, progress %v", a.Samples, len(a.Records), progress)
	}
	correct := 0
	for i, r := range a.Records {
		if r.Index != i || r.Tokens == 0 || r.Tokens > 6 || !strings.HasPrefix(r.Output, "Let me solve") || r.Gold == "" {
			t.Fatalf("record %d: %+v", i, r)
		}
		if r.Correct {
			correct++
		}
	}
	if a.Accuracy != float64(correct)/5 {
		t.Fatalf("accuracy %v with %d correct of 5", a.Accuracy, correct)
	}
	o.Batch = 5 // greedy answers do not depend on how prompts are batched
	b, err := Evaluate(ctx, m, nil, d, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Records {
		if a.Records[i].Output != b.Records[i].Output {
			t.Fatalf("record %d: greedy output %q, then %q", i, a.Records[i].Output, b.Records[i].Output)
		}
	}
	if h := a.HTML(); !strings.Contains(h, "&lt;think&gt;") || strings.Contains(h, "<think>") {
		t.Fatal("evaluation HTML does not escape the model's output")
	}
}
