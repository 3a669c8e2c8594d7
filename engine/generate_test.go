package engine

import (
	"context"
	"math"
	"slices"
	"strings"
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

// TestColumnsStayOnDevice: the per-slot columns go up only when a slot
// changes, and one call admits every completion that takes a slot at once. Rows all admitted at once and forced to one length upload once
// over several decode calls; with more sequences than slots and different
// lengths every admission round uploads, and a free slot either keeps
// running unread or is reset before it would pass its cache. Either way the
// tokens are the greedy fixture's.
func TestColumnsStayOnDevice(t *testing.T) {
	m, ref := loadTiny(t)
	want, ws := ref.ints(t, "greedy_ids")
	ps, err := Prompts(m.Config, ref.batch(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		slots      int
		lengths    []int // per request (cycled)
		maxUploads int
		admits     int // admission calls
	}{
		{"all at once", 0, []int{ws[1]}, 1, 1},
		{"refilled", 1, []int{ws[1], 2}, 2 * len(ps), len(ps)},
	} {
		e, err := New(m.Model, Options{Slots: c.slots, StepsPerCall: 2})
		if err != nil {
			t.Fatal(err)
		}
		var reqs []Request
		for i, p := range ps {
			reqs = append(reqs, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: c.lengths[i%len(c.lengths)], IgnoreEOS: true}})
		}
		g, err := e.newGeneration(reqs)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		got, err := g.run(context.Background(), func(Progress) { calls++ })
		g.release()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d uploads in %d calls", c.name, g.cols.uploads, calls)
		if got := e.Runner().Stats().Runs["engine.admit"].Calls; got != c.admits {
			t.Errorf("%s: %d admission calls, want %d (one per round of free slots)", c.name, got, c.admits)
		}
		if g.cols.uploads > c.maxUploads || g.cols.uploads < 1 || calls < 2 {
			t.Errorf("%s: columns uploaded %d times in %d decode calls, want 1…%d", c.name, g.cols.uploads, calls, c.maxUploads)
		}
		for i := range ws[0] {
			for j := range len(got[i].IDs) {
				if int64(got[i].IDs[j]) != want[i*ws[1]+j] {
					t.Fatalf("%s: greedy ids row %d = %v, want %v", c.name, i, got[i].IDs, want[i*ws[1]:(i+1)*ws[1]])
				}
			}
		}
	}
}

// TestGenerateWithFeatures: rollouts from image features computed
// beforehand (PromptFeatures, as the trainer shares them with its updates)
// are those Generate computes itself, and features for another number of
// prompts are refused.
func TestGenerateWithFeatures(t *testing.T) {
	m, ref := loadTiny(t)
	ps, err := Prompts(m.Config, ref.batch(t))
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i, p := range ps {
		reqs = append(reqs, Request{Prompt: p, N: 2, Sampling: Sampling{Temperature: 1, MaxNewTokens: 5, IgnoreEOS: true, Seed: uint64(7 + i)}})
	}
	want, err := m.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	feats, err := m.PromptFeatures(ps)
	if err != nil {
		t.Fatal(err)
	}
	if feats == nil {
		t.Fatal("the fixture's prompts have no image features")
	}
	vision := m.Runner().Stats().Runs["engine.vision"].Calls
	got, err := m.GenerateWithFeatures(context.Background(), reqs, feats, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again := m.Runner().Stats().Runs["engine.vision"].Calls; again != vision {
		t.Errorf("the vision tower ran %d more times with the features given", again-vision)
	}
	for i := range want {
		if !slices.Equal(got[i].IDs, want[i].IDs) {
			t.Errorf("completion %d: %v with given features, %v without", i, got[i].IDs, want[i].IDs)
		}
		for j := range want[i].PolicyLogProbs {
			if d := math.Abs(float64(got[i].PolicyLogProbs[j] - want[i].PolicyLogProbs[j])); d > 1e-4 {
				t.Errorf("completion %d token %d: log-prob %g with given features, %g without", i, j, got[i].PolicyLogProbs[j], want[i].PolicyLogProbs[j])
			}
		}
	}
	if _, err := m.GenerateWithFeatures(context.Background(), reqs[:1], feats, nil); err == nil || !strings.Contains(err.Error(), "image features") {
		t.Errorf("features of %d prompts for 1 request: %v", len(ps), err)
	}
}
