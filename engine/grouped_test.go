package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TestGroupedLogProbsMatchFull checks the shared-prompt layout
// (TextBatch.Grouped, Weights.GroupedTokenLogProbs: each group's prompt run
// once, its completions attending to its keys and values) against the full
// layout (Weights.TokenLogProbs, every row's prompt run again) on the CPU in
// float32: the completion log-probs and the gradient of a weighted sum of
// them with respect to every adapter A and B agree to 1e-5 relative, with
// prompts of different lengths (left padding, one with two images),
// completions of different lengths (right padding) and extra padding on
// both sides; and so does the layout GroupedTo gives, its prompt part cut to
// the prompts' columns and left-padded to a multiple of 8 (as the trainer
// lays it out on the GPU).
func TestGroupedLogProbsMatchFull(t *testing.T) {
	cfg := smallConfig(2, 2)
	src := randomBF16Source{specs: map[string][]int{}, seed: 7, std: 0.3}
	shp := map[string][]int{}
	for _, s := range cfg.ParamSpecs() {
		src.specs[s.Name], shp[s.Name] = s.Shape, s.Shape
	}
	// One op at a time: the grouped graph's many independent batched
	// products can deadlock GoMLX v0.26's pure-Go worker pool when run side
	// by side (execDotGeneralSmall waits for a worker from within one).
	seq, err := simplego.New("ops_sequential,parallelism=4")
	if err != nil {
		t.Fatal(err)
	}
	m, err := qwen2vl.LoadFrom(seq, cfg, src, qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lc := &lora.Config{R: 4, Alpha: 8, TargetModules: lora.Modules{Names: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}},
		Bias: "none", InitLoRAWeights: "false"} // non-zero B, so that every path carries gradient
	targets, err := lc.Targets(shp)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := lora.NewAdapter(lc, targets, shp, 3)
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	bind, err := m.Bind(l)
	if err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(5, 6))
	const group = 3
	prompts := []Prompt{
		randomPrompt(cfg, rng, 4, []qwen2vl.Grid{{T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 2}}),
		randomPrompt(cfg, rng, 3, nil),
		randomPrompt(cfg, rng, 6, []qwen2vl.Grid{{T: 1, H: 2, W: 4}}),
	}
	var comps []Completion
	for p := range prompts {
		for i := range group {
			c := Completion{Request: p, Index: i}
			for range 2 + rng.IntN(6) {
				c.IDs = append(c.IDs, int32(rng.IntN(cfg.ImageTokenID)))
			}
			comps = append(comps, c)
		}
	}
	tb, err := NewTrainBatch(cfg, prompts, comps, func(n int) int { return n + 2 })
	if err != nil {
		t.Fatal(err)
	}
	gt, err := tb.Text.Grouped(group, tb.T)
	if err != nil {
		t.Fatal(err)
	}
	if gt.Prompt.B != len(prompts) || gt.Tail.B != len(comps) || gt.Tail.L != tb.T || gt.Prompt.L != tb.Text.L-tb.T-1 {
		t.Fatalf("grouped layout: prompt %d×%d, tail %d×%d; want %d×%d and %d×%d",
			gt.Prompt.B, gt.Prompt.L, gt.Tail.B, gt.Tail.L, len(prompts), tb.Text.L-tb.T-1, len(comps), tb.T)
	}
	aligned, err := tb.Text.GroupedTo(group, tb.T, func(k int) int { return (k + 3 + 7) / 8 * 8 })
	if err != nil {
		t.Fatal(err)
	}
	if want := (tb.Text.L - tb.T - 1 - 2 + 3 + 7) / 8 * 8; aligned.Prompt.L != want || aligned.Tail.L != tb.T {
		t.Fatalf("GroupedTo: prompt part of %d columns, tail %d; want %d (the shared padding cut, then padded) and %d", aligned.Prompt.L, aligned.Tail.L, want, tb.T)
	}
	e, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	feats, err := tb.ImageFeatures(e)
	if err != nil {
		t.Fatal(err)
	}
	// A weight per completion token, so that rows and positions differ.
	weights := make([]float32, len(tb.Mask))
	for i, mk := range tb.Mask {
		weights[i] = mk * float32(rng.NormFloat64())
	}
	prog := execution.NewProgram("groupedtest", func(v any, in []*Node) []*Node {
		w, rest := bind.Weights(in)
		var lp *Node
		if v.(int) > 0 {
			gi, r := qwen2vl.ReadGroupedInputs(rest)
			lp, rest = w.GroupedTokenLogProbs(gi, r[0], 100), r
		} else {
			ti, r := qwen2vl.ReadTextInputs(rest)
			lp, rest = w.TokenLogProbs(ti, r[0], 100), r
		}
		loss := ReduceAllSum(Mul(lp, rest[1]))
		var params []*Node
		for _, name := range ad.Names() {
			params = append(params, w.LoRA[name].A, w.LoRA[name].B)
		}
		return append([]*Node{Mul(lp, ConvertDType(rest[1], lp.DType())), loss}, Gradient(loss, params...)...)
	})
	run := execution.New(m.Backend, execution.Placement{})
	eval := func(layout int) [][]float32 {
		var args []any
		for _, x := range bind.Tensors() {
			args = append(args, x)
		}
		text := [][]*tensors.Tensor{tb.Text.Tensors(feats), gt.Tensors(feats), aligned.Tensors(feats)}[layout]
		for _, x := range text {
			args = append(args, x)
		}
		args = append(args, tensors.FromFlatDataAndDimensions(tb.Targets, len(comps), tb.T),
			tensors.FromFlatDataAndDimensions(weights, len(comps), tb.T))
		outs, err := run.Run(prog, layout, args...)
		if err != nil {
			t.Fatal(err)
		}
		var vals [][]float32
		for _, o := range outs {
			f, err := tensors.CopyFlatData[float32](o)
			if err != nil {
				t.Fatal(err)
			}
			vals = append(vals, f)
		}
		return vals
	}
	full := eval(0)
	names := []string{"weighted log-probs", "loss"}
	for _, n := range ad.Names() {
		names = append(names, n+".A", n+".B")
	}
	for layout, grouped := range [][][]float32{eval(1), eval(2)} {
		for k := range full {
			num, den := 0.0, 0.0
			for i := range full[k] {
				d := float64(full[k][i] - grouped[k][i])
				num, den = num+d*d, den+float64(full[k][i])*float64(full[k][i])
			}
			rel := math.Sqrt(num / den)
			if den == 0 || rel > 1e-5 || math.IsNaN(rel) {
				t.Errorf("%s: %s vs full relative difference %.3g (norm %.3g)", names[k], []string{"Grouped", "GroupedTo"}[layout], rel, math.Sqrt(den))
			}
			if k < 3 {
				t.Logf("%s: %s: relative difference %.3g", []string{"Grouped", "GroupedTo"}[layout], names[k], rel)
			}
		}
	}
}

// TestHeadInDType: on a bf16 model, Weights.HeadInDType computes the
// log-prob head in bf16 products; the log-probs move by the logits' bf16
// rounding (non-zero, but within 0.05 nats of the float32 head's).
func TestHeadInDType(t *testing.T) {
	cfg := smallConfig(1, 2)
	src := randomBF16Source{specs: map[string][]int{}, seed: 8, std: 0.3}
	for _, s := range cfg.ParamSpecs() {
		src.specs[s.Name] = s.Shape
	}
	m, err := qwen2vl.LoadFrom(cpuBackend(t), cfg, src, qwen2vl.Options{DType: dtypes.BFloat16})
	if err != nil {
		t.Fatal(err)
	}
	bind, err := m.Bind(nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prompts := []Prompt{randomPrompt(cfg, rng, 7, nil), randomPrompt(cfg, rng, 4, nil)}
	var comps []Completion
	for p := range prompts {
		c := Completion{Request: p}
		for range 6 {
			c.IDs = append(c.IDs, int32(rng.IntN(cfg.ImageTokenID)))
		}
		comps = append(comps, c)
	}
	tb, err := NewTrainBatch(cfg, prompts, comps, nil)
	if err != nil {
		t.Fatal(err)
	}
	prog := execution.NewProgram("headtest", func(v any, in []*Node) []*Node {
		w, rest := bind.Weights(in)
		w.HeadInDType = v.(bool)
		ti, rest := qwen2vl.ReadTextInputs(rest)
		return []*Node{w.TokenLogProbs(ti, rest[0], 100)}
	})
	run := execution.New(m.Backend, execution.Placement{})
	eval := func(inDType bool) []float32 {
		var args []any
		for _, x := range bind.Tensors() {
			args = append(args, x)
		}
		for _, x := range tb.Text.Tensors(nil) {
			args = append(args, x)
		}
		outs, err := run.Run(prog, inDType, append(args, tensors.FromFlatDataAndDimensions(tb.Targets, len(comps), tb.T))...)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](outs[0])
	}
	f32, bf16 := eval(false), eval(true)
	worst := 0.0
	for i := range f32 {
		worst = max(worst, math.Abs(float64(f32[i]-bf16[i])))
	}
	t.Logf("bf16 head vs float32 head: largest log-prob difference %.3g", worst)
	if worst == 0 || worst > 0.1 {
		t.Errorf("bf16 head vs float32 head: largest log-prob difference %g, want in (0, 0.1]", worst)
	}
}
