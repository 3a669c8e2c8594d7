package grpo

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// AdamW holds the optimizer's hyper-parameters (the learning rate comes from
// the Schedule, fed to Update as a node). YAML names follow TRL/transformers.
type AdamW struct {
	// Beta1 and Beta2 are the decay rates of the first and second moments.
	Beta1 float64 `yaml:"adam_beta1"`
	Beta2 float64 `yaml:"adam_beta2"`
	// Epsilon is added to the bias-corrected √v.
	Epsilon float64 `yaml:"adam_epsilon"`
	// WeightDecay is the decoupled weight decay: each update first scales the
	// parameters by 1 − lr·WeightDecay (seed: --weight_decay).
	WeightDecay float64 `yaml:"weight_decay"`
	// MaxGradNorm clips the gradients to this global L2 norm before the
	// update, as torch.nn.utils.clip_grad_norm_; 0 turns clipping off.
	MaxGradNorm float64 `yaml:"max_grad_norm"`
}

// DefaultAdamW returns torch.optim.AdamW's defaults (β = 0.9, 0.999,
// ε = 1e-8, weight decay 0.01) with no gradient clipping.
func DefaultAdamW() AdamW {
	return AdamW{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 0.01}
}

// Validate checks the hyper-parameters and returns one error naming the first bad field.
func (a *AdamW) Validate() error {
	switch {
	case !finite(a.Beta1) || a.Beta1 < 0 || a.Beta1 >= 1:
		return fmt.Errorf("grpo: adam_beta1 %v: must be in [0, 1), e.g. 0.9", a.Beta1)
	case !finite(a.Beta2) || a.Beta2 < 0 || a.Beta2 >= 1:
		return fmt.Errorf("grpo: adam_beta2 %v: must be in [0, 1), e.g. 0.999", a.Beta2)
	case !finite(a.Epsilon) || a.Epsilon <= 0:
		return fmt.Errorf("grpo: adam_epsilon %v: must be a positive number, e.g. 1e-8", a.Epsilon)
	case !finite(a.WeightDecay) || a.WeightDecay < 0:
		return fmt.Errorf("grpo: weight_decay (--weight_decay) %v: must be a number ≥ 0", a.WeightDecay)
	case !finite(a.MaxGradNorm) || a.MaxGradNorm < 0:
		return fmt.Errorf("grpo: max_grad_norm %v: must be a number ≥ 0 (0 turns clipping off)", a.MaxGradNorm)
	}
	return nil
}

// AdamWState is the optimizer state inside a graph.
type AdamWState struct {
	// Step is an int64 scalar: the number of updates applied (PyTorch's step).
	Step *Node
	// Skipped is an int64 scalar: the number of updates the NaN/Inf guard skipped.
	Skipped *Node
	// M and V are the first and second moments, float32, one per parameter and shaped like it.
	M, V []*Node
}

// Nodes returns the state flattened as [Step, Skipped, M..., V...], the order
// of OptimizerState.Tensors, for graph functions over []*Node.
func (s AdamWState) Nodes() []*Node {
	return slices.Concat([]*Node{s.Step, s.Skipped}, s.M, s.V)
}

// AdamWStateFromNodes splits nodes flattened as by Nodes for numParams
// parameters; it panics when the count is wrong.
func AdamWStateFromNodes(nodes []*Node, numParams int) AdamWState {
	if len(nodes) != 2+2*numParams {
		panic(fmt.Errorf("grpo: AdamWStateFromNodes: %d nodes; want 2 + 2·%d (step, skipped, m…, v…)", len(nodes), numParams))
	}
	return AdamWState{Step: nodes[0], Skipped: nodes[1], M: nodes[2 : 2+numParams], V: nodes[2+numParams:]}
}

// AdamWResult is what Update returns.
type AdamWResult struct {
	// Params are the updated parameters.
	Params []*Node
	// State is the updated state.
	State AdamWState
	// GradNorm is the float32 global L2 norm of the gradients before clipping.
	GradNorm *Node
	// Applied is a bool scalar: false when the gradients were not finite, in
	// which case Params and State (M, V, Step) are the inputs unchanged and
	// Skipped is one more.
	Applied *Node
}

// Update applies one AdamW step in the graph, with PyTorch's semantics
// (torch.optim.AdamW, single-tensor form): with t = step + 1,
//
//	p ← p·(1 − lr·wd)
//	m ← m + (1 − β1)·(g − m)
//	v ← β2·v + (1 − β2)·g²
//	p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
//
// (bias corrections computed in float64). Before it, when MaxGradNorm > 0,
// the gradients are scaled by min(1, MaxGradNorm / (‖g‖ + 1e-6)) with ‖g‖ the
// global norm (torch.nn.utils.clip_grad_norm_). When ‖g‖ is not finite (a NaN
// or Inf gradient, or an overflowing norm) nothing changes and the step is
// counted in Skipped: an in-graph select, so the program never branches.
//
// lr is a scalar node (the schedule's value, fed each call so the program is
// compiled once); params, grads and the state's M and V are float32 and
// shaped alike. Compile loss, Gradient and Update into one program and donate
// the parameter and state buffers so they are updated in place. It panics
// when a is invalid or the inputs do not match.
func (a AdamW) Update(lr *Node, params, grads []*Node, state AdamWState) AdamWResult {
	if err := a.Validate(); err != nil {
		panic(err)
	}
	if err := checkUpdateInputs(params, grads, state); err != nil {
		panic(err)
	}
	g := lr.Graph()
	lr = ConvertDType(Reshape(lr), dtypes.Float32)

	norm := GlobalNorm(grads)
	applied := IsFinite(norm)
	if a.MaxGradNorm > 0 {
		grads = scaleByNorm(grads, norm, a.MaxGradNorm)
	}

	newStep := AddScalar(state.Step, 1)
	t := ConvertDType(newStep, dtypes.Float64)
	biasCorrection := func(beta float64) *Node { // 1 − βᵗ in float64
		return OneMinus(Pow(Scalar(g, dtypes.Float64, beta), t))
	}
	bc1 := ConvertDType(biasCorrection(a.Beta1), dtypes.Float32)
	bc2Sqrt := ConvertDType(Sqrt(biasCorrection(a.Beta2)), dtypes.Float32)
	stepSize := Div(lr, bc1)
	decay := OneMinus(MulScalar(lr, a.WeightDecay))

	res := AdamWResult{
		Params:   make([]*Node, len(params)),
		GradNorm: norm,
		Applied:  applied,
		State: AdamWState{
			Step:    Where(applied, newStep, state.Step),
			Skipped: Where(applied, state.Skipped, AddScalar(state.Skipped, 1)),
			M:       make([]*Node, len(params)),
			V:       make([]*Node, len(params)),
		},
	}
	for i, p := range params {
		gr, m, v := grads[i], state.M[i], state.V[i]
		if a.WeightDecay != 0 {
			p = Mul(p, decay)
		}
		m = Add(m, MulScalar(Sub(gr, m), 1-a.Beta1))
		v = Add(MulScalar(v, a.Beta2), MulScalar(Mul(gr, gr), 1-a.Beta2))
		denom := AddScalar(Div(Sqrt(v), bc2Sqrt), a.Epsilon)
		p = Sub(p, Mul(stepSize, Div(m, denom)))
		res.Params[i] = Where(applied, p, params[i])
		res.State.M[i] = Where(applied, m, state.M[i])
		res.State.V[i] = Where(applied, v, state.V[i])
	}
	return res
}

// GlobalNorm returns the float32 L2 norm of all the tensors together, as
// clip_grad_norm_ computes it: the norm of the per-tensor norms.
func GlobalNorm(xs []*Node) *Node {
	if len(xs) == 0 {
		panic(fmt.Errorf("grpo: GlobalNorm: no tensors"))
	}
	norms := make([]*Node, len(xs))
	for i, x := range xs {
		norms[i] = Sqrt(ReduceAllSum(Square(ConvertDType(x, dtypes.Float32))))
	}
	return Sqrt(ReduceAllSum(Square(Stack(norms, 0))))
}

// ClipByGlobalNorm scales xs so that their global L2 norm is at most maxNorm
// (torch.nn.utils.clip_grad_norm_: factor min(1, maxNorm / (norm + 1e-6)))
// and returns them with the norm before clipping.
func ClipByGlobalNorm(xs []*Node, maxNorm float64) (clipped []*Node, norm *Node) {
	norm = GlobalNorm(xs)
	return scaleByNorm(xs, norm, maxNorm), norm
}

func scaleByNorm(xs []*Node, norm *Node, maxNorm float64) []*Node {
	g := norm.Graph()
	coef := Div(Scalar(g, dtypes.Float32, maxNorm), AddScalar(norm, 1e-6))
	coef = MinScalar(coef, 1.0)
	out := make([]*Node, len(xs))
	for i, x := range xs {
		out[i] = Mul(x, ConvertDType(coef, x.DType()))
	}
	return out
}

// checkUpdateInputs verifies that parameters, gradients and moments pair up.
func checkUpdateInputs(params, grads []*Node, s AdamWState) error {
	if len(params) == 0 {
		return fmt.Errorf("grpo: AdamW.Update: no parameters")
	}
	if len(grads) != len(params) || len(s.M) != len(params) || len(s.V) != len(params) {
		return fmt.Errorf("grpo: AdamW.Update: %d parameters, %d gradients, %d first and %d second moments; want one of each per parameter",
			len(params), len(grads), len(s.M), len(s.V))
	}
	for _, c := range []struct {
		name string
		n    *Node
	}{{"Step", s.Step}, {"Skipped", s.Skipped}} {
		if c.n == nil || !c.n.Shape().Equal(shapes.Make(dtypes.Int64)) {
			return fmt.Errorf("grpo: AdamW.Update: state %s must be an int64 scalar", c.name)
		}
	}
	for i, p := range params {
		if p.DType() != dtypes.Float32 {
			return fmt.Errorf("grpo: AdamW.Update: parameter %d is %s; want float32", i, p.Shape())
		}
		for _, c := range []struct {
			name string
			n    *Node
		}{{"gradient", grads[i]}, {"m", s.M[i]}, {"v", s.V[i]}} {
			if !c.n.Shape().Equal(p.Shape()) {
				return fmt.Errorf("grpo: AdamW.Update: %s %d is %s; want %s like its parameter", c.name, i, c.n.Shape(), p.Shape())
			}
		}
	}
	return nil
}

// OptimizerState is the AdamW state on the host: what a checkpoint stores.
type OptimizerState struct {
	// Step is the number of updates applied; Skipped the number the guard skipped.
	Step, Skipped int64
	// Params holds the moments of each parameter, in the order of the
	// parameters given to Update.
	Params []ParamState
}

// ParamState is the AdamW state of one parameter.
type ParamState struct {
	// Name identifies the parameter, e.g. "model.layers.0.self_attn.q_proj.lora_A".
	Name string
	// Shape is the parameter's shape.
	Shape []int
	// M and V are the first and second moments, row-major.
	M, V []float32
}

// NewOptimizerState returns a zero state for parameters with the given names and shapes.
func NewOptimizerState(names []string, shapesOf [][]int) (*OptimizerState, error) {
	if len(names) != len(shapesOf) {
		return nil, fmt.Errorf("grpo: optimizer state: %d names for %d shapes", len(names), len(shapesOf))
	}
	s := &OptimizerState{Params: make([]ParamState, len(names))}
	for i, name := range names {
		n := 1
		for _, d := range shapesOf[i] {
			if d <= 0 {
				return nil, fmt.Errorf("grpo: optimizer state: parameter %s has shape %v", name, shapesOf[i])
			}
			n *= d
		}
		s.Params[i] = ParamState{Name: name, Shape: slices.Clone(shapesOf[i]), M: make([]float32, n), V: make([]float32, n)}
	}
	return s, nil
}

// Tensors returns the state as tensors in the order of AdamWState.Nodes:
// step, skipped, every M, every V.
func (s *OptimizerState) Tensors() []*tensors.Tensor {
	out := []*tensors.Tensor{tensors.FromScalar(s.Step), tensors.FromScalar(s.Skipped)}
	for _, p := range s.Params {
		out = append(out, tensors.FromFlatDataAndDimensions(slices.Clone(p.M), p.Shape...))
	}
	for _, p := range s.Params {
		out = append(out, tensors.FromFlatDataAndDimensions(slices.Clone(p.V), p.Shape...))
	}
	return out
}

// SetTensors replaces the state with tensors in the order of Tensors (for
// example an updated state returned by a program), checking their shapes.
func (s *OptimizerState) SetTensors(ts []*tensors.Tensor) error {
	n := len(s.Params)
	if len(ts) != 2+2*n {
		return fmt.Errorf("grpo: optimizer state: %d tensors; want 2 + 2·%d (step, skipped, m…, v…)", len(ts), n)
	}
	scalar := func(t *tensors.Tensor, name string) (int64, error) {
		if !t.Shape().Equal(shapes.Make(dtypes.Int64)) {
			return 0, fmt.Errorf("grpo: optimizer state: %s is %s; want an int64 scalar", name, t.Shape())
		}
		return tensors.ToScalar[int64](t), nil
	}
	step, err := scalar(ts[0], "step")
	if err != nil {
		return err
	}
	skipped, err := scalar(ts[1], "skipped")
	if err != nil {
		return err
	}
	ms, vs := make([][]float32, n), make([][]float32, n)
	for i, p := range s.Params {
		want := shapes.Make(dtypes.Float32, p.Shape...)
		for _, c := range []struct {
			name string
			t    *tensors.Tensor
			dst  *[]float32
		}{{"m", ts[2+i], &ms[i]}, {"v", ts[2+n+i], &vs[i]}} {
			if !c.t.Shape().Equal(want) {
				return fmt.Errorf("grpo: optimizer state: %s of %s is %s; want %s", c.name, p.Name, c.t.Shape(), want)
			}
			if *c.dst, err = tensors.CopyFlatData[float32](c.t); err != nil {
				return fmt.Errorf("grpo: optimizer state: %s of %s: %w", c.name, p.Name, err)
			}
		}
	}
	s.Step, s.Skipped = step, skipped
	for i := range s.Params {
		s.Params[i].M, s.Params[i].V = ms[i], vs[i]
	}
	return nil
}
