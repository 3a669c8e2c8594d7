package engine

import (
	"context"
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

func TestGreedyTiny(t *testing.T) {
	m, ref := loadTiny(t)
	want, ws := ref.ints(t, "greedy_ids")
	var reqs []Request
	ps, err := Prompts(m.Config, ref.batch(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		reqs = append(reqs, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: ws[1], IgnoreEOS: true}})
	}
	got, err := m.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ws[0] {
		for j := range ws[1] {
			if int64(got[i].IDs[j]) != want[i*ws[1]+j] {
				t.Fatalf("greedy ids row %d = %v, want %v", i, got[i].IDs, want[i*ws[1]:(i+1)*ws[1]])
			}
		}
		if got[i].Finish != FinishLength {
			t.Errorf("row %d finished by %q, want length", i, got[i].Finish)
		}
	}
}

// TestGenerateLiveAdapter generates with the fixture's LoRA adapter set on
// the engine, then with none (the reference): each completion's policy
// log-probs must be those of a full forward with (without) the adapter.
func TestGenerateLiveAdapter(t *testing.T) {
	m, ref := loadTiny(t)
	ad, err := lora.Load(shared.Fixture(t, "qwen2vl-tiny", "lora_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Prompts(m.Config, ref.batch(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, adapter := range []*qwen2vl.LoRA{l, nil} {
		if err := m.SetAdapter(adapter); err != nil {
			t.Fatal(err)
		}
		req := Request{Prompt: ps[0], N: 2, Sampling: Sampling{Temperature: 1, MaxNewTokens: 5, IgnoreEOS: true, Seed: 2}}
		comps, err := m.Generate(context.Background(), []Request{req}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range comps {
			full := Prompt{IDs: append(append([]int32(nil), req.Prompt.IDs...), c.IDs...), Images: req.Prompt.Images}
			out, err := m.Forward(batchOf([]Prompt{full}, len(full.IDs), 1), adapter)
			if err != nil {
				t.Fatal(err)
			}
			logits, _ := tensors.CopyFlatData[float32](out.Logits)
			v, lp := m.Config.Text.VocabSize, len(req.Prompt.IDs)
			for k, id := range c.IDs {
				row := logits[(lp-1+k)*v : (lp+k)*v]
				top, sum := math.Inf(-1), 0.0
				for _, x := range row {
					top = max(top, float64(x))
				}
				for _, x := range row {
					sum += math.Exp(float64(x) - top)
				}
				want := float64(row[id]) - top - math.Log(sum)
				if d := math.Abs(want - float64(c.PolicyLogProbs[k])); d > 1e-4 {
					t.Errorf("adapter %v, token %d: policy log-prob %g, forward %g", adapter != nil, k, c.PolicyLogProbs[k], want)
				}
			}
		}
	}
}
