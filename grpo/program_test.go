package grpo

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The pieces wired as the loop will wire them: one program computes
// per-token log-probs of a tiny softmax policy, the GRPO loss, its gradient
// with respect to the parameters, and the AdamW update. μ = 8 updates on one
// rollout batch (logp_old fixed) must raise the probability of the rewarded
// token, stop at the clipping range, and never touch the skipped counter.
func TestLossGradientUpdateInOneProgram(t *testing.T) {
	const n, tt, vocab, hidden = 8, 3, 5, 4
	rng := rand.New(rand.NewPCG(9, 9))
	rnd := func(k int, s float64) []float32 {
		out := make([]float32, k)
		for i := range out {
			out[i] = float32(rng.NormFloat64() * s)
		}
		return out
	}
	w := rnd(vocab*hidden, 0.3)
	h := rnd(n*tt*hidden, 1)
	// Completions: the first token of half of each group is 2, which the reward pays for.
	tokens := make([]int32, n*tt)
	rewards := make([]float64, n)
	for i := range n {
		for j := range tt {
			tokens[i*tt+j] = int32(rng.IntN(vocab))
		}
		if i%2 == 0 {
			tokens[i*tt] = 2
			rewards[i] = 1
		} else if tokens[i*tt] == 2 {
			tokens[i*tt] = 3
		}
	}
	adv, err := Advantages(rewards, 4, ScaleGroup)
	if err != nil {
		t.Fatal(err)
	}
	mask := make([]float32, n*tt)
	for i := range mask {
		mask[i] = 1
	}
	obj := DefaultObjective()
	obj.Beta, obj.EpsilonLow, obj.EpsilonHigh, obj.MaxCompletionLength = 0.01, 0.2, 0.2, tt
	opt := DefaultAdamW()
	opt.MaxGradNorm = 1

	logps := func(w, h, tok *Node) *Node {
		logits := DotGeneral(h, []int{-1}, nil, w, []int{1}, nil) // [n, tt, vocab]
		return ReduceSum(Mul(LogSoftmax(logits, -1), OneHot(tok, vocab, dtypes.Float32)), -1)
	}
	policyLogps := MustNewExec(cpu(t), logps)
	step := MustNewExec(cpu(t), func(in []*Node) []*Node {
		lr, w, h, tok, old, ref, m, a, keep := in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8]
		state := AdamWStateFromNodes(in[9:], 1)
		out := Loss(obj, LossInputs{NewLogps: logps(w, h, tok), OldLogps: old, RefLogps: ref, Mask: m, Advantages: a, Keep: keep})
		grad := Gradient(out.Loss, w)
		res := opt.Update(lr, []*Node{w}, grad, state)
		return append(append(res.Params, res.State.Nodes()...), out.Loss, out.ClipHigh, res.Applied)
	})
	hT := tensors.FromFlatDataAndDimensions(h, n, tt, hidden)
	tokT := tensors.FromFlatDataAndDimensions(tokens, n, tt)
	logp := func(w []float32) []float32 {
		return tensors.MustCopyFlatData[float32](policyLogps.MustExec(tensors.FromFlatDataAndDimensions(w, vocab, hidden), hT, tokT)[0])
	}
	old := logp(w)
	state, err := NewOptimizerState([]string{"w"}, [][]int{{vocab, hidden}})
	if err != nil {
		t.Fatal(err)
	}
	var clipHigh, firstLoss, lastLoss float32
	for it := range 8 {
		args := []any{float32(0.05), tensors.FromFlatDataAndDimensions(w, vocab, hidden), hT, tokT,
			tensors.FromFlatDataAndDimensions(old, n, tt), tensors.FromFlatDataAndDimensions(old, n, tt),
			tensors.FromFlatDataAndDimensions(mask, n, tt), adv.Advantages, adv.Keep}
		for _, s := range state.Tensors() {
			args = append(args, s)
		}
		out, err := step.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		w = tensors.MustCopyFlatData[float32](out[0])
		if err := state.SetTensors(out[1:5]); err != nil {
			t.Fatal(err)
		}
		if !tensors.ToScalar[bool](out[7]) {
			t.Fatal("a finite step was skipped")
		}
		clipHigh = tensors.ToScalar[float32](out[6])
		lastLoss = tensors.ToScalar[float32](out[5])
		if it == 0 {
			firstLoss = lastLoss
		}
	}
	if state.Step != 8 || state.Skipped != 0 {
		t.Errorf("step %d skipped %d, want 8 and 0", state.Step, state.Skipped)
	}
	// The advantage-weighted log-likelihood of the batch rose: rewarded
	// completions became more likely relative to the others.
	now := logp(w)
	var gain float64
	for i := range n {
		for j := range tt {
			gain += float64(adv.Advantages[i]) * float64(now[i*tt+j]-old[i*tt+j])
		}
	}
	t.Logf("Σ A·Δlogp = %.4f, loss %.4f → %.4f, clip_high %.3f", gain, firstLoss, lastLoss, clipHigh)
	if gain <= 0.1 {
		t.Errorf("Σ A·Δlogp = %v; the update did not favour the rewarded completions", gain)
	}
	if !(lastLoss < firstLoss) {
		t.Errorf("loss went from %v to %v", firstLoss, lastLoss)
	}
	if clipHigh == 0 {
		t.Errorf("after 8 updates on one batch no ratio reached the clipping range (clip_high 0)")
	}
}
