package grpo

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
)

// tinySetup builds the embedded default: tiny random model, its processor,
// an engine and the built-in easy documents.
func tinySetup(t testing.TB) Setup { return tinySetupOn(t, nil) }

// tinySetupOn is tinySetup on backend be (nil: compute.NewCPU).
func tinySetupOn(t testing.TB, be backends.Backend) Setup {
	t.Helper()
	dir, err := embedded.ModelDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	proc, err := processor.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := embedded.Config()
	if err != nil {
		t.Fatal(err)
	}
	if be == nil {
		cpu, err := compute.NewCPU()
		if err != nil {
			t.Fatal(err)
		}
		be = cpu.Backend
	}
	m, err := qwen2vl.LoadFrom(be, cfg, embedded.RandomWeights(cfg, 1), qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(m, engine.Options{Slots: 16})
	if err != nil {
		t.Fatal(err)
	}
	train, _, err := synth.Default(synth.Easy)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rewards.Default().ParseSet("structural")
	if err != nil {
		t.Fatal(err)
	}
	return Setup{Engine: eng, Processor: proc, Rewards: set, Data: DocEpochs(train, 3), Steps: 3}
}

func tinyConfig() Config {
	c := DefaultConfig()
	c.BatchSize = 2
	c.NumGenerations = 4
	c.NumIterations = 1
	c.Objective.MaxCompletionLength = 12
	c.Objective.Beta = 0.04
	c.Schedule = ScheduleConfig{Kind: ScheduleConstant, LearningRate: 1e-2}
	c.LoRARank = 4
	c.LoRAAlpha = 8
	c.LoRADropout = 0
	c.OutputDir = "unused"
	return c
}

func TestTrainerStepsUpdateTheAdapter(t *testing.T) {
	s := tinySetup(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"fused", func(*Config) {}},
		{"accumulated, two iterations", func(c *Config) { c.GradientAccumulationSteps = 2; c.NumIterations = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig()
			tc.edit(&cfg)
			tr, err := New(cfg, s)
			if err != nil {
				t.Fatal(err)
			}
			before, err := tr.Adapter()
			if err != nil {
				t.Fatal(err)
			}
			m, err := tr.Step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("metrics: %v", m)
			for _, k := range []string{"reward", "loss", "kl", "grad_norm", "completion_length", "entropy"} {
				v, ok := m[k]
				if !ok || math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Errorf("metric %s = %v (present %v)", k, v, ok)
				}
			}
			after, err := tr.Adapter()
			if err != nil {
				t.Fatal(err)
			}
			changed := false
			for _, name := range after.Names() {
				if !slices.Equal(before.Modules[name].B, after.Modules[name].B) {
					changed = true
				}
			}
			if m["zero_std_groups"] < 2 && !changed {
				t.Error("a step with reward variance left every lora_B unchanged")
			}
		})
	}
}

// TestLoRADropout checks that dropout on the LoRA branch changes the update
// (a run with p=0.5 differs from p=0 on the same rollouts), that the same
// seed repeats it exactly, and that the dropout RNG state survives a
// checkpoint round trip.
func TestLoRADropout(t *testing.T) {
	run := func(p float64) ([]float32, *Checkpoint) {
		s := tinySetup(t)
		cfg := tinyConfig()
		cfg.LoRADropout = p
		// A seed whose two rollouts both have reward variance: a step
		// without it updates nothing, with or without dropout.
		cfg.Seed = 7
		tr, err := New(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		// Two steps: the first makes B non-zero, so the second's gradient
		// reaches A through the dropped branch input.
		for range 2 {
			if _, err := tr.Step(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		ad, err := tr.Adapter()
		if err != nil {
			t.Fatal(err)
		}
		ck, err := tr.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		return ad.Modules["model.layers.0.self_attn.q_proj"].A, ck
	}
	a0, _ := run(0)
	a1, ck := run(0.5)
	a2, _ := run(0.5)
	if slices.Equal(a0, a1) {
		t.Error("dropout 0.5 left the update as without dropout")
	}
	if !slices.Equal(a1, a2) {
		t.Error("the same seed and dropout gave different updates")
	}
	if st, ok := ck.State.RNG["dropout"]; !ok || len(st.State) == 0 {
		t.Errorf("the checkpoint holds no dropout RNG state: %+v", ck.State.RNG)
	}
}

// TestRolloutsAreOnPolicy checks, over steps that change the adapter, that
// the rollouts come from the adapter being trained and that the first
// update of a rollout batch starts on-policy: with the trainer's log-probs
// at rollout time as logp_old, the ratio is 1 and nothing is clipped, and
// the importance weight exp(logp_old − logp_engine) is 1 (the engine's
// sampling log-probs equal the trainer's for the same adapter and ids; a
// rollout with a stale adapter, or a trainer reading the completions
// differently from the sampler, moves it away from 1).
func TestRolloutsAreOnPolicy(t *testing.T) {
	s := tinySetup(t)
	cfg := tinyConfig()
	cfg.Objective.ImportanceSamplingCorrection = true // logp_old and the engine's log-probs enter the loss
	cfg.Seed = 7                                      // a seed whose first rollout batches have reward variance
	tr, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	checked, last := 0, 0
	for step := 0; step < 8 && checked < 3; step++ {
		m, err := tr.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("step %d: ratio %.7f, clipped %g + %g, importance weight %.7f, kl %.4f", step+1, m["ratio"], m["clip_low"], m["clip_high"], m["is_weight"], m["kl"])
		if m["loss_tokens"] == 0 {
			continue // every group had equal rewards: no update to check (the adapter stays)
		}
		checked, last = checked+1, step
		if d := math.Abs(float64(m["ratio"]) - 1); d > 1e-5 {
			t.Errorf("step %d: mean ratio %v at the first update; want 1", step+1, m["ratio"])
		}
		if m["clip_low"] != 0 || m["clip_high"] != 0 {
			t.Errorf("step %d: clipped fractions %v, %v at the first update; want 0", step+1, m["clip_low"], m["clip_high"])
		}
		if d := math.Abs(float64(m["is_weight"]) - 1); d > 1e-4 {
			t.Errorf("step %d: importance weight %v; want 1 (engine and trainer log-probs differ)", step+1, m["is_weight"])
		}
	}
	if checked < 3 {
		t.Fatalf("only %d of 8 rollout batches had reward variance; the test needs 3 (change the seed)", checked)
	}
	if m := tr.History()[last]; m["kl"] < 1e-3 {
		t.Errorf("KL to the reference %v after 2 updates: the adapter did not move, the test checks nothing", m["kl"])
	}
}

// TestNoSignalBatchChangesNothing trains one step with reward variance (so
// AdamW has momentum), then a batch whose groups all have equal rewards:
// the adapter and the optimizer state must stay as they were (a zero
// gradient through AdamW would still move the adapter by its momentum).
func TestNoSignalBatchChangesNothing(t *testing.T) {
	s := tinySetup(t)
	cfg := tinyConfig()
	tr, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := tr.collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []engine.Request
	for _, p := range r.eng {
		reqs = append(reqs, engine.Request{Prompt: p, N: cfg.NumGenerations, Sampling: tr.sampling()})
	}
	comps, err := s.Engine.Generate(ctx, reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	varied := make([]float64, len(comps))
	for i := range varied {
		varied[i] = float64(i % 3)
	}
	if m, err := tr.TrainOn(ctx, r.eng, comps, varied); err != nil || m["no_signal"] != 0 || m["grad_norm"] == 0 {
		t.Fatalf("a batch with reward variance: metrics %v, error %v; want a gradient", m, err)
	}
	before, err := tr.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	m, err := tr.TrainOn(ctx, r.eng, comps, make([]float64, len(comps)))
	if err != nil {
		t.Fatal(err)
	}
	if m["no_signal"] != 1 || m["loss_tokens"] != 0 {
		t.Errorf("a batch of equal rewards: metrics %v; want no_signal 1 and no token counted", m)
	}
	after, err := tr.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range after.Adapter.Names() {
		if !slices.Equal(before.Adapter.Modules[name].A, after.Adapter.Modules[name].A) || !slices.Equal(before.Adapter.Modules[name].B, after.Adapter.Modules[name].B) {
			t.Fatalf("adapter %s moved on a batch without signal", name)
		}
	}
	if before.Optimizer.Step != after.Optimizer.Step {
		t.Errorf("AdamW step %d → %d on a batch without signal", before.Optimizer.Step, after.Optimizer.Step)
	}
	if tr.StepsDone() != 2 {
		t.Errorf("%d steps done; the schedule still advances on a batch without signal (want 2)", tr.StepsDone())
	}
}
