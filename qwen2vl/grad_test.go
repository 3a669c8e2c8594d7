package qwen2vl

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
)

// TestLoRAGradient checks on the CPU backend that the gradient of a
// log-probability loss reaches the adapter weights (no Slice/Rsqrt on the
// path) and matches central finite differences on a few entries.
func TestLoRAGradient(t *testing.T) {
	m, ref := loadTiny(t)
	ad, err := lora.Load(shared.Fixture(t, "qwen2vl-tiny", "lora_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	b := ref.batch(t)
	// Targets: the next token (the last position predicts token 0).
	targets := make([][]int32, len(b.InputIDs))
	for i, row := range b.InputIDs {
		targets[i] = append(append([]int32(nil), row[1:]...), 0)
	}
	const module = "model.layers.0.self_attn.q_proj"
	loss := func(l *LoRA) (float64, []float32, []float32) {
		p, err := m.prepare(b, l)
		if err != nil {
			t.Fatal(err)
		}
		flat := make([]int32, 0)
		for _, r := range targets {
			flat = append(flat, r...)
		}
		outs, err := m.run("gradtest", l, func(w *Weights, in []*Node) []*Node {
			h, _ := w.Decoder(w.promptInputs(in))
			// Vocabulary chunks of 300 exercise the streaming log-sum-exp.
			lp := w.ChosenLogProbs(h, in[numPromptInputs], 300)
			valid := ConvertDType(in[numPromptInputs+1], lp.DType())
			total := Neg(ReduceAllSum(Mul(lp, valid)))
			grads := Gradient(total, w.LoRA[module].A, w.LoRA[module].B)
			return []*Node{total, grads[0], grads[1]}
		}, append(p.args(), tensors.FromFlatDataAndDimensions(flat, p.b, p.l), tensors.FromFlatDataAndDimensions(flatMask(b.AttentionMask), p.b, p.l))...)
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

func flatMask(mask [][]int32) []float32 {
	var out []float32
	for _, r := range mask {
		for _, v := range r {
			out = append(out, float32(v))
		}
	}
	return out
}
