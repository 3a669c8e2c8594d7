package grpo

import (
	"fmt"
	"slices"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// Layer-by-layer gradients (Setup.Recompute). One compiled program holds
// the activations of a whole micro-batch for its backward pass; here the
// policy's forward and backward run one decoder layer per call instead:
//
//	embed:      text → residual streams s₀ (prompt and tail parts)
//	layer:      (layer i's weights and adapter, text, sᵢ) → sᵢ₊₁, for i = 0…L−1
//	head:       (final norm, LM head, s_L, batch) → loss metrics, ∂loss/∂s_L
//	layer_grad: (layer i, text, sᵢ, ∂loss/∂sᵢ₊₁, accumulators) → ∂loss/∂sᵢ,
//	            accumulators + ∂loss/∂(layer i's A and B), for i = L−1…0
//
// layer_grad recomputes layer i's forward from sᵢ, so only the L+1 residual
// streams stay alive between calls, and the largest program holds one
// layer's activations. Every layer has the same shapes, so layer and
// layer_grad compile once for all layers (the weights are inputs, bound to
// layer 0's names). The cost is one more forward pass of the policy.

// layerSpec is what a layer program bakes in: the layer's parameter
// suffixes (after "model.layers.N.") and its adapted modules' suffixes and
// scales, in input order.
type layerSpec struct {
	params []string
	mods   []string
	scales []float64
}

// key names the spec for program variants.
func (s layerSpec) key() string {
	var b strings.Builder
	b.WriteString(strings.Join(s.params, ","))
	for i, m := range s.mods {
		fmt.Fprintf(&b, ";%s*%g", m, s.scales[i])
	}
	return b.String()
}

// layerVariant selects a layer program's spec (Trainer.layerSpecs).
type layerVariant struct {
	spec string
}

// headVariant is the head program's variant: the loss inputs present.
type headVariant struct {
	v    stepVariant
	head string // the LM head's parameter name
}

// layerWeights maps nodes to layer 0's names per spec and returns the
// Weights view, the adapter nodes in spec order (A, B per module) and the
// remaining nodes.
func layerWeights(cfg qwen2vl.Config, w0 *qwen2vl.Weights, s layerSpec, in []*Node) (*qwen2vl.Weights, []*Node, []*Node) {
	w := &qwen2vl.Weights{Config: cfg, DType: w0.DType, Params: map[string]*Node{}, LoRA: map[string]qwen2vl.LoRANodes{}}
	p := qwen2vl.LayerPrefix(0)
	for k, name := range s.params {
		w.Params[p+name] = in[k]
	}
	in = in[len(s.params):]
	var ab []*Node
	for k, m := range s.mods {
		w.LoRA[p+m] = qwen2vl.LoRANodes{A: in[2*k], B: in[2*k+1], Scale: s.scales[k]}
		ab = append(ab, in[2*k], in[2*k+1])
	}
	return w, ab, in[2*len(s.mods):]
}

// layeredPrograms are the programs of the layer-by-layer gradient.
type layeredPrograms struct {
	embed, layer, layerGrad, head *execution.Program
}

// newLayeredPrograms defines the layer-by-layer programs for objective o;
// specOf returns a layer spec by key and proto gives the model's config and
// dtype.
func newLayeredPrograms(o Objective, cfg qwen2vl.Config, proto *qwen2vl.Weights, specOf func(string) layerSpec) layeredPrograms {
	stream := func(in []*Node) qwen2vl.GroupedStream { return qwen2vl.GroupedStream{Prompt: in[0], Tail: in[1]} }
	return layeredPrograms{
		embed: execution.NewProgram("grpo.embed", func(_ any, in []*Node) []*Node {
			w := &qwen2vl.Weights{Config: cfg, DType: proto.DType, Params: map[string]*Node{"model.embed_tokens.weight": in[0]}}
			gi, _ := qwen2vl.ReadGroupedInputs(in[1:])
			s := w.GroupedEmbed(gi)
			return []*Node{s.Prompt, s.Tail}
		}),
		layer: execution.NewProgram("grpo.layer", func(variant any, in []*Node) []*Node {
			w, _, rest := layerWeights(cfg, proto, specOf(variant.(layerVariant).spec), in)
			gi, rest := qwen2vl.ReadGroupedInputs(rest)
			s := w.GroupedLayer(0, gi, stream(rest))
			return []*Node{s.Prompt, s.Tail}
		}),
		layerGrad: execution.NewProgram("grpo.layer_grad", func(variant any, in []*Node) []*Node {
			w, ab, rest := layerWeights(cfg, proto, specOf(variant.(layerVariant).spec), in)
			gi, rest := qwen2vl.ReadGroupedInputs(rest)
			s0 := stream(rest)
			d := stream(rest[2:])
			acc := rest[4:]
			s := w.GroupedLayer(0, gi, s0)
			obj := Add(ReduceAllSum(Mul(s.Prompt, d.Prompt)), ReduceAllSum(Mul(s.Tail, d.Tail)))
			grads := Gradient(obj, append([]*Node{s0.Prompt, s0.Tail}, ab...)...)
			out := []*Node{grads[0], grads[1]}
			for k, g := range grads[2:] {
				out = append(out, Add(acc[k], g))
			}
			return out
		}),
		head: execution.NewProgram("grpo.head", func(variant any, in []*Node) []*Node {
			hv := variant.(headVariant)
			w := &qwen2vl.Weights{Config: cfg, DType: proto.DType, Params: map[string]*Node{"model.norm.weight": in[0], hv.head: in[1]},
				HeadInDType: hv.v.headDType}
			tail := in[2]
			b, _ := readBatch(hv.v, in[3:])
			metrics := policyLoss(o, w, func(w *qwen2vl.Weights, targets *Node) *Node {
				return w.ChosenLogProbs(w.FinalNorm(tail), targets, chunkOr(hv.v.chunk))
			}, b)
			return append(metrics, Gradient(metrics[0], tail)[0])
		}),
	}
}

// chunkOr is the vocabulary chunk c, or 8192 when c ≤ 0.
func chunkOr(c int) int {
	if c <= 0 {
		return 8192
	}
	return c
}

// layerInputs returns decoder layer i's spec (registered in t.layerSpecs)
// and its call arguments: the layer's base weights, then each adapted
// module's A and B, and the accumulator indices (Binding order) of those
// modules' A and B.
func (t *Trainer) layerInputs(i int) (string, []any, []int) {
	p := qwen2vl.LayerPrefix(i)
	var s layerSpec
	for _, name := range t.model.ParamNames() {
		if suffix, ok := strings.CutPrefix(name, p); ok {
			s.params = append(s.params, suffix)
		}
	}
	slices.Sort(s.params)
	modIndex := map[string]int{}
	for k, name := range t.modules {
		if suffix, ok := strings.CutPrefix(name, p); ok {
			s.mods = append(s.mods, suffix)
			modIndex[suffix] = k
		}
	}
	slices.Sort(s.mods)
	var args []any
	for _, name := range s.params {
		args = append(args, t.model.Param(p+name))
	}
	var accIdx []int
	for _, m := range s.mods {
		mod := t.lora.Modules[p+m]
		s.scales = append(s.scales, mod.Scale)
		args = append(args, mod.A, mod.B)
		accIdx = append(accIdx, 2*modIndex[m], 2*modIndex[m]+1)
	}
	key := s.key()
	if _, ok := t.layerSpecs[key]; !ok {
		t.layerSpecs[key] = s
	}
	return key, args, accIdx
}

// layeredGrads runs one micro-batch's loss and adapter gradients layer by
// layer (text: the grouped text inputs; batch: the inputs after them, as the
// grads program takes them), adding the gradients into acc (Binding order,
// replaced in place). It returns the loss metrics and the bytes of the
// residual streams kept between the forward and backward passes.
func (t *Trainer) layeredGrads(v stepVariant, text []*tensors.Tensor, batch []*tensors.Tensor, acc []*tensors.Tensor) ([]*tensors.Tensor, int64, error) {
	textArgs := make([]any, len(text))
	for i, x := range text {
		textArgs[i] = x
	}
	run := func(prog *execution.Program, variant any, args ...any) ([]*tensors.Tensor, error) {
		outs, err := t.run.Run(prog, variant, args...)
		if err != nil {
			return nil, fmt.Errorf("grpo: layer-by-layer gradients: %w", err)
		}
		return outs, nil
	}
	outs, err := run(t.layered.embed, nil, append([]any{t.model.Param("model.embed_tokens.weight")}, textArgs...)...)
	if err != nil {
		return nil, 0, err
	}
	layers := t.model.Config.Text.NumLayers
	streams := make([][]*tensors.Tensor, layers+1)
	streams[0] = outs
	var kept int64
	for _, x := range outs {
		kept += int64(x.Shape().Memory())
	}
	free := func(ts []*tensors.Tensor) {
		for _, x := range ts {
			x.FinalizeAll()
		}
	}
	for i := range layers {
		key, w, _ := t.layerInputs(i)
		args := append(append(w, textArgs...), streams[i][0], streams[i][1])
		if streams[i+1], err = run(t.layered.layer, layerVariant{key}, args...); err != nil {
			return nil, 0, err
		}
		if i+1 < layers {
			kept += int64(streams[i+1][0].Shape().Memory() + streams[i+1][1].Shape().Memory())
		}
	}
	head := "lm_head.weight"
	if t.model.Config.Text.TieWordEmbeddings {
		head = "model.embed_tokens.weight"
	}
	hargs := []any{t.model.Param("model.norm.weight"), t.model.Param(head), streams[layers][1]}
	for _, x := range batch {
		hargs = append(hargs, x)
	}
	houts, err := run(t.layered.head, headVariant{v: v, head: head}, hargs...)
	if err != nil {
		return nil, 0, err
	}
	free(streams[layers])
	metrics := houts[:lossMetrics]
	// The last layer's prompt output feeds nothing: its gradient is zero
	// (made on the device: a host tensor would be zeroed and copied there).
	zero, err := t.run.Zeros(streams[layers-1][0].Shape())
	if err != nil {
		return nil, 0, fmt.Errorf("grpo: layer-by-layer gradients: %w", err)
	}
	d := []*tensors.Tensor{zero, houts[lossMetrics]}
	for i := layers - 1; i >= 0; i-- {
		key, w, accIdx := t.layerInputs(i)
		args := append(append(w, textArgs...), streams[i][0], streams[i][1], execution.Donate(d[0]), execution.Donate(d[1]))
		for _, k := range accIdx {
			args = append(args, execution.Donate(acc[k]))
		}
		outs, err := run(t.layered.layerGrad, layerVariant{key}, args...)
		if err != nil {
			return nil, 0, err
		}
		free(streams[i])
		d = outs[:2]
		for j, k := range accIdx {
			acc[k] = outs[2+j]
		}
	}
	free(d)
	return metrics, kept, nil
}
