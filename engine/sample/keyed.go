package sample

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Keyed draws: a counter-based alternative to an RNG state threaded through
// the steps. Each row carries a stream key (two 31-bit words, from StreamKey)
// and a draw number (e.g. the index of the token being drawn in its
// sequence); its uniforms are a hash of (key, draw number, vocabulary id).
// A sequence then draws the same noise wherever and whenever it runs: in
// any slot, batch size, number of steps per device call or admission order.

// StreamKey returns the key words of stream (e.g. a completion's request and
// index) under seed: two values in [0, 2³¹) (they travel as int32), mixed
// with SplitMix64 so that nearby seeds and streams give unrelated keys.
func StreamKey(seed, stream uint64) [2]int32 {
	x := splitMix64(seed ^ splitMix64(stream+0x632BE59BD9B4E019))
	return [2]int32{int32(x & 0x7FFFFFFF), int32((x >> 32) & 0x7FFFFFFF)}
}

// splitMix64 is SplitMix64's output function.
func splitMix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// KeyedUniform returns uniforms [B, vocab] float32 in (0, 1) (multiples of
// 2⁻²⁴ offset by 2⁻²⁵): a pure function of each row's key words keyA, keyB
// [B] (int32 in [0, 2³¹), see StreamKey), its draw number draw [B] (int32)
// and the column. Within a row the 2²⁴ possible values are hit by distinct
// columns through a bijective hash (murmur3's finalizer, shifts written as
// divisions by powers of two so that every backend runs them).
func KeyedUniform(keyA, keyB, draw *graph.Node, vocab int) *graph.Node {
	g := keyA.Graph()
	b := keyA.Shape().Dimensions[0]
	u32 := func(x *graph.Node) *graph.Node { return graph.ConvertDType(x, dtypes.Uint32) }
	c := func(v uint32) *graph.Node { return graph.Scalar(g, dtypes.Uint32, v) }
	row := fmix32(graph.Add(u32(keyA), fmix32(graph.BitwiseXor(graph.Mul(u32(draw), c(0x9E3779B9)), u32(keyB))))) // [B]
	col := u32(graph.Iota(g, shapes.Make(dtypes.Int32, vocab), 0))
	col = fmix32(graph.Add(graph.Mul(col, c(0x85EBCA77)), c(0x165667B1))) // a bijection of the column
	h := fmix32(graph.BitwiseXor(graph.Reshape(row, b, 1), graph.Reshape(col, 1, vocab)))
	h = fmix32(graph.Add(h, graph.Reshape(row, b, 1)))
	top := graph.ConvertDType(graph.Div(h, c(1<<8)), dtypes.Float32) // 24 bits: exact in float32
	return graph.MulScalar(graph.AddScalar(top, 0.5), 1.0/(1<<24))
}

// fmix32 is murmur3's 32-bit finalizer, a bijection with full avalanche.
func fmix32(x *graph.Node) *graph.Node {
	g := x.Graph()
	c := func(v uint32) *graph.Node { return graph.Scalar(g, dtypes.Uint32, v) }
	shr := func(x *graph.Node, n uint) *graph.Node { return graph.Div(x, c(1<<n)) }
	x = graph.BitwiseXor(x, shr(x, 16))
	x = graph.Mul(x, c(0x85EBCA6B))
	x = graph.BitwiseXor(x, shr(x, 13))
	x = graph.Mul(x, c(0xC2B2AE35))
	return graph.BitwiseXor(x, shr(x, 16))
}
