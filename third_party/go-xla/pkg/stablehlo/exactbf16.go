package stablehlo

import (
	"sync/atomic"

	"github.com/gomlx/go-xla/internal/optypes"
	"github.com/gomlx/go-xla/pkg/types"
	"github.com/gomlx/go-xla/pkg/types/dtypes"
)

// mmft patch: float32 dot products of operands that are bf16 values widened to
// float32 can run as bf16 × bf16 products with float32 accumulation (the
// BF16_BF16_F32 dot algorithm): every product of two bf16 values is exact in
// float32 and the accumulation stays float32, so the result is the float32
// product's up to the order of summation, at bf16 tensor-core speed instead of
// TF32's or float32's. The operands' provenance is checked, so no value is
// rounded that was not a bf16 value already.

// exactBF16Dots turns the rewrite on (SetExactBF16Dots).
var exactBF16Dots atomic.Bool

// SetExactBF16Dots sets whether DotGeneral gives float32 products whose two
// operands are widened bf16 values (a Convert from bf16, possibly through
// Reshape, Transpose or BroadcastInDim) the BF16_BF16_F32 algorithm, when no
// algorithm was set (mmft patch; off by default).
func SetExactBF16Dots(on bool) { exactBF16Dots.Store(on) }

// ExactBF16Dots reports the setting of SetExactBF16Dots.
func ExactBF16Dots() bool { return exactBF16Dots.Load() }

// widenedBF16 reports whether v is a bf16 value converted to float32, seen
// through operations that only move or repeat values.
func widenedBF16(fn *Function, v *Value) bool {
	for depth := 0; depth < 16 && v != nil; depth++ {
		stmt := producer(fn, v)
		if stmt == nil || len(stmt.Inputs) == 0 {
			return false
		}
		switch stmt.OpType {
		case optypes.Convert:
			return stmt.Inputs[0].shape.DType == dtypes.BFloat16
		case optypes.Reshape, optypes.Transpose, optypes.BroadcastInDim:
			v = stmt.Inputs[0]
		default:
			return false
		}
	}
	return false
}

// producer returns the statement of fn that outputs v (nil for an input).
func producer(fn *Function, v *Value) *Statement {
	for i := len(fn.Statements) - 1; i >= 0; i-- {
		for _, out := range fn.Statements[i].Outputs {
			if out == v {
				return fn.Statements[i]
			}
		}
	}
	return nil
}

// exactBF16Algorithm returns the BF16_BF16_F32 algorithm for a float32 dot of
// widened bf16 operands when the rewrite is on, else nil.
func exactBF16Algorithm(fn *Function, lhs, rhs *Value) *types.DotGeneralAlgorithm {
	if !exactBF16Dots.Load() || lhs.shape.DType != dtypes.Float32 || rhs.shape.DType != dtypes.Float32 ||
		!widenedBF16(fn, lhs) || !widenedBF16(fn, rhs) {
		return nil
	}
	return &types.DotGeneralAlgorithm{
		LhsPrecisionType:       types.FloatPrecisionType{DType: dtypes.BFloat16},
		RhsPrecisionType:       types.FloatPrecisionType{DType: dtypes.BFloat16},
		AccumulationType:       types.FloatPrecisionType{DType: dtypes.Float32},
		LhsComponentCount:      1,
		RhsComponentCount:      1,
		NumPrimitiveOperations: 1,
	}
}
