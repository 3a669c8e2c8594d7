package grpo

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// refAdamW is torch.optim.AdamW's update written from its formulas in float64.
type refAdamW struct {
	cfg     AdamW
	p, m, v [][]float64
	step    int
	skipped int
}

func (r *refAdamW) update(lr float64, grads [][]float64) {
	var ss float64
	for _, g := range grads {
		var s float64
		for _, x := range g {
			s += x * x
		}
		ss += s
	}
	norm := math.Sqrt(ss)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		r.skipped++
		return
	}
	coef := 1.0
	if r.cfg.MaxGradNorm > 0 {
		coef = math.Min(1, r.cfg.MaxGradNorm/(norm+1e-6))
	}
	r.step++
	bc1 := 1 - math.Pow(r.cfg.Beta1, float64(r.step))
	bc2 := 1 - math.Pow(r.cfg.Beta2, float64(r.step))
	for i := range r.p {
		for k := range r.p[i] {
			g := grads[i][k] * coef
			r.p[i][k] *= 1 - lr*r.cfg.WeightDecay
			r.m[i][k] = r.cfg.Beta1*r.m[i][k] + (1-r.cfg.Beta1)*g
			r.v[i][k] = r.cfg.Beta2*r.v[i][k] + (1-r.cfg.Beta2)*g*g
			denom := math.Sqrt(r.v[i][k])/math.Sqrt(bc2) + r.cfg.Epsilon
			r.p[i][k] -= lr / bc1 * r.m[i][k] / denom
		}
	}
}

// AdamW.Update over several steps (weight decay, clipping, a NaN and an Inf
// gradient) against the float64 reference of PyTorch's formulas.
func TestAdamWUpdate(t *testing.T) {
	shapes := [][]int{{2, 3}, {4}}
	names := []string{"a", "b"}
	for _, tc := range []struct {
		name string
		cfg  AdamW
	}{
		{"defaults", DefaultAdamW()},
		{"no decay, clipped", AdamW{Beta1: 0.8, Beta2: 0.99, Epsilon: 1e-6, MaxGradNorm: 0.5}},
		{"decay and loose clip", AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.1, MaxGradNorm: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			state, err := NewOptimizerState(names, shapes)
			if err != nil {
				t.Fatal(err)
			}
			ref := &refAdamW{cfg: tc.cfg}
			params := make([][]float32, len(shapes))
			for i, p := range state.Params {
				params[i] = make([]float32, len(p.M))
				ref.p = append(ref.p, make([]float64, len(p.M)))
				ref.m = append(ref.m, make([]float64, len(p.M)))
				ref.v = append(ref.v, make([]float64, len(p.M)))
				for k := range params[i] {
					params[i][k] = float32(rng.NormFloat64())
					ref.p[i][k] = float64(params[i][k])
				}
			}
			np := len(shapes)
			exec := MustNewExec(cpu(t), func(in []*Node) []*Node {
				lr, ps, gs := in[0], in[1:1+np], in[1+np:1+2*np]
				st := AdamWStateFromNodes(in[1+2*np:], np)
				res := tc.cfg.Update(lr, ps, gs, st)
				return append(append(res.Params, res.State.Nodes()...), res.GradNorm, res.Applied)
			})
			lrs := []float64{1e-2, 5e-3, 5e-3, 2e-3, 1e-3, 1e-3}
			for step, lr := range lrs {
				grads := make([][]float32, np)
				g64 := make([][]float64, np)
				for i := range grads {
					grads[i] = make([]float32, len(params[i]))
					g64[i] = make([]float64, len(params[i]))
					for k := range grads[i] {
						grads[i][k] = float32(rng.NormFloat64() * 0.3)
					}
				}
				switch step {
				case 2:
					grads[1][3] = float32(math.NaN())
				case 4:
					grads[0][0] = float32(math.Inf(-1))
				}
				for i := range grads {
					for k := range grads[i] {
						g64[i][k] = float64(grads[i][k])
					}
				}
				args := []any{float32(lr)}
				for i := range params {
					args = append(args, tensors.FromFlatDataAndDimensions(params[i], shapes[i]...))
				}
				for i := range grads {
					args = append(args, tensors.FromFlatDataAndDimensions(grads[i], shapes[i]...))
				}
				for _, st := range state.Tensors() {
					args = append(args, st)
				}
				out, err := exec.Exec(args...)
				if err != nil {
					t.Fatal(err)
				}
				for i := range params {
					params[i] = tensors.MustCopyFlatData[float32](out[i])
				}
				if err := state.SetTensors(out[np : np+2+2*np]); err != nil {
					t.Fatal(err)
				}
				applied := tensors.ToScalar[bool](out[len(out)-1])
				ref.update(lr, g64)
				wantApplied := step != 2 && step != 4
				if applied != wantApplied || state.Step != int64(ref.step) || state.Skipped != int64(ref.skipped) {
					t.Fatalf("step %d: applied %v step %d skipped %d; want %v, %d, %d", step, applied, state.Step, state.Skipped, wantApplied, ref.step, ref.skipped)
				}
				if wantApplied {
					var ss float64
					for _, g := range g64 {
						for _, x := range g {
							ss += x * x
						}
					}
					if norm := float64(tensors.ToScalar[float32](out[len(out)-2])); math.Abs(norm-math.Sqrt(ss)) > 1e-6*math.Sqrt(ss) {
						t.Errorf("step %d: grad norm %v, want %v", step, norm, math.Sqrt(ss))
					}
				}
				for i := range params {
					for k := range params[i] {
						check := func(what string, got float32, want float64) {
							if math.Abs(float64(got)-want) > 1e-5*math.Max(math.Abs(want), 1e-3) {
								t.Fatalf("step %d: %s[%d][%d] = %.9g, want %.9g", step, what, i, k, got, want)
							}
						}
						check("param", params[i][k], ref.p[i][k])
						check("m", state.Params[i].M[k], ref.m[i][k])
						check("v", state.Params[i].V[k], ref.v[i][k])
					}
				}
			}
			if state.Step != 4 || state.Skipped != 2 {
				t.Errorf("after 6 calls: step %d skipped %d, want 4 and 2", state.Step, state.Skipped)
			}
		})
	}
}

// One AdamW step by hand: the first step moves every parameter by about lr
// against the sign of its gradient (m̂/√v̂ = g/|g|), whatever the gradient's size.
func TestAdamWFirstStepIsSignDescent(t *testing.T) {
	cfg := AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}
	exec := MustNewExec(cpu(t), func(lr, p, g *Node) []*Node {
		st := AdamWState{Step: Const(p.Graph(), int64(0)), Skipped: Const(p.Graph(), int64(0)), M: []*Node{ZerosLike(p)}, V: []*Node{ZerosLike(p)}}
		res := cfg.Update(lr, []*Node{p}, []*Node{g}, st)
		return []*Node{res.Params[0]}
	})
	out := exec.MustExec(float32(0.01), []float32{1, 1, 1}, []float32{3, -1e-3, 100})
	got := tensors.MustCopyFlatData[float32](out[0])
	for i, want := range []float64{0.99, 1.01, 0.99} {
		if math.Abs(float64(got[i])-want) > 1e-5 {
			t.Errorf("param %d = %v, want %v", i, got[i], want)
		}
	}
}

func TestAdamWValidateAndMismatch(t *testing.T) {
	for _, c := range []struct {
		mut  func(*AdamW)
		want string
	}{
		{func(a *AdamW) { a.Beta1 = 1 }, "adam_beta1"},
		{func(a *AdamW) { a.Beta2 = -0.1 }, "adam_beta2"},
		{func(a *AdamW) { a.Epsilon = 0 }, "adam_epsilon"},
		{func(a *AdamW) { a.WeightDecay = math.NaN() }, "weight_decay"},
		{func(a *AdamW) { a.MaxGradNorm = -1 }, "max_grad_norm"},
	} {
		a := DefaultAdamW()
		c.mut(&a)
		if err := a.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want an error naming %s", err, c.want)
		}
	}
	// A gradient shaped unlike its parameter is an error from Exec, not a crash.
	exec := MustNewExec(cpu(t), func(lr, p, g *Node) *Node {
		st := AdamWState{Step: Const(p.Graph(), int64(0)), Skipped: Const(p.Graph(), int64(0)), M: []*Node{ZerosLike(p)}, V: []*Node{ZerosLike(p)}}
		return DefaultAdamW().Update(lr, []*Node{p}, []*Node{g}, st).Params[0]
	})
	if _, err := exec.Exec(float32(1e-3), []float32{1, 2}, []float32{1, 2, 3}); err == nil || !strings.Contains(err.Error(), "gradient 0") {
		t.Errorf("mismatched gradient: err %v, want one naming gradient 0", err)
	}
}
