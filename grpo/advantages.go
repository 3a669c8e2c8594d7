package grpo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's graph DSL reads best unqualified.
)

// ZeroStdTolerance is the group standard deviation at or below which a group
// counts as zero-variance (all its completions were rewarded alike), as
// TRL's isclose(std, 0) decides.
const ZeroStdTolerance = 1e-8

// AdvantageResult is the host-side result of Advantages, for N completions
// laid out group by group (the completions of prompt i at i·G … i·G+G−1).
type AdvantageResult struct {
	// Advantages are the per-completion advantages (0 in zero-variance groups).
	Advantages []float32
	// Keep is 1 for completions that count in the loss and 0 for those of
	// zero-variance groups, which carry no learning signal (LossInputs.Keep).
	Keep []float32
	// GroupMean and GroupStd are each group's reward mean and unbiased standard deviation.
	GroupMean, GroupStd []float64
	// ZeroStdGroups counts the zero-variance groups.
	ZeroStdGroups int
}

// Advantages computes group-relative advantages in float64:
//
//	A = (r − group mean) / (s + 1e-4)
//
// where s is the unbiased standard deviation of the group (scale "group"),
// of the whole batch ("batch"), or A = r − group mean ("none"). Groups whose
// standard deviation is at most ZeroStdTolerance are counted, get advantage 0
// and Keep 0, so they contribute nothing to the loss (not even its KL term).
func Advantages(rewards []float64, groupSize int, scale string) (AdvantageResult, error) {
	switch {
	case groupSize < 2:
		return AdvantageResult{}, fmt.Errorf("grpo: advantages: group size %d: GRPO needs at least 2 completions per prompt (num_generations)", groupSize)
	case len(rewards) == 0 || len(rewards)%groupSize != 0:
		return AdvantageResult{}, fmt.Errorf("grpo: advantages: %d rewards do not make whole groups of %d", len(rewards), groupSize)
	case !slices.Contains(ScaleRewardsModes, scale):
		return AdvantageResult{}, fmt.Errorf("grpo: advantages: scale_rewards %q: use one of %s", scale, strings.Join(ScaleRewardsModes, ", "))
	}
	for i, r := range rewards {
		if !finite(r) {
			return AdvantageResult{}, fmt.Errorf("grpo: advantages: reward %d is %v; reward functions must return finite numbers", i, r)
		}
	}
	groups := len(rewards) / groupSize
	res := AdvantageResult{
		Advantages: make([]float32, len(rewards)),
		Keep:       make([]float32, len(rewards)),
		GroupMean:  make([]float64, groups),
		GroupStd:   make([]float64, groups),
	}
	for gi := range groups {
		res.GroupMean[gi], res.GroupStd[gi] = meanStd(rewards[gi*groupSize : (gi+1)*groupSize])
	}
	_, batchStd := meanStd(rewards)
	for gi := range groups {
		if res.GroupStd[gi] <= ZeroStdTolerance {
			res.ZeroStdGroups++
			continue // advantages and Keep stay 0
		}
		div := 1.0
		switch scale {
		case ScaleGroup:
			div = res.GroupStd[gi] + StdEpsilon
		case ScaleBatch:
			div = batchStd + StdEpsilon
		}
		for i := gi * groupSize; i < (gi+1)*groupSize; i++ {
			res.Advantages[i] = float32((rewards[i] - res.GroupMean[gi]) / div)
			res.Keep[i] = 1
		}
	}
	return res, nil
}

// meanStd returns the mean and the unbiased (n−1) standard deviation of x (len ≥ 2).
func meanStd(x []float64) (mean, std float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(x)-1))
}

// GroupAdvantages computes in the graph what Advantages computes on the
// host, for float32 rewards [N] laid out group by group: it returns the
// advantages [N] and Keep [N] (0 in zero-variance groups). It panics when
// groupSize does not divide N, groupSize < 2 or scale is unknown.
func GroupAdvantages(rewards *Node, groupSize int, scale string) (advantages, keep *Node) {
	sh := rewards.Shape()
	if sh.Rank() != 1 || sh.DType != dtypes.Float32 {
		panic(fmt.Errorf("grpo: GroupAdvantages: rewards are %s; want float32 [N]", sh))
	}
	n := sh.Dimensions[0]
	if groupSize < 2 || n%groupSize != 0 {
		panic(fmt.Errorf("grpo: GroupAdvantages: %d rewards do not make whole groups of %d (at least 2)", n, groupSize))
	}
	if !slices.Contains(ScaleRewardsModes, scale) {
		panic(fmt.Errorf("grpo: GroupAdvantages: scale_rewards %q: use one of %s", scale, strings.Join(ScaleRewardsModes, ", ")))
	}
	unbiasedStd := func(x *Node, axis int, mean *Node) *Node {
		d := Sub(x, mean)
		count := x.Shape().Dimensions[axis]
		return Sqrt(DivScalar(ReduceAndKeep(Square(d), ReduceSum, axis), float64(count-1)))
	}
	grouped := Reshape(rewards, n/groupSize, groupSize)
	mean := ReduceAndKeep(grouped, ReduceMean, 1)
	std := unbiasedStd(grouped, 1, mean) // [groups, 1]
	centred := Sub(grouped, mean)
	switch scale {
	case ScaleGroup:
		centred = Div(centred, AddScalar(std, StdEpsilon))
	case ScaleBatch:
		flat := ExpandAxes(rewards, 0)
		bstd := unbiasedStd(flat, 1, ReduceAndKeep(flat, ReduceMean, 1))
		centred = Div(centred, AddScalar(Reshape(bstd), StdEpsilon))
	}
	// A group of equal rewards can show a float32 rounding residue in its
	// std, so equality of its extremes decides too.
	varies := LogicalAnd(GreaterThan(std, Scalar(rewards.Graph(), dtypes.Float32, ZeroStdTolerance)),
		GreaterThan(ReduceAndKeep(grouped, ReduceMax, 1), ReduceAndKeep(grouped, ReduceMin, 1)))
	keepG := ConvertDType(varies, dtypes.Float32)
	keepG = BroadcastToDims(keepG, n/groupSize, groupSize)
	return Reshape(Mul(centred, keepG), n), Reshape(keepG, n)
}
