package grpo

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/mmft-go/mmft/execution"
	_ "github.com/mmft-go/mmft/internal/dotgrad" // gradients of matrix products as matrix products
	"github.com/mmft-go/mmft/qwen2vl"
)

// stepVariant is what the training programs bake in: the adapter layout
// (module names and scales), which optional inputs are present, and the
// vocabulary chunk of the log-prob computation.
type stepVariant struct {
	layout        string
	old, ref, eng bool
	// grouped reads the shared-prompt layout (qwen2vl.GroupedText) instead
	// of full sequences.
	grouped bool
	// headDType computes the log-prob head in the model dtype
	// (qwen2vl.Weights.HeadInDType).
	headDType      bool
	chunk          int
	numItems       bool
	accumulateOnly bool
	// dropout is the LoRA dropout probability; > 0 adds an RNG state input
	// (last) and its next value as the last output.
	dropout float64
}

// withDropout sets w's LoRA dropout from the RNG state rng (nil or p = 0:
// none) and returns a function giving the state after every draw.
func withDropout(w *qwen2vl.Weights, p float64, rng *Node) func() *Node {
	if p <= 0 || rng == nil {
		return func() *Node { return rng }
	}
	state := rng
	w.LoRAInput = func(_ string, x *Node) *Node {
		var u *Node
		state, u = RandomUniform(state, shapes.Make(dtypes.Float32, x.Shape().Dimensions...))
		keep := GreaterOrEqual(u, Scalar(x.Graph(), dtypes.Float32, p))
		x32 := ConvertDType(x, dtypes.Float32)
		return Where(keep, MulScalar(x32, 1/(1-p)), ZerosLike(x32))
	}
	return func() *Node { return state }
}

// lossMetrics is the number of scalar metrics the programs return after
// their tensors: loss, KL, clip low, clip high, ratio, IS weight, tokens.
const lossMetrics = 7

// batchNodes are a training micro-batch's graph inputs after the text inputs.
type batchNodes struct {
	targets, mask, adv, keep, trunc *Node
	old, ref, eng, numItems, scale  *Node
}

// readBatch reads the batch inputs in the order trainArgs gives them.
func readBatch(v stepVariant, in []*Node) (batchNodes, []*Node) {
	b := batchNodes{targets: in[0], mask: in[1], adv: in[2], keep: in[3], trunc: in[4], scale: in[5]}
	in = in[6:]
	take := func(on bool) *Node {
		if !on {
			return nil
		}
		n := in[0]
		in = in[1:]
		return n
	}
	b.old, b.ref, b.eng, b.numItems = take(v.old), take(v.ref), take(v.eng), take(v.numItems)
	return b, in
}

// textLogps reads the text inputs of variant v's layout (full sequences or
// the shared-prompt layout) and returns a function building the completion
// tokens' log-probs for targets, and the nodes after the text inputs.
func textLogps(v stepVariant, in []*Node) (func(w *qwen2vl.Weights, targets *Node) *Node, []*Node) {
	if v.grouped {
		gi, rest := qwen2vl.ReadGroupedInputs(in)
		return func(w *qwen2vl.Weights, targets *Node) *Node {
			w.HeadInDType = v.headDType
			return w.GroupedTokenLogProbs(gi, targets, v.chunk)
		}, rest
	}
	ti, rest := qwen2vl.ReadTextInputs(in)
	return func(w *qwen2vl.Weights, targets *Node) *Node {
		w.HeadInDType = v.headDType
		return w.TokenLogProbs(ti, targets, v.chunk)
	}, rest
}

// policyLoss builds the GRPO loss of a micro-batch and its metrics from the
// policy's log-probs of the completion tokens.
func policyLoss(o Objective, w *qwen2vl.Weights, logpsOf func(*qwen2vl.Weights, *Node) *Node, b batchNodes) []*Node {
	logps := logpsOf(w, b.targets)
	out := Loss(o, LossInputs{NewLogps: logps, OldLogps: b.old, RefLogps: b.ref, EngineLogps: b.eng, Mask: b.mask,
		Advantages: b.adv, Keep: b.keep, Truncated: b.trunc, NumItems: b.numItems})
	loss := Mul(out.Loss, ConvertDType(b.scale, dtypes.Float32))
	return []*Node{loss, out.KL, out.ClipLow, out.ClipHigh, out.Ratio, out.ISWeight, out.Tokens}
}

// adapterNodes lists the adapter's A and B nodes in Binding order.
func adapterNodes(w *qwen2vl.Weights, modules []string) []*Node {
	out := make([]*Node, 0, 2*len(modules))
	for _, m := range modules {
		out = append(out, w.LoRA[m].A, w.LoRA[m].B)
	}
	return out
}

// trainPrograms are the compiled computations of a trainer.
type trainPrograms struct {
	// logps: [binding][text][targets] → per-token log-probs [N, C].
	logps *execution.Program
	// step: [binding][opt state][lr][text][batch] → new A/B, new state,
	// metrics…, grad norm, applied. One program: loss, gradient and AdamW.
	step *execution.Program
	// grads: [binding][text][batch][accumulators] → accumulators + gradients, metrics…
	grads *execution.Program
	// apply: [A/B][opt state][grads][lr] → new A/B, new state, grad norm,
	// applied, zeroed accumulators (the grads' buffers, for the next step).
	apply *execution.Program
}

// newTrainPrograms defines the programs for objective o, optimizer opt and
// the adapter's modules (sorted) with their binding.
func newTrainPrograms(o Objective, opt AdamW, modules []string, bindingOf func(layout string) *qwen2vl.Binding) trainPrograms {
	nParams := 2 * len(modules)
	return trainPrograms{
		logps: execution.NewProgram("grpo.logps", func(variant any, in []*Node) []*Node {
			v := variant.(stepVariant)
			w, rest := bindingOf(v.layout).Weights(in)
			logps, rest := textLogps(v, rest)
			return []*Node{logps(w, rest[0])}
		}),
		step: execution.NewProgram("grpo.step", func(variant any, in []*Node) []*Node {
			v := variant.(stepVariant)
			w, rest := bindingOf(v.layout).Weights(in)
			state := AdamWStateFromNodes(rest[:2+2*nParams], nParams)
			lr := rest[2+2*nParams]
			logps, rest := textLogps(v, rest[3+2*nParams:])
			b, rest := readBatch(v, rest)
			var rng *Node
			if v.dropout > 0 {
				rng = rest[0]
			}
			next := withDropout(w, v.dropout, rng)
			metrics := policyLoss(o, w, logps, b)
			params := adapterNodes(w, modules)
			grads := Gradient(metrics[0], params...)
			res := opt.Update(lr, params, grads, state)
			out := append(append([]*Node{}, res.Params...), res.State.Nodes()...)
			out = append(out, metrics...)
			out = append(out, res.GradNorm, res.Applied)
			if rng != nil {
				out = append(out, next())
			}
			return out
		}),
		grads: execution.NewProgram("grpo.grads", func(variant any, in []*Node) []*Node {
			v := variant.(stepVariant)
			w, rest := bindingOf(v.layout).Weights(in)
			logps, rest := textLogps(v, rest)
			b, rest := readBatch(v, rest)
			acc := rest[:nParams]
			var rng *Node
			if v.dropout > 0 {
				rng = rest[nParams]
			}
			next := withDropout(w, v.dropout, rng)
			metrics := policyLoss(o, w, logps, b)
			grads := Gradient(metrics[0], adapterNodes(w, modules)...)
			out := make([]*Node, 0, nParams+len(metrics)+1)
			for i, g := range grads {
				out = append(out, Add(acc[i], g))
			}
			out = append(out, metrics...)
			if rng != nil {
				out = append(out, next())
			}
			return out
		}),
		apply: execution.NewProgram("grpo.apply", func(_ any, in []*Node) []*Node {
			params := in[:nParams]
			state := AdamWStateFromNodes(in[nParams:3*nParams+2], nParams)
			grads := in[3*nParams+2 : 4*nParams+2]
			lr := in[4*nParams+2]
			res := opt.Update(lr, params, grads, state)
			out := append(append([]*Node{}, res.Params...), res.State.Nodes()...)
			out = append(out, res.GradNorm, res.Applied)
			for _, g := range grads {
				out = append(out, ZerosLike(g))
			}
			return out
		}),
	}
}
