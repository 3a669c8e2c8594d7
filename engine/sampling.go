package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Sampling are a request's sampling parameters.
type Sampling struct {
	// Temperature divides the logits; 0 means greedy (argmax).
	Temperature float32
	// TopP keeps the smallest set of tokens whose probability reaches TopP
	// (0 or 1: off). TopK keeps the K most likely tokens (0: off).
	TopP float32
	TopK int
	// MinP drops tokens whose probability is below MinP times the largest
	// (0: off).
	MinP float32
	// RepetitionPenalty divides positive and multiplies negative logits of
	// tokens already in the sequence, prompt included (transformers' rule;
	// 0 or 1: off).
	RepetitionPenalty float32
	// MaxNewTokens bounds each completion (required, > 0).
	MaxNewTokens int
	// StopIDs end a completion (finish reason stop) when generated; the
	// model's EOS ids (Options.EOSIDs) end it with reason eos. Both are kept
	// in the completion's ids.
	StopIDs []int32
	// StopStrings end a completion when its decoded text contains one (needs
	// Options.Decode); the ids up to and including the token that completed
	// it are kept.
	StopStrings []string
	// IgnoreEOS keeps generating past EOS ids (a benchmark forcing a length).
	IgnoreEOS bool
	// Seed makes sampling deterministic: the same requests, options and seed
	// give the same completions.
	Seed uint64
}

// Validate checks the parameters.
func (s Sampling) Validate() error {
	var errs []error
	if s.Temperature < 0 || math.IsNaN(float64(s.Temperature)) || math.IsInf(float64(s.Temperature), 0) {
		errs = append(errs, fmt.Errorf("temperature %g: want ≥ 0 (0 = greedy)", s.Temperature))
	}
	if s.TopP < 0 || s.TopP > 1 {
		errs = append(errs, fmt.Errorf("top_p %g: want in [0, 1]", s.TopP))
	}
	if s.TopK < 0 {
		errs = append(errs, fmt.Errorf("top_k %d: want ≥ 0", s.TopK))
	}
	if s.MinP < 0 || s.MinP > 1 {
		errs = append(errs, fmt.Errorf("min_p %g: want in [0, 1]", s.MinP))
	}
	if s.RepetitionPenalty < 0 {
		errs = append(errs, fmt.Errorf("repetition_penalty %g: want > 0 (1 = off)", s.RepetitionPenalty))
	}
	if s.MaxNewTokens <= 0 {
		errs = append(errs, fmt.Errorf("max_new_tokens %d: want > 0", s.MaxNewTokens))
	}
	if (s.TopK > 0 || (s.TopP > 0 && s.TopP < 1)) && !sorterAvailable {
		errs = append(errs, errors.New("top_k and top_p need the on-device sampler (engine/sample), not merged yet: use temperature and min_p"))
	}
	return errors.Join(errs...)
}

// sorterAvailable says whether the on-device sampler with top-k and top-p
// is wired in (the seam below switches to engine/sample when it lands).
const sorterAvailable = false

// SamplingParams are the per-row sampling parameters as graph nodes, each
// [S] (TopK int32, the others float32).
type SamplingParams struct {
	Temperature, TopP, MinP, RepetitionPenalty, TopK *Node
}

// sampleTokens is the engine's seam to the sampler: from float32 logits [S,
// V], per-row parameters, presence [S, V] (tokens in the sequence so far) and
// the RNG state it returns the chosen ids [S] int32, the sampler's log-prob
// of each (the distribution it drew from; 0 for a greedy row), the policy's
// temperature-1 log-prob of each, and the new RNG state.
//
// This minimal version applies the repetition penalty, temperature and min-p
// and draws with the Gumbel-max trick; top-k and top-p come with engine/sample.
func sampleTokens(logits *Node, p SamplingParams, presence, rng *Node) (ids, lpSampler, lpPolicy, newRNG *Node) {
	g := logits.Graph()
	dims := logits.Shape().Dimensions
	s, v := dims[0], dims[1]
	policy := LogSoftmax(logits)
	col := func(x *Node) *Node { return InsertAxes(x, -1) }
	// Repetition penalty (transformers): seen tokens' positive logits are
	// divided by it, negative ones multiplied.
	pen := col(Where(GreaterThan(p.RepetitionPenalty, ScalarZero(g, dtypes.Float32)), p.RepetitionPenalty, OnesLike(p.RepetitionPenalty)))
	penalized := Where(GreaterThan(logits, ZerosLike(logits)), Div(logits, pen), Mul(logits, pen))
	adj := Where(presence, penalized, logits)
	greedy := LessOrEqual(p.Temperature, ScalarZero(g, dtypes.Float32)) // [S]
	temp := Where(greedy, OnesLike(p.Temperature), p.Temperature)
	adj = Div(adj, col(temp))
	// Min-p: drop tokens below min_p · the largest probability.
	probs := Softmax(adj, -1)
	top := ReduceAndKeep(probs, ReduceMax, -1)
	keep := GreaterOrEqual(probs, Mul(col(p.MinP), top))
	neg := Scalar(g, dtypes.Float32, -math.MaxFloat32)
	adj = Where(keep, adj, BroadcastToDims(neg, s, v))
	sampler := LogSoftmax(adj)
	// Gumbel-max draw.
	newRNG, u := RandomUniform(rng, shapes.Make(dtypes.Float32, s, v))
	u = ClipScalar(u, 1e-20, 1-1e-7)
	gumbel := Neg(Log(Neg(Log(u))))
	drawn := ArgMax(Add(adj, gumbel), -1, dtypes.Int32)
	best := ArgMax(adj, -1, dtypes.Int32)
	ids = Where(greedy, best, drawn)
	chosen := Equal(Iota(g, shapes.Make(dtypes.Int32, s, v), 1), col(ids))
	pick := func(lp *Node) *Node { return ReduceSum(Where(chosen, lp, ZerosLike(lp)), -1) }
	lpSampler = Where(greedy, ZerosLike(p.Temperature), pick(sampler))
	return ids, lpSampler, pick(policy), newRNG
}
