package engine

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TestLoRAGradient checks on the CPU backend that the gradient of a
// log-probability loss built from the trainer's graph API (Model.Bind,
// PrepareText, ReadTextInputs, Weights.TokenLogProbs) reaches the adapter
// weights (no Slice/Rsqrt on the path) and matches central finite
// differences on a few entries.
func TestLoRAGradient(t *testing.T) {
	m, ref := loadTiny(t)
	ad, err := lora.Load(shared.Fixture(t, "qwen2vl-tiny", "lora_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	b := ref.batch(t)
	tb, err := qwen2vl.PrepareText(m.Config, b.InputIDs, b.AttentionMask, b.Grids)
	if err != nil {
		t.Fatal(err)
	}
	feats, err := m.ImageFeatures(b.PixelValues, b.Grids)
	if err != nil {
		t.Fatal(err)
	}
	// Targets: every token after the first, weighted where it and the
	// position predicting it are tokens.
	bs, l := len(b.InputIDs), len(b.InputIDs[0])
	var targets []int32
	var weights []float32
	for i, row := range b.InputIDs {
		targets = append(targets, row[1:]...)
		for j := 1; j < l; j++ {
			weights = append(weights, float32(b.AttentionMask[i][j]*b.AttentionMask[i][j-1]))
		}
	}
	const module = "model.layers.0.self_attn.q_proj"
	run := execution.New(m.Model.Backend, execution.Placement{})
	// The program is defined once: any binding of the same layout (adapter
	// modules and scales) maps its input nodes to the same Weights, so it
	// compiles once and runs with each adapter's tensors.
	var layout *qwen2vl.Binding
	prog := execution.NewProgram("gradtest", func(_ any, in []*Node) []*Node {
		w, rest := layout.Weights(in)
		ti, rest := qwen2vl.ReadTextInputs(rest)
		// Vocabulary chunks of 300 exercise the streaming log-sum-exp.
		lp := w.TokenLogProbs(ti, rest[0], 300)
		total := Neg(ReduceAllSum(Mul(lp, rest[1])))
		grads := Gradient(total, w.LoRA[module].A, w.LoRA[module].B)
		return []*Node{total, grads[0], grads[1]}
	})
	loss := func(lr *qwen2vl.LoRA) (float64, []float32, []float32) {
		bind, err := m.Bind(lr)
		if err != nil {
			t.Fatal(err)
		}
		if layout == nil {
			layout = bind
		}
		var args []any
		for _, x := range bind.Tensors() {
			args = append(args, x)
		}
		for _, x := range tb.Tensors(feats) {
			args = append(args, x)
		}
		args = append(args, tensors.FromFlatDataAndDimensions(targets, bs, l-1), tensors.FromFlatDataAndDimensions(weights, bs, l-1))
		outs, err := run.Run(prog, bind.Layout(), args...)
		if err != nil {
			t.Fatal(err)
		}
		ga, _ := tensors.CopyFlatData[float32](outs[1])
		gb, _ := tensors.CopyFlatData[float32](outs[2])
		return float64(tensors.ToScalar[float32](outs[0])), ga, gb
	}
	base, err := m.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	_, ga, gb := loss(base)
	norm := 0.0
	for _, g := range append(append([]float32(nil), ga...), gb...) {
		norm += float64(g) * float64(g)
	}
	if norm == 0 {
		t.Fatal("the gradient with respect to the adapter is zero")
	}
	// Finite differences on the largest entries of dA and dB.
	for _, which := range []string{"A", "B"} {
		g := ga
		if which == "B" {
			g = gb
		}
		best := 0
		for i := range g {
			if math.Abs(float64(g[i])) > math.Abs(float64(g[best])) {
				best = i
			}
		}
		const eps = 2e-3
		var f [2]float64
		for k, sign := range []float64{1, -1} {
			mod := *ad.Modules[module]
			mod.A = append([]float32(nil), mod.A...)
			mod.B = append([]float32(nil), mod.B...)
			if which == "A" {
				mod.A[best] += float32(sign * eps)
			} else {
				mod.B[best] += float32(sign * eps)
			}
			ad2 := &lora.Adapter{Config: ad.Config, Modules: map[string]*lora.Module{}}
			for n, v := range ad.Modules {
				ad2.Modules[n] = v
			}
			ad2.Modules[module] = &mod
			l2, err := m.LoRAFromAdapter(ad2)
			if err != nil {
				t.Fatal(err)
			}
			f[k], _, _ = loss(l2)
		}
		fd := (f[0] - f[1]) / (2 * eps)
		an := float64(g[best])
		t.Logf("d loss / d %s[%d]: autodiff %.6g, finite difference %.6g", which, best, an, fd)
		if math.Abs(fd-an) > 2e-2*math.Abs(an)+1e-3 {
			t.Errorf("d loss / d %s[%d]: autodiff %g vs finite difference %g", which, best, an, fd)
		}
	}
}
