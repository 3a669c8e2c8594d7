package grpo

import (
	"context"
	"slices"
	"testing"

	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/rewards"
)

// TestPlantedRewardRaisesItsToken plants a reward of 1 for every completion
// holding one chosen token (one the untrained model emits now and then) and
// checks that GRPO makes the token more frequent in the rollouts.
func TestPlantedRewardRaisesItsToken(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few dozen steps")
	}
	s := tinySetup(t)
	cfg := tinyConfig()
	cfg.BatchSize, cfg.NumGenerations = 4, 8
	cfg.Objective.MaxCompletionLength = 8
	cfg.Objective.Beta = 0
	cfg.Schedule.LearningRate = 1e-2

	// Choose the token: among those the untrained model samples, one found in
	// about a tenth of the completions.
	probe, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := probe.collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var reqs []engine.Request
	for _, p := range r.eng {
		reqs = append(reqs, engine.Request{Prompt: p, N: 16, Sampling: probe.sampling()})
	}
	comps, err := s.Engine.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := map[int32]int{}
	for _, c := range comps {
		seen := map[int32]bool{}
		for _, id := range c.IDs {
			if !seen[id] {
				seen[id] = true
				in[id]++
			}
		}
	}
	target, best := int32(-1), 1.0
	for id, n := range in {
		f := float64(n) / float64(len(comps))
		if d := abs(f - 0.1); f >= 0.03 && d < best {
			target, best = id, d
		}
	}
	if target < 0 {
		t.Fatal("the untrained model emits no token in at least 3% of its completions")
	}
	planted := func(in rewards.Input) float64 {
		if slices.Contains(in.CompletionIDs, int(target)) {
			return 1
		}
		return 0
	}
	s.Rewards = rewards.Set{Components: []rewards.Component{{Name: "planted", Weight: 1, Func: planted}}}
	s.Steps = 16
	tr, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	var curve []float64
	for range s.Steps {
		m, err := tr.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		curve = append(curve, float64(m["reward"]))
	}
	first, last := mean(curve[:4]), mean(curve[len(curve)-4:])
	t.Logf("token %d: share of completions holding it %.3f (first 4 steps) → %.3f (last 4); curve %.2f", target, first, last, curve)
	if last < first+0.3 {
		t.Errorf("the planted token's share rose from %.3f to %.3f only; want at least +0.3", first, last)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
