package grpo

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
)

// Loss types: how per-token losses are aggregated into the batch loss.
const (
	// LossGRPO averages each sequence over its tokens, then the sequences
	// (the original GRPO and the seed's aggregation).
	LossGRPO = "grpo"
	// LossBNPO averages over all tokens of the batch.
	LossBNPO = "bnpo"
	// LossDrGRPO sums all tokens and divides by N·max_completion_length (Dr. GRPO).
	LossDrGRPO = "dr_grpo"
	// LossDAPO averages over all tokens of the whole accumulated batch
	// (LossInputs.NumItems); without NumItems it equals LossBNPO.
	LossDAPO = "dapo"
)

// LossTypes lists the accepted loss types.
var LossTypes = []string{LossGRPO, LossBNPO, LossDrGRPO, LossDAPO}

// Reward scalings: what the group-centred rewards are divided by.
const (
	// ScaleGroup divides by the unbiased standard deviation of the group, plus 1e-4.
	ScaleGroup = "group"
	// ScaleBatch divides by the unbiased standard deviation of the whole batch, plus 1e-4.
	ScaleBatch = "batch"
	// ScaleNone leaves the centred rewards unscaled (Dr. GRPO).
	ScaleNone = "none"
)

// ScaleRewardsModes lists the accepted reward scalings.
var ScaleRewardsModes = []string{ScaleGroup, ScaleBatch, ScaleNone}

// StdEpsilon is added to the standard deviation that advantages are divided by.
const StdEpsilon = 1e-4

// Objective holds the hyper-parameters of the GRPO objective. Field names in
// YAML follow TRL's GRPOConfig.
type Objective struct {
	// LossType is the aggregation: "grpo" (per-sequence mean, the seed's),
	// "bnpo", "dr_grpo" or "dapo".
	LossType string `yaml:"loss_type"`
	// Beta weighs the k3 KL penalty to the reference policy (seed: --kld_beta).
	// Zero drops the penalty and the need for reference log-probs.
	Beta float64 `yaml:"beta"`
	// EpsilonLow is the lower clipping range: ratios below 1−EpsilonLow are
	// clipped (seed: --clip_low_eps; TRL: epsilon).
	EpsilonLow float64 `yaml:"epsilon"`
	// EpsilonHigh is the upper clipping range: ratios above 1+EpsilonHigh are
	// clipped (seed: --clip_high_eps; DAPO's clip-higher uses 0.28).
	EpsilonHigh float64 `yaml:"epsilon_high"`
	// ScaleRewards is "group", "batch" or "none" (see Advantages).
	ScaleRewards string `yaml:"scale_rewards"`
	// MaxCompletionLength is the most tokens a completion may have (seed:
	// --max_new_tokens); dr_grpo divides by N times it.
	MaxCompletionLength int `yaml:"max_completion_length"`
	// MaskTruncatedCompletions drops from the loss the completions that hit
	// MaxCompletionLength without an end token (LossInputs.Truncated).
	MaskTruncatedCompletions bool `yaml:"mask_truncated_completions"`
	// ImportanceSamplingCorrection weighs each token's policy-gradient term by
	// min(exp(logp_old − logp_engine), ImportanceSamplingCap), correcting for
	// the sampler's log-probs differing from the trainer's. Off by default.
	ImportanceSamplingCorrection bool `yaml:"importance_sampling_correction"`
	// ImportanceSamplingCap truncates the importance weight (TRL's default 3).
	ImportanceSamplingCap float64 `yaml:"importance_sampling_cap"`
}

// DefaultObjective returns the seed's objective: per-sequence mean, β = 0.5,
// ε = 0.3 on both sides, group scaling, 512-token completions; no
// importance-sampling correction (cap 3 when it is turned on).
func DefaultObjective() Objective {
	return Objective{
		LossType:              LossGRPO,
		Beta:                  0.5,
		EpsilonLow:            0.3,
		EpsilonHigh:           0.3,
		ScaleRewards:          ScaleGroup,
		MaxCompletionLength:   512,
		ImportanceSamplingCap: 3,
	}
}

// Validate checks the objective and returns one error naming the first bad field.
func (o *Objective) Validate() error {
	switch {
	case !slices.Contains(LossTypes, o.LossType):
		return fmt.Errorf("grpo: loss_type %q: use one of %s", o.LossType, strings.Join(LossTypes, ", "))
	case !finite(o.Beta) || o.Beta < 0:
		return fmt.Errorf("grpo: beta (--kld_beta) %v: the KL weight must be a number ≥ 0 (0 turns the KL penalty off)", o.Beta)
	case !finite(o.EpsilonLow) || o.EpsilonLow < 0 || o.EpsilonLow >= 1:
		return fmt.Errorf("grpo: epsilon (--clip_low_eps) %v: the lower clipping range must be in [0, 1), e.g. 0.2", o.EpsilonLow)
	case !finite(o.EpsilonHigh) || o.EpsilonHigh < 0:
		return fmt.Errorf("grpo: epsilon_high (--clip_high_eps) %v: the upper clipping range must be a number ≥ 0, e.g. 0.28", o.EpsilonHigh)
	case !slices.Contains(ScaleRewardsModes, o.ScaleRewards):
		return fmt.Errorf("grpo: scale_rewards %q: use one of %s", o.ScaleRewards, strings.Join(ScaleRewardsModes, ", "))
	case o.MaxCompletionLength <= 0:
		return fmt.Errorf("grpo: max_completion_length (--max_new_tokens) %d: must be a positive number of tokens", o.MaxCompletionLength)
	case o.ImportanceSamplingCorrection && (!finite(o.ImportanceSamplingCap) || o.ImportanceSamplingCap <= 0):
		return fmt.Errorf("grpo: importance_sampling_cap %v: the cap on the importance weight must be a positive number, e.g. 3", o.ImportanceSamplingCap)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// LossInputs are the graph inputs of Loss for N completions padded to T
// tokens. Per-token tensors are float32 [N, T], per-sequence ones float32 [N].
type LossInputs struct {
	// NewLogps are the log-probs of the completion tokens under the policy
	// being trained; the loss is differentiated with respect to them.
	NewLogps *Node
	// OldLogps are the trainer's log-probs at rollout time (μ > 1 updates per
	// rollout batch); nil means on-policy, StopGradient(NewLogps).
	OldLogps *Node
	// RefLogps are the reference policy's log-probs; needed when Beta > 0.
	RefLogps *Node
	// EngineLogps are the sampler's log-probs of the same tokens; needed with
	// ImportanceSamplingCorrection.
	EngineLogps *Node
	// Mask is 1 on completion tokens and 0 on padding.
	Mask *Node
	// Advantages are per completion, [N] (see Advantages).
	Advantages *Node
	// Keep is optional, [N]: 0 drops a completion from the loss (Advantages
	// gives 0 for the completions of zero-variance groups); nil keeps all.
	Keep *Node
	// Truncated is optional, [N]: 1 marks a completion cut at
	// MaxCompletionLength; such completions are dropped when
	// MaskTruncatedCompletions is set.
	Truncated *Node
	// NumItems is optional, a float32 scalar: dapo's divisor, the number of
	// completion tokens in the whole accumulated batch. Nil means this batch's.
	NumItems *Node
}

// LossOutputs are the loss and the metrics, all float32 scalars. Token means
// are over the tokens that count (mask, Keep and truncation applied).
type LossOutputs struct {
	// Loss is the objective to minimize.
	Loss *Node
	// KL is the token mean of the k3 KL estimate to the reference (0 without RefLogps).
	KL *Node
	// ClipLow is the fraction of tokens whose ratio is below 1−ε_low with a negative advantage.
	ClipLow *Node
	// ClipHigh is the fraction of tokens whose ratio is above 1+ε_high with a positive advantage.
	ClipHigh *Node
	// ClipRegion is ClipLow + ClipHigh, the fraction of tokens with no policy gradient.
	ClipRegion *Node
	// Ratio is the token mean of exp(logp − logp_old).
	Ratio *Node
	// ISWeight is the token mean of the importance weight (1 without the correction).
	ISWeight *Node
	// Tokens is the number of tokens that count.
	Tokens *Node
}

// Loss builds the GRPO objective and its metrics in the graph of in.NewLogps.
// Per token, with ratio r = exp(logp − logp_old) and advantage A:
//
//	ℓ = −min(r·A, clip(r, 1−ε_low, 1+ε_high)·A)·w + β·(exp(ref − logp) − (ref − logp) − 1)
//
// where w = min(exp(logp_old − logp_engine), cap) with the importance-sampling
// correction and 1 otherwise (w weighs the policy term only, as in TRL). The
// gradient follows PyTorch's for min and clamp: A·r where unclipped, 0 where
// clipped. ℓ is aggregated over the counted tokens by the loss type:
// grpo mean over sequences of each sequence's token mean (a sequence with no
// counted token contributes 0 and still counts in N); bnpo Σℓ / tokens;
// dr_grpo Σℓ / (N·max_completion_length); dapo Σℓ / NumItems. For gradient
// accumulation over k micro-batches, divide the loss by k (grpo, bnpo,
// dr_grpo) or pass the whole batch's token count as NumItems (dapo).
//
// It panics (GoMLX's convention; Exec returns it as an error) when o is
// invalid or an input is missing or mis-shaped.
func Loss(o Objective, in LossInputs) LossOutputs {
	if err := o.Validate(); err != nil {
		panic(err)
	}
	if err := in.check(o); err != nil {
		panic(err)
	}
	newLp := in.NewLogps
	g := newLp.Graph()
	n, t := newLp.Shape().Dimensions[0], newLp.Shape().Dimensions[1]

	mask := in.Mask
	if in.Keep != nil {
		mask = Mul(mask, ExpandAxes(in.Keep, -1))
	}
	if o.MaskTruncatedCompletions && in.Truncated != nil {
		mask = Mul(mask, ExpandAxes(OneMinus(in.Truncated), -1))
	}
	mask = StopGradient(mask)

	old := in.OldLogps
	if old == nil {
		old = newLp
	}
	old = StopGradient(old)
	ratio := Exp(Sub(newLp, old))
	adv := StopGradient(BroadcastToDims(ExpandAxes(in.Advantages, -1), n, t))

	// min(r·A, clip(r)·A) picks the clipped term exactly when it is the
	// smaller one: r below the range with A < 0, or above it with A > 0.
	rv := StopGradient(ratio)
	zero := ScalarZero(g, dtypes.Float32)
	low := LogicalAnd(LessThan(rv, Scalar(g, dtypes.Float32, 1-o.EpsilonLow)), LessThan(adv, zero))
	high := LogicalAnd(GreaterThan(rv, Scalar(g, dtypes.Float32, 1+o.EpsilonHigh)), GreaterThan(adv, zero))
	clipped := LogicalOr(low, high)
	rClip := ClipScalar(rv, 1-o.EpsilonLow, 1+o.EpsilonHigh)
	surrogate := Where(clipped, Mul(rClip, adv), Mul(ratio, adv))
	perToken := Neg(surrogate)

	isWeight := OnesLike(newLp)
	if o.ImportanceSamplingCorrection {
		isWeight = StopGradient(MinScalar(Exp(Sub(old, StopGradient(in.EngineLogps))), o.ImportanceSamplingCap))
		perToken = Mul(perToken, isWeight)
	}
	kl := ZerosLike(newLp)
	if in.RefLogps != nil {
		d := Sub(StopGradient(in.RefLogps), newLp)
		kl = Sub(Sub(Exp(d), d), OnesLike(d))
		if o.Beta != 0 {
			perToken = Add(perToken, MulScalar(kl, o.Beta))
		}
	}

	masked := Mul(perToken, mask)
	tokens := ReduceAllSum(mask)
	atLeastOne := func(x *Node) *Node { return MaxScalar(x, 1.0) }
	var loss *Node
	switch o.LossType {
	case LossGRPO:
		perSeq := Div(ReduceSum(masked, 1), atLeastOne(ReduceSum(mask, 1)))
		loss = DivScalar(ReduceAllSum(perSeq), float64(n))
	case LossBNPO:
		loss = Div(ReduceAllSum(masked), atLeastOne(tokens))
	case LossDrGRPO:
		loss = DivScalar(ReduceAllSum(masked), float64(n)*float64(o.MaxCompletionLength))
	case LossDAPO:
		items := tokens
		if in.NumItems != nil {
			items = StopGradient(in.NumItems)
		}
		loss = Div(ReduceAllSum(masked), atLeastOne(items))
	}

	tokenMean := func(x *Node) *Node {
		return StopGradient(Div(ReduceAllSum(Mul(x, mask)), atLeastOne(tokens)))
	}
	f32 := func(b *Node) *Node { return ConvertDType(b, dtypes.Float32) }
	out := LossOutputs{
		Loss:     loss,
		KL:       tokenMean(kl),
		ClipLow:  tokenMean(f32(low)),
		ClipHigh: tokenMean(f32(high)),
		Ratio:    tokenMean(ratio),
		ISWeight: tokenMean(isWeight),
		Tokens:   StopGradient(tokens),
	}
	out.ClipRegion = Add(out.ClipLow, out.ClipHigh)
	return out
}

// check verifies that the inputs Loss needs are present, float32 and shaped alike.
func (in *LossInputs) check(o Objective) error {
	if in.NewLogps == nil {
		return errors.New("grpo: Loss: NewLogps is nil")
	}
	sh := in.NewLogps.Shape()
	if sh.Rank() != 2 || sh.DType != dtypes.Float32 {
		return fmt.Errorf("grpo: Loss: NewLogps is %s; want float32 [N, T] per-token log-probs", sh)
	}
	n := sh.Dimensions[0]
	perToken := []struct {
		name     string
		node     *Node
		required bool
	}{
		{"Mask", in.Mask, true},
		{"OldLogps", in.OldLogps, false},
		{"RefLogps", in.RefLogps, o.Beta > 0},
		{"EngineLogps", in.EngineLogps, o.ImportanceSamplingCorrection},
	}
	for _, p := range perToken {
		if p.node == nil {
			if p.required {
				return fmt.Errorf("grpo: Loss: %s is nil but needed (beta %v, importance_sampling_correction %v)", p.name, o.Beta, o.ImportanceSamplingCorrection)
			}
			continue
		}
		if !p.node.Shape().Equal(sh) {
			return fmt.Errorf("grpo: Loss: %s is %s; want %s like NewLogps", p.name, p.node.Shape(), sh)
		}
	}
	perSeq := []struct {
		name     string
		node     *Node
		required bool
	}{{"Advantages", in.Advantages, true}, {"Keep", in.Keep, false}, {"Truncated", in.Truncated, false}}
	for _, p := range perSeq {
		if p.node == nil {
			if p.required {
				return fmt.Errorf("grpo: Loss: %s is nil", p.name)
			}
			continue
		}
		if s := p.node.Shape(); s.DType != dtypes.Float32 || s.Rank() != 1 || s.Dimensions[0] != n {
			return fmt.Errorf("grpo: Loss: %s is %s; want float32 [%d], one value per completion", p.name, s, n)
		}
	}
	if in.NumItems != nil {
		if s := in.NumItems.Shape(); s.DType != dtypes.Float32 || !s.IsScalar() {
			return fmt.Errorf("grpo: Loss: NumItems is %s; want a float32 scalar", s)
		}
	}
	return nil
}
