package lora

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Apply returns the LoRA update of a linear layer inside a GoMLX graph:
//
//	scale · (x·Aᵀ)·Bᵀ
//
// with x of shape [..., in], a (lora_A) of shape [r, in] and b (lora_B) of
// shape [out, r], all three of one dtype (convert the float32 host values
// with ConvertDType for bf16 graphs); the result has shape [..., out]. The caller
// adds it to the base projection x·Wᵀ (+ bias). The rank-r intermediate is
// never widened to [out, in], so the cost is O(r·(in+out)) per row.
//
// Dropout (lora_dropout) acts on the LoRA branch only, as in PEFT: during
// training call Apply(dropout(x), a, b, scale) while the base projection uses
// the undropped x (dropout = zero each element with probability p and divide
// the survivors by 1−p); at inference pass x unchanged.
//
// Gradients flow to x, a and b (two DotGenerals and a scalar multiply).
func Apply(x, a, b *Node, scale float64) *Node {
	xa := DotGeneral(x, []int{-1}, nil, a, []int{1}, nil) // [..., r]
	y := DotGeneral(xa, []int{-1}, nil, b, []int{1}, nil) // [..., out]
	return MulScalar(y, scale)
}

// Tensors returns the module's A [R, In] and B [Out, R] as float32 GoMLX
// tensors (copies), ready to feed Apply or to become trainable variables.
func (m *Module) Tensors() (a, b *tensors.Tensor, err error) {
	if err := m.check(); err != nil {
		return nil, nil, err
	}
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), m.A...), m.R, m.In),
		tensors.FromFlatDataAndDimensions(append([]float32(nil), m.B...), m.Out, m.R), nil
}

// SetTensors replaces the module's A and B with the values of float32
// tensors of shapes [R, In] and [Out, R] (e.g. trained variables).
func (m *Module) SetTensors(a, b *tensors.Tensor) error {
	for _, c := range []struct {
		name string
		t    *tensors.Tensor
		dims []int
	}{{"lora_A", a, []int{m.R, m.In}}, {"lora_B", b, []int{m.Out, m.R}}} {
		if c.t == nil {
			return fmt.Errorf("lora: %s: %s tensor is nil", m.Name, c.name)
		}
		sh := c.t.Shape()
		if sh.DType != dtypes.Float32 || !slices.Equal(sh.Dimensions, c.dims) {
			return fmt.Errorf("lora: %s: %s tensor is %s, want float32 %v", m.Name, c.name, sh, c.dims)
		}
	}
	av, err := tensors.CopyFlatData[float32](a)
	if err != nil {
		return fmt.Errorf("lora: %s: %w", m.Name, err)
	}
	bv, err := tensors.CopyFlatData[float32](b)
	if err != nil {
		return fmt.Errorf("lora: %s: %w", m.Name, err)
	}
	m.A, m.B = av, bv
	return nil
}
