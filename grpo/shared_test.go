package grpo

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"

	"github.com/mmft-go/mmft/engine"
)

// sequentialCPU is a pure-Go backend that runs a program's ops one at a time
// (each op still spreads over the worker pool). The shared-prompt programs
// hold many independent batched products (prompt and tail side by side), and
// GoMLX v0.26's pool can deadlock when every pool goroutine runs such a
// product that waits to start its own sub-tasks (execDotGeneralSmall's
// nested WaitToStart); with one op at a time that cannot happen.
func sequentialCPU(t testing.TB) backends.Backend {
	t.Helper()
	b, err := simplego.New("ops_sequential,parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSharedPromptStepMatchesFull trains three trainers on the same
// rollouts: on full sequences, with each group's prompt computed once
// (Setup.SharedPrompt), and layer by layer with recomputation
// (Setup.Recompute), with the KL to the reference and two steps, once with
// gradient accumulation (two micro-batches) and μ = 2 updates (old
// log-probs) and once with one micro-batch (the fused step program for the
// first two) and μ = 1: the losses, KLs and gradient norms agree to 1e-5
// relative and so do the adapters after the updates.
func TestSharedPromptStepMatchesFull(t *testing.T) {
	for _, c := range []struct{ ga, mu int }{{2, 2}, {1, 1}} {
		t.Run(fmt.Sprintf("accumulation%d_mu%d", c.ga, c.mu), func(t *testing.T) {
			cfg := tinyConfig()
			cfg.GradientAccumulationSteps, cfg.NumIterations = c.ga, c.mu
			checkSharedPrompt(t, cfg)
		})
	}
}

func checkSharedPrompt(t *testing.T, cfg Config) {
	s := tinySetupOn(t, sequentialCPU(t))
	full, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := full.collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var reqs []engine.Request
	for _, p := range r.eng {
		reqs = append(reqs, engine.Request{Prompt: p, N: cfg.NumGenerations, Sampling: full.sampling()})
	}
	comps, err := s.Engine.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	rewards := make([]float64, len(comps))
	for i := range rewards {
		rewards[i] = float64((i*7)%5) / 4
	}
	s.SharedPrompt = true
	shared, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	s.Recompute = true
	layered, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	others := map[string]*Trainer{"shared prompt": shared, "layer by layer": layered}
	near := func(what string, a, b float64) {
		t.Helper()
		if d := math.Abs(a - b); d > 1e-5*math.Max(math.Abs(a), math.Abs(b))+1e-9 || math.IsNaN(d) {
			t.Errorf("%s: full %.9g, other %.9g", what, a, b)
		}
	}
	for step := range 2 {
		mf, err := full.TrainOn(context.Background(), r.eng, comps, rewards)
		if err != nil {
			t.Fatal(err)
		}
		if mf["grad_norm"] == 0 {
			t.Fatalf("step %d: zero gradient: the comparison would be empty", step)
		}
		for what, tr := range others {
			ms, err := tr.TrainOn(context.Background(), r.eng, comps, rewards)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			for _, k := range []string{"loss", "kl", "grad_norm", "ratio", "loss_tokens"} {
				near(what+" "+k, float64(mf[k]), float64(ms[k]))
			}
			t.Logf("step %d, %s: loss %.6g / %.6g, grad norm %.6g / %.6g", step, what, mf["loss"], ms["loss"], mf["grad_norm"], ms["grad_norm"])
		}
	}
	af, err := full.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	for what, tr := range others {
		as, err := tr.Adapter()
		if err != nil {
			t.Fatal(err)
		}
		num, den := 0.0, 0.0
		for _, name := range af.Names() {
			for _, pair := range [][2][]float32{{af.Modules[name].A, as.Modules[name].A}, {af.Modules[name].B, as.Modules[name].B}} {
				for i := range pair[0] {
					d := float64(pair[0][i] - pair[1][i])
					num, den = num+d*d, den+float64(pair[0][i])*float64(pair[0][i])
				}
			}
		}
		if rel := math.Sqrt(num / den); rel > 1e-5 || math.IsNaN(rel) {
			t.Errorf("%s: adapters after two steps differ by %.3g relative", what, rel)
		} else {
			t.Logf("%s: adapters after two steps differ by %.3g relative", what, rel)
		}
	}
}

// TestRecomputeRefusesDropout: the recomputed forward pass would draw a
// second dropout mask, so the combination is refused with one error naming
// the field.
func TestRecomputeRefusesDropout(t *testing.T) {
	s := tinySetup(t)
	s.Recompute = true
	cfg := tinyConfig()
	cfg.LoRADropout = 0.1
	_, err := New(cfg, s)
	if err == nil || !strings.Contains(err.Error(), "lora_dropout") {
		t.Fatalf("New with recomputation and dropout: error %v, want one naming lora_dropout", err)
	}
}
