package lora

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
)

// Apply returns the LoRA update of a linear layer inside a GoMLX graph:
//
//	scale · (x·Aᵀ)·Bᵀ
//
// with x of shape [..., in], a (lora_A) of shape [r, in] and b (lora_B) of
// shape [out, r]; the result has shape [..., out] and x's dtype. The caller
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
