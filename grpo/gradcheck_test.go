package grpo

import (
	"context"
	"math"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TestFullLossGradientMatchesFiniteDifferences checks the gradient of the
// whole GRPO objective (policy log-probs through the model with the adapter,
// clipped ratio against fixed old log-probs, k3 KL to the reference) with
// respect to adapter weights against central finite differences, on the
// embedded tiny model with real rollouts, in both the full and the
// shared-prompt layout.
func TestFullLossGradientMatchesFiniteDifferences(t *testing.T) {
	s := tinySetupOn(t, sequentialCPU(t)) // see sequentialCPU
	cfg := tinyConfig()
	cfg.Objective.Beta = 0.1
	cfg.Objective.EpsilonLow, cfg.Objective.EpsilonHigh = 0.2, 0.2
	tr, err := New(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	// A non-zero adapter, so that A and B both receive gradient.
	ad, _ := tr.Adapter()
	for _, name := range ad.Names() {
		for i := range ad.Modules[name].B {
			ad.Modules[name].B[i] = float32(math.Sin(float64(i))) * 0.05
		}
	}
	if err := tr.loadAdapter(ad); err != nil {
		t.Fatal(err)
	}
	r, err := tr.collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := []engine.Request{}
	for _, p := range r.eng {
		reqs = append(reqs, engine.Request{Prompt: p, N: cfg.NumGenerations, Sampling: tr.sampling()})
	}
	comps, err := s.Engine.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := BuildTrainBatch(s.Engine, r.eng, cfg.NumGenerations, comps)
	if err != nil {
		t.Fatal(err)
	}
	n := tb.N
	adv := make([]float32, n)
	for i := range adv {
		adv[i] = float32(i%3) - 1
	}
	// Old log-probs: the engine's, shifted so that ratios differ from 1 (some clipped).
	old := slices.Clone(tb.EngineLogps)
	for i := range old {
		old[i] += float32(0.3 * math.Sin(float64(7*i)))
	}
	batch := []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(tb.Targets, n, tb.C),
		tensors.FromFlatDataAndDimensions(tb.Mask, n, tb.C),
		tensors.FromFlatDataAndDimensions(adv, n),
		tensors.FromFlatDataAndDimensions(slices.Repeat([]float32{1}, n), n),
		tensors.FromFlatDataAndDimensions(tb.Truncated, n),
		tensors.FromScalar(float32(1)),
		tensors.FromFlatDataAndDimensions(old, n, tb.C),
		tensors.FromFlatDataAndDimensions(tb.EngineLogps, n, tb.C), // reference
	}
	// Both layouts: full sequences, and each group's prompt computed once.
	for _, grouped := range []bool{false, true} {
		t.Run(map[bool]string{false: "full", true: "shared_prompt"}[grouped], func(t *testing.T) {
			text := tb.Text.Tensors(tb.Features)
			if grouped {
				gt, err := tb.Text.Grouped(cfg.NumGenerations, tb.C)
				if err != nil {
					t.Fatal(err)
				}
				text = gt.Tensors(tb.Features)
			}
			const module = "model.layers.1.mlp.down_proj"
			v := stepVariant{old: true, ref: true, grouped: grouped}
			run := execution.New(tr.model.Backend, execution.Placement{})
			prog := execution.NewProgram("gradcheck", func(variant any, in []*Node) []*Node {
				vv := variant.(stepVariant)
				w, rest := tr.bindings[vv.layout].Weights(in)
				logps, rest := textLogps(vv, rest)
				b, _ := readBatch(vv, rest)
				loss := policyLoss(tr.cfg.Objective, w, logps, b)[0]
				g := Gradient(loss, w.LoRA[module].A, w.LoRA[module].B)
				return []*Node{loss, g[0], g[1]}
			})
			eval := func(l *qwen2vl.LoRA) (float64, []float32, []float32) {
				b, err := tr.bind(l)
				if err != nil {
					t.Fatal(err)
				}
				v.layout = b.Layout()
				args := tr.weightArgs(b, false)
				for _, x := range text {
					args = append(args, x)
				}
				for _, x := range batch {
					args = append(args, x)
				}
				outs, err := run.Run(prog, v, args...)
				if err != nil {
					t.Fatal(err)
				}
				ga, _ := tensors.CopyFlatData[float32](outs[1])
				gb, _ := tensors.CopyFlatData[float32](outs[2])
				return float64(tensors.ToScalar[float32](outs[0])), ga, gb
			}
			_, ga, gb := eval(tr.lora)
			perturbed := func(which string, i int, delta float32) float64 {
				mod := ad.Modules[module]
				a, b := slices.Clone(mod.A), slices.Clone(mod.B)
				if which == "A" {
					a[i] += delta
				} else {
					b[i] += delta
				}
				ta, _ := run.Upload(a, mod.R, mod.In)
				tb, _ := run.Upload(b, mod.Out, mod.R)
				l := &qwen2vl.LoRA{Modules: map[string]qwen2vl.LoRAModule{}}
				for k, m := range tr.lora.Modules {
					l.Modules[k] = m
				}
				l.Modules[module] = qwen2vl.LoRAModule{A: ta, B: tb, Scale: mod.Scale}
				loss, _, _ := eval(l)
				return loss
			}
			const h = 1e-2
			checked := 0
			for _, c := range []struct {
				which string
				g     []float32
			}{{"A", ga}, {"B", gb}} {
				// The entries with the largest gradients, where finite differences in float32 are meaningful.
				idx := make([]int, len(c.g))
				for i := range idx {
					idx[i] = i
				}
				slices.SortFunc(idx, func(x, y int) int { return cmpAbs(c.g[y], c.g[x]) })
				for _, i := range idx[:3] {
					fd := (perturbed(c.which, i, h) - perturbed(c.which, i, -h)) / (2 * h)
					if d := math.Abs(fd - float64(c.g[i])); d > 0.05*math.Abs(float64(c.g[i]))+1e-4 {
						t.Errorf("d loss / d %s[%d]: autodiff %.6g, finite differences %.6g", c.which, i, c.g[i], fd)
					}
					checked++
				}
			}
			if checked != 6 || math.Abs(float64(ga[0]))+math.Abs(float64(gb[0])) == 0 && slices.Max(gb) == 0 {
				t.Fatal("no gradient entry was checked")
			}

		})
	}
}

func cmpAbs(a, b float32) int {
	switch x, y := math.Abs(float64(a)), math.Abs(float64(b)); {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
