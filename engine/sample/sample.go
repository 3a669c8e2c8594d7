// Package sample draws the next token of every row of a batch on the device:
// GoMLX graph functions (nodes in, nodes out) that a decode program calls once
// per step, so that sampling costs no host round-trip.
//
// The logits of each row are processed in the order of transformers and vLLM:
// repetition penalty, temperature, top-k, top-p, min-p. Every parameter is a
// per-row node of shape [B], so one compiled program serves rows with different
// settings; a nil parameter node leaves its stage out of the graph (a cheaper
// program for batches where no row uses it).
//
// # The draw
//
// Tokens are drawn with the Gumbel-max trick: the chosen id is the argmax of
// the processed logits plus independent Gumbel noise -log(-log(U)), U uniform
// from GoMLX's RandomUniform. It needs no cumulative sum over the vocabulary
// (the CPU backend computes a cumulative sum as a window reduction, quadratic
// in V) and one pass of elementwise work. The uniforms are float32 with 2^-32
// granularity, clamped away from 0, so the Gumbel noise is finite and its upper
// tail is cut at about 16.6 (probability about 6e-8): a bias far below what any
// test can see.
//
// # Top-k and top-p without sorting
//
// Neither backend offers a sort (GoMLX v0.26 has no Sort or TopK op), so both
// filters are thresholds found by bisection over the 2^32 float32 values in
// order. A threshold key is an integer that enumerates the float32 values in
// increasing order; it is turned into its float32 value with exact float64
// arithmetic (multiplications by powers of two) and compared against the
// logits. 32 halvings narrow the key interval to one value, so the threshold
// is exact: top-k keeps exactly the tokens whose value is at least the k-th
// largest value, and top-p keeps exactly the tokens whose value is at least
// the largest value v such that the probability mass of the tokens >= v
// reaches p. The cost is 32 elementwise comparisons and row reductions over
// [B, V] per filter.
//
// Top-p's masses are float32 sums over the vocabulary, so a token whose
// cumulative mass lies within float32 rounding of p may fall on the other side
// of the cut than in transformers' float32 cumulative sum.
//
// Ties: a filter keeps every token tied with its threshold value, so top-k may
// keep more than k tokens when the k-th largest value is shared (transformers
// keeps the ties too for top-k; for top-p it keeps a sort-order-dependent part
// of a tie group, here the whole group is kept). Greedy rows take the lowest
// id among tied maxima.
//
// # Backends
//
// Every op used (elementwise arithmetic and comparisons, Floor, Where, Iota,
// ArgMax, ReduceSum/ReduceMax, ScatterSum, RNGBitGenerator, conversions,
// float64 on [B, 1] columns only) exists on the CPU backend and on XLA. The
// tests run on the CPU backend; on a GPU whose float32 arithmetic flushes
// denormals to zero, thresholds among denormal logits collapse to 0 (a filter
// then keeps every token tied at that value). On the CPU backend a step at
// B=64, V=151936 costs seconds (see BenchmarkSample), which is why a nil
// parameter leaves its stage out.
//
// # Determinism
//
// With Sample the ids are a function of the inputs and the RNG state: the
// same state and inputs on the same backend give the same ids. The noise of a
// row depends on its position in the batch and on B and V, so a row placed
// elsewhere in a batch draws differently. SampleUniform with KeyedUniform
// (what the engine uses) gives each row its own stream instead: its noise
// depends only on its stream key, its draw number and V, so a sequence draws
// the same tokens in any slot, batch or schedule.
package sample

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// GreedyTemperature is the temperature below which a row is decoded greedily
// (the argmax of its penalized logits), as vLLM's sampling epsilon.
const GreedyTemperature = 1e-5

// bisectionSteps halves the 2^32 float32 keys down to one value.
const bisectionSteps = 32

// Float32 keys: the key of a float32 value x >= 0 is its bit pattern read as
// an integer (x = 2^(E-127) * (1 + M/2^23) for E >= 1, x = M * 2^-149 for
// denormals), and the key of -x is minus the key of x. infKey is +Inf's key.
const (
	mantissaScale = 1 << 23
	infKey        = 255 * mantissaScale
)

// Params are the per-row sampling parameters, each a node of shape [B] (any
// float dtype for the float ones, any integer dtype for TopK). A nil node
// leaves its stage out of the graph.
type Params struct {
	// Temperature divides the penalized logits; below GreedyTemperature the
	// row is greedy. Nil means 1 for every row.
	Temperature *graph.Node
	// TopK keeps the k best tokens (and the tokens tied with the k-th);
	// k <= 0 or k >= V turns it off for that row.
	TopK *graph.Node
	// TopP keeps the smallest set of best tokens whose probability reaches p;
	// p >= 1 turns it off for that row.
	TopP *graph.Node
	// MinP keeps the tokens whose probability is at least MinP times the best
	// token's; MinP <= 0 turns it off for that row.
	MinP *graph.Node
	// RepetitionPenalty divides the positive logits and multiplies the
	// negative logits of tokens marked in the presence mask (transformers'
	// semantics); 1 turns it off. It must be positive (checked by Settings.Validate).
	RepetitionPenalty *graph.Node
}

// Result is what Sample returns; every node but RNGState has shape [B].
type Result struct {
	// IDs are the chosen token ids, int32.
	IDs *graph.Node
	// SamplerLogProb is the log-probability of each chosen id under the
	// processed distribution it was drawn from (0 for greedy rows), float32.
	SamplerLogProb *graph.Node
	// PolicyLogProb is the log-probability of each chosen id under the raw
	// logits at temperature 1 (their log-softmax, before any processing), float32.
	PolicyLogProb *graph.Node
	// RNGState is the advanced random state, to feed to the next step.
	RNGState *graph.Node
}

// Sample draws one token per row of logits [B, V] (float32 or any float
// dtype) under the per-row parameters p. presence [B, V] marks (nonzero or
// true) the tokens already in each row's prompt and completion, for the
// repetition penalty; it may be nil when p.RepetitionPenalty is nil.
// rngState is a graph.RNGStateShape node. Shape errors panic, as GoMLX graph
// functions do; the caller's Exec turns them into errors.
func Sample(logits *graph.Node, p Params, presence, rngState *graph.Node) Result {
	batch, vocab := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1]
	newState, u := graph.RandomUniform(rngState, shapes.Make(dtypes.Float32, batch, vocab))
	r := SampleUniform(logits, p, presence, u)
	r.RNGState = newState
	return r
}

// SampleUniform is Sample with the uniforms u [B, V] (float32 in [0, 1);
// values below 2⁻³³ are raised to it) given instead of an RNG state: e.g.
// KeyedUniform's, so that each row's draw depends on its own stream only.
// Its Result has no RNGState.
func SampleUniform(logits *graph.Node, p Params, presence, u *graph.Node) Result {
	logProbs := LogProbs(logits, p, presence)
	g := logits.Graph()
	batch := logits.Shape().Dimensions[0]
	u = graph.MaxScalar(u, math.Ldexp(1, -33))
	gumbel := graph.Neg(graph.Log(graph.Neg(graph.Log(u))))
	drawn := graph.ArgMax(graph.Add(logProbs, gumbel), -1, dtypes.Int32)
	best := graph.ArgMax(logProbs, -1, dtypes.Int32)
	ids := graph.Where(graph.Reshape(greedyRows(g, p, batch), batch), best, drawn)

	raw := graph.LogSoftmax(graph.ConvertDType(logits, dtypes.Float32), -1)
	return Result{
		IDs:            ids,
		SamplerLogProb: pick(logProbs, ids),
		PolicyLogProb:  pick(raw, ids),
	}
}

// LogProbs returns the processed distribution that Sample draws from, as
// float32 log-probabilities [B, V]: -Inf for the tokens the filters exclude;
// for greedy rows 0 at the argmax of the penalized logits and -Inf elsewhere.
func LogProbs(logits *graph.Node, p Params, presence *graph.Node) *graph.Node {
	checkShapes(logits, p, presence)
	g := logits.Graph()
	batch, vocab := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1]
	x := graph.ConvertDType(logits, dtypes.Float32)
	negInf := graph.Infinity(g, dtypes.Float32, -1)

	if p.RepetitionPenalty != nil && presence != nil {
		x = penalize(x, presence, column(p.RepetitionPenalty, dtypes.Float32))
	}
	greedy := greedyRows(g, p, batch)
	if p.Temperature != nil {
		t := column(p.Temperature, dtypes.Float32)
		t = graph.Where(greedy, graph.OnesLike(t), t)
		x = graph.Div(x, t)
	}

	keep := graph.Ones(g, shapes.Make(dtypes.Bool, batch, vocab))
	if p.TopK != nil {
		keep = topK(x, column(p.TopK, dtypes.Int32))
	}
	if p.TopP != nil {
		keep = graph.And(keep, topP(graph.Where(keep, x, negInf), column(p.TopP, dtypes.Float32)))
	}
	if p.MinP != nil {
		keep = graph.And(keep, minP(graph.Where(keep, x, negInf), column(p.MinP, dtypes.Float32)))
	}
	sampled := graph.LogSoftmax(graph.Where(keep, x, negInf), -1)

	zero := graph.ScalarZero(g, dtypes.Float32)
	argmax := graph.Equal(graph.Iota(g, shapes.Make(dtypes.Int32, batch, vocab), 1),
		graph.ExpandAxes(graph.ArgMax(x, -1, dtypes.Int32), -1))
	pointMass := graph.Where(argmax, zero, negInf)
	return graph.Where(graph.BroadcastToDims(greedy, batch, vocab), pointMass, sampled)
}

// Mark returns presence [B, V] with each row's id from ids [B] marked
// present, in presence's dtype: the update a decode step applies after
// sampling so that the repetition penalty sees the completion so far.
func Mark(presence, ids *graph.Node) *graph.Node {
	g := presence.Graph()
	dims := presence.Shape().Dimensions
	if presence.Rank() != 2 || ids.Rank() != 1 || ids.Shape().Dimensions[0] != dims[0] {
		panic(fmt.Errorf("sample: Mark: presence %s and ids %s: want [B, V] and [B]", presence.Shape(), ids.Shape()))
	}
	hit := graph.Equal(graph.Iota(g, shapes.Make(dtypes.Int32, dims...), 1),
		graph.ExpandAxes(graph.ConvertDType(ids, dtypes.Int32), -1))
	if presence.DType() == dtypes.Bool {
		return graph.Or(presence, hit)
	}
	return graph.Where(hit, graph.ScalarOne(g, presence.DType()), presence)
}

// Presence returns the presence mask [B, vocab] (bool) of token ids [B, L]
// (any integer dtype): true where the id occurs in the row. valid [B, L]
// (bool, may be nil) marks the positions that count, so padding is left out;
// invalid positions may hold any id. It is the mask a decode program starts
// from (the prompt's ids), built on the device by a scatter.
func Presence(ids, valid *graph.Node, vocab int) *graph.Node {
	g := ids.Graph()
	if ids.Rank() != 2 || !ids.DType().IsInt() || (valid != nil && (valid.DType() != dtypes.Bool || !valid.Shape().EqualDimensions(ids.Shape()))) {
		panic(fmt.Errorf("sample: Presence: ids %s and valid %v: want integer [B, L] and nil or bool [B, L]", ids.Shape(), shapeOf(valid)))
	}
	batch, length := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	ids = graph.ConvertDType(ids, dtypes.Int32)
	inRange := graph.And(graph.GreaterOrEqual(ids, graph.ScalarZero(g, dtypes.Int32)),
		graph.LessThan(ids, graph.Scalar(g, dtypes.Int32, vocab)))
	if valid != nil {
		inRange = graph.And(inRange, valid)
	}
	ids = graph.Where(inRange, ids, graph.ScalarZero(g, dtypes.Int32))
	rows := graph.Iota(g, shapes.Make(dtypes.Int32, batch, length), 0)
	indices := graph.Reshape(graph.Stack([]*graph.Node{rows, ids}, -1), batch*length, 2)
	updates := graph.Reshape(graph.ConvertDType(inRange, dtypes.Float32), batch*length)
	counts := graph.ScatterSum(graph.Zeros(g, shapes.Make(dtypes.Float32, batch, vocab)), indices, updates, false, false)
	return graph.GreaterThan(counts, graph.ScalarZero(g, dtypes.Float32))
}

func shapeOf(x *graph.Node) any {
	if x == nil {
		return "nil"
	}
	return x.Shape()
}

// checkShapes panics with a message naming the input when a shape is wrong.
func checkShapes(logits *graph.Node, p Params, presence *graph.Node) {
	if logits.Rank() != 2 || !logits.DType().IsFloat() {
		panic(fmt.Errorf("sample: logits %s: want float [batch, vocab]", logits.Shape()))
	}
	batch := logits.Shape().Dimensions[0]
	for _, in := range []struct {
		name  string
		node  *graph.Node
		isInt bool
	}{
		{"temperature", p.Temperature, false}, {"top_k", p.TopK, true}, {"top_p", p.TopP, false},
		{"min_p", p.MinP, false}, {"repetition_penalty", p.RepetitionPenalty, false},
	} {
		if in.node == nil {
			continue
		}
		s := in.node.Shape()
		if s.Rank() != 1 || s.Dimensions[0] != batch || (in.isInt && !s.DType.IsInt()) || (!in.isInt && !s.DType.IsFloat()) {
			kind := "float"
			if in.isInt {
				kind = "integer"
			}
			panic(fmt.Errorf("sample: %s %s: want %s [%d]", in.name, s, kind, batch))
		}
	}
	if presence != nil && !presence.Shape().EqualDimensions(logits.Shape()) {
		panic(fmt.Errorf("sample: presence %s: want the logits' shape %v", presence.Shape(), logits.Shape().Dimensions))
	}
	if p.RepetitionPenalty != nil && presence == nil {
		panic(fmt.Errorf("sample: repetition_penalty given without a presence mask"))
	}
}

// column turns a [B] parameter into [B, 1] of dtype.
func column(x *graph.Node, dtype dtypes.DType) *graph.Node {
	return graph.ExpandAxes(graph.ConvertDType(x, dtype), -1)
}

// greedyRows is [B, 1] true where the row's temperature is below GreedyTemperature.
func greedyRows(g *graph.Graph, p Params, batch int) *graph.Node {
	if p.Temperature == nil {
		return graph.Zeros(g, shapes.Make(dtypes.Bool, batch, 1))
	}
	return graph.LessThan(column(p.Temperature, dtypes.Float32), graph.Scalar(g, dtypes.Float32, GreedyTemperature))
}

// penalize applies transformers' repetition penalty to the present tokens.
func penalize(x, presence, penalty *graph.Node) *graph.Node {
	dims := x.Shape().Dimensions
	present := presence
	if presence.DType() != dtypes.Bool {
		present = graph.NotEqual(presence, graph.ScalarZero(x.Graph(), presence.DType()))
	}
	penalty = graph.BroadcastToDims(penalty, dims...)
	positive := graph.GreaterThan(x, graph.ScalarZero(x.Graph(), dtypes.Float32))
	penalized := graph.Where(positive, graph.Div(x, penalty), graph.Mul(x, penalty))
	return graph.Where(present, penalized, x)
}

// topK returns [B, V] true for the tokens whose value is at least the row's
// k-th largest value; rows with k <= 0 or k >= V keep everything.
func topK(x, k *graph.Node) *graph.Node {
	g := x.Graph()
	vocab := x.Shape().Dimensions[1]
	off := graph.Or(graph.LessOrEqual(k, graph.ScalarZero(g, dtypes.Int32)),
		graph.GreaterOrEqual(k, graph.Scalar(g, dtypes.Int32, vocab)))
	threshold := bisect(x, func(kept *graph.Node) *graph.Node {
		count := graph.ReduceAndKeep(graph.ConvertDType(kept, dtypes.Int32), graph.ReduceSum, -1)
		return graph.GreaterOrEqual(count, k)
	})
	return graph.Or(graph.GreaterOrEqual(x, threshold), graph.BroadcastToDims(off, x.Shape().Dimensions...))
}

// topP returns [B, V] true for the tokens whose value is at least the largest
// value v such that the tokens >= v hold probability >= p; rows with p >= 1
// keep everything. x holds -Inf for tokens already excluded.
func topP(x, p *graph.Node) *graph.Node {
	g := x.Graph()
	probs := graph.Softmax(x, -1)
	zero := graph.ScalarZero(g, dtypes.Float32)
	threshold := bisect(x, func(kept *graph.Node) *graph.Node {
		mass := graph.ReduceAndKeep(graph.Where(kept, probs, zero), graph.ReduceSum, -1)
		return graph.GreaterOrEqual(mass, p)
	})
	off := graph.GreaterOrEqual(p, graph.ScalarOne(g, dtypes.Float32))
	return graph.Or(graph.GreaterOrEqual(x, threshold), graph.BroadcastToDims(off, x.Shape().Dimensions...))
}

// minP returns [B, V] true for the tokens whose probability is at least
// min(p, 1) times the row's largest; rows with p <= 0 keep everything.
func minP(x, p *graph.Node) *graph.Node {
	probs := graph.Softmax(x, -1)
	best := graph.ReduceAndKeep(probs, graph.ReduceMax, -1)
	scaled := graph.Mul(graph.MinScalar(p, 1), best)
	return graph.GreaterOrEqual(probs, graph.BroadcastToDims(scaled, x.Shape().Dimensions...))
}

// bisect returns, per row of x [B, V], the largest float32 value t (as
// [B, 1]) such that enough(x >= t) holds, where enough maps a [B, V] mask to
// [B, 1] and is monotone (true for small t, false for large t). It searches
// the float32 keys from -Inf (assumed to satisfy enough) to above +Inf; when
// no key satisfies it the result is -Inf.
func bisect(x *graph.Node, enough func(kept *graph.Node) *graph.Node) *graph.Node {
	g := x.Graph()
	batch := x.Shape().Dimensions[0]
	col := shapes.Make(dtypes.Float64, batch, 1)
	lo := graph.BroadcastToShape(graph.Scalar(g, dtypes.Float64, -infKey), col)
	hi := graph.BroadcastToShape(graph.Scalar(g, dtypes.Float64, infKey+1), col)
	for range bisectionSteps {
		mid := graph.Floor(graph.MulScalar(graph.Add(lo, hi), 0.5))
		ok := enough(graph.GreaterOrEqual(x, graph.BroadcastToDims(keyValue(mid), x.Shape().Dimensions...)))
		lo = graph.Where(ok, mid, lo)
		hi = graph.Where(ok, hi, mid)
	}
	return graph.BroadcastToDims(keyValue(lo), x.Shape().Dimensions...)
}

// keyValue turns integer-valued float64 keys in [-infKey, infKey] into the
// float32 values they enumerate, with exact arithmetic.
func keyValue(key *graph.Node) *graph.Node {
	g := key.Graph()
	a := graph.Abs(key)
	exponent := graph.Floor(graph.MulScalar(a, 1.0/mantissaScale))
	mantissa := graph.Sub(a, graph.MulScalar(exponent, mantissaScale))
	normal := graph.Mul(pow2(graph.AddScalar(exponent, -127)), graph.OnePlus(graph.MulScalar(mantissa, 1.0/mantissaScale)))
	denormal := graph.MulScalar(a, math.Ldexp(1, -149))
	v := graph.Where(graph.GreaterOrEqual(exponent, graph.ScalarOne(g, dtypes.Float64)), normal, denormal)
	v = graph.Where(graph.LessThan(key, graph.ScalarZero(g, dtypes.Float64)), graph.Neg(v), v)
	return graph.ConvertDType(v, dtypes.Float32)
}

// pow2 returns 2^n for integer-valued float64 n in [-255, 255], exactly: a
// product of the powers 2^(±2^i) selected by the bits of |n|.
func pow2(n *graph.Node) *graph.Node {
	g := n.Graph()
	negative := graph.LessThan(n, graph.ScalarZero(g, dtypes.Float64))
	a := graph.Abs(n)
	result := graph.OnesLike(n)
	for i := range 8 {
		high := graph.Floor(graph.MulScalar(a, math.Ldexp(1, -(i+1))))
		low := graph.Floor(graph.MulScalar(a, math.Ldexp(1, -i)))
		bit := graph.Sub(low, graph.MulScalar(high, 2)) // bit i of |n|
		up := graph.Scalar(g, dtypes.Float64, math.Ldexp(1, 1<<i))
		down := graph.Scalar(g, dtypes.Float64, math.Ldexp(1, -(1<<i)))
		factor := graph.Where(negative, graph.BroadcastToShape(down, n.Shape()), graph.BroadcastToShape(up, n.Shape()))
		factor = graph.Where(graph.Equal(bit, graph.ScalarOne(g, dtypes.Float64)), factor, graph.ScalarOne(g, dtypes.Float64))
		result = graph.Mul(result, factor)
	}
	return result
}

// pick returns x[b, ids[b]] for x [B, V] and ids [B].
func pick(x, ids *graph.Node) *graph.Node {
	g := x.Graph()
	hit := graph.Equal(graph.Iota(g, shapes.Make(dtypes.Int32, x.Shape().Dimensions...), 1), graph.ExpandAxes(ids, -1))
	return graph.ReduceSum(graph.Where(hit, x, graph.ScalarZero(g, dtypes.Float32)), -1)
}

// Settings are one row's sampling parameters as the host holds them.
type Settings struct {
	// Temperature: 0 (or below GreedyTemperature) is greedy.
	Temperature float32
	// TopK: 0 is off.
	TopK int
	// TopP in (0, 1]: 1 is off.
	TopP float32
	// MinP in [0, 1]: 0 is off.
	MinP float32
	// RepetitionPenalty > 0: 1 is off.
	RepetitionPenalty float32
}

// Plain returns the settings that sample from the raw distribution at temperature 1.
func Plain() Settings { return Settings{Temperature: 1, TopP: 1, RepetitionPenalty: 1} }

// Validate returns an error naming the first parameter out of range and its range.
func (s Settings) Validate() error {
	if err := s.check(); err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	return nil
}

func (s Settings) check() error {
	bad := func(name string, v any, want string) error {
		return fmt.Errorf("%s = %v: want %s", name, v, want)
	}
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !finite(s.Temperature) || s.Temperature < 0:
		return bad("temperature", s.Temperature, "a finite value >= 0 (0 is greedy)")
	case s.TopK < 0 || s.TopK > math.MaxInt32:
		return bad("top_k", s.TopK, "an integer >= 0 (0 is off)")
	case !finite(s.TopP) || s.TopP <= 0 || s.TopP > 1:
		return bad("top_p", s.TopP, "a value in (0, 1] (1 is off)")
	case !finite(s.MinP) || s.MinP < 0 || s.MinP > 1:
		return bad("min_p", s.MinP, "a value in [0, 1] (0 is off)")
	case !finite(s.RepetitionPenalty) || s.RepetitionPenalty <= 0:
		return bad("repetition_penalty", s.RepetitionPenalty, "a finite value > 0 (1 is off)")
	}
	return nil
}

// Columns are the per-row parameters packed as [B] tensors, in the dtypes
// the Params nodes expect (float32, and int32 for TopK).
type Columns struct {
	Temperature, TopK, TopP, MinP, RepetitionPenalty *tensors.Tensor
}

// Pack validates each row's settings and packs them into Columns.
func Pack(rows []Settings) (Columns, error) {
	if len(rows) == 0 {
		return Columns{}, fmt.Errorf("sample: no rows to pack")
	}
	n := len(rows)
	temp, topK, topP, minP, pen := make([]float32, n), make([]int32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i, s := range rows {
		if err := s.check(); err != nil {
			return Columns{}, fmt.Errorf("sample: row %d: %w", i, err)
		}
		temp[i], topK[i], topP[i], minP[i], pen[i] = s.Temperature, int32(s.TopK), s.TopP, s.MinP, s.RepetitionPenalty
	}
	return Columns{
		Temperature: tensors.FromValue(temp), TopK: tensors.FromValue(topK), TopP: tensors.FromValue(topP),
		MinP: tensors.FromValue(minP), RepetitionPenalty: tensors.FromValue(pen),
	}, nil
}
