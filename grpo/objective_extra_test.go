package grpo

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// batch is an objective input on the host, in float64.
type batch struct {
	newLp, old, ref, eng, mask [][]float64
	adv, keep, trunc           []float64
	numItems                   float64 // 0: none
}

// refObjective is the objective written from its formulas in float64,
// independently of Loss. It returns the loss and the metrics KL, clip low,
// clip high, ratio.
func refObjective(o Objective, b batch) (loss float64, kl, low, high, ratio float64) {
	n, t := len(b.newLp), len(b.newLp[0])
	var total, tokens float64
	var perSeqSum float64
	for i := range n {
		var seqSum, seqTok float64
		w := 1.0
		if b.keep != nil {
			w *= b.keep[i]
		}
		if o.MaskTruncatedCompletions && b.trunc != nil {
			w *= 1 - b.trunc[i]
		}
		for j := range t {
			m := b.mask[i][j] * w
			r := math.Exp(b.newLp[i][j] - b.old[i][j])
			a := b.adv[i]
			c := math.Min(math.Max(r, 1-o.EpsilonLow), 1+o.EpsilonHigh)
			l := -math.Min(r*a, c*a)
			if o.ImportanceSamplingCorrection {
				l *= math.Min(math.Exp(b.old[i][j]-b.eng[i][j]), o.ImportanceSamplingCap)
			}
			d := b.ref[i][j] - b.newLp[i][j]
			k := math.Exp(d) - d - 1
			l += o.Beta * k
			seqSum += l * m
			seqTok += m
			kl += k * m
			ratio += r * m
			if r < 1-o.EpsilonLow && a < 0 {
				low += m
			}
			if r > 1+o.EpsilonHigh && a > 0 {
				high += m
			}
		}
		total += seqSum
		tokens += seqTok
		perSeqSum += seqSum / math.Max(seqTok, 1)
	}
	switch o.LossType {
	case LossGRPO:
		loss = perSeqSum / float64(n)
	case LossBNPO:
		loss = total / math.Max(tokens, 1)
	case LossDrGRPO:
		loss = total / float64(n*o.MaxCompletionLength)
	case LossDAPO:
		items := tokens
		if b.numItems > 0 {
			items = b.numItems
		}
		loss = total / math.Max(items, 1)
	}
	d := math.Max(tokens, 1)
	return loss, kl / d, low / d, high / d, ratio / d
}

func randBatch(rng *rand.Rand, n, t int) batch {
	mat := func(f func(i, j int) float64) [][]float64 {
		m := make([][]float64, n)
		for i := range m {
			m[i] = make([]float64, t)
			for j := range m[i] {
				m[i][j] = f(i, j)
			}
		}
		return m
	}
	b := batch{}
	b.old = mat(func(int, int) float64 { return -3 * rng.Float64() })
	b.newLp = mat(func(i, j int) float64 { return b.old[i][j] + 0.4*rng.NormFloat64() })
	b.ref = mat(func(i, j int) float64 { return b.old[i][j] + 0.3*rng.NormFloat64() })
	b.eng = mat(func(i, j int) float64 { return b.old[i][j] + 0.8*rng.NormFloat64() })
	lengths := make([]int, n)
	for i := range lengths {
		lengths[i] = rng.IntN(t + 1) // a completion may be empty
	}
	b.mask = mat(func(i, j int) float64 {
		if j < lengths[i] {
			return 1
		}
		return 0
	})
	b.adv = make([]float64, n)
	b.keep = make([]float64, n)
	b.trunc = make([]float64, n)
	for i := range b.adv {
		b.adv[i] = rng.NormFloat64()
		b.keep[i] = 1
		if rng.IntN(4) == 0 {
			b.trunc[i] = 1
		}
	}
	b.keep[1] = 0
	return b
}

// runObjective runs Loss with every input given and returns loss, gradient and metrics.
func runObjective(t *testing.T, o Objective, b batch) (loss float64, grad []float32, metrics []float64) {
	t.Helper()
	exec, err := NewExec(cpu(t), func(in []*Node) []*Node {
		li := LossInputs{NewLogps: in[0], OldLogps: in[1], RefLogps: in[2], EngineLogps: in[3], Mask: in[4],
			Advantages: in[5], Keep: in[6], Truncated: in[7]}
		if b.numItems > 0 {
			li.NumItems = in[8]
		}
		out := Loss(o, li)
		return []*Node{out.Loss, Gradient(out.Loss, li.NewLogps)[0], out.KL, out.ClipLow, out.ClipHigh, out.Ratio, out.ClipRegion, out.Tokens}
	})
	if err != nil {
		t.Fatal(err)
	}
	args := []any{matrix(b.newLp), matrix(b.old), matrix(b.ref), matrix(b.eng), matrix(b.mask),
		toFloat32(b.adv), toFloat32(b.keep), toFloat32(b.trunc)}
	if b.numItems > 0 {
		args = append(args, float32(b.numItems))
	}
	outs, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs[2:] {
		metrics = append(metrics, float64(tensors.ToScalar[float32](o)))
	}
	return float64(tensors.ToScalar[float32](outs[0])), tensors.MustCopyFlatData[float32](outs[1]), metrics
}

// The options the fixture does not exercise (importance-sampling correction,
// truncation masking, dropped sequences, dapo's NumItems, empty completions)
// against the float64 reference: loss within 1e-5, gradient against central
// finite differences of the reference, metrics exact up to float32.
func TestLossOptionsAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := Objective{LossType: LossGRPO, Beta: 0.1, EpsilonLow: 0.2, EpsilonHigh: 0.28, ScaleRewards: ScaleGroup, MaxCompletionLength: 7, ImportanceSamplingCap: 2}
	for _, c := range []struct {
		name     string
		mut      func(*Objective)
		numItems float64
	}{
		{"grpo", func(*Objective) {}, 0},
		{"grpo with IS correction and truncation", func(o *Objective) { o.ImportanceSamplingCorrection = true; o.MaskTruncatedCompletions = true }, 0},
		{"bnpo without KL", func(o *Objective) { o.LossType = LossBNPO; o.Beta = 0 }, 0},
		{"dr_grpo with IS", func(o *Objective) { o.LossType = LossDrGRPO; o.ImportanceSamplingCorrection = true }, 0},
		{"dapo with NumItems", func(o *Objective) { o.LossType = LossDAPO; o.MaskTruncatedCompletions = true }, 123},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := base
			c.mut(&o)
			b := randBatch(rng, 6, 7)
			b.numItems = c.numItems
			loss, grad, metrics := runObjective(t, o, b)
			want, kl, low, high, ratio := refObjective(o, b)
			if !relClose(loss, want, 1e-5, 1e-6) {
				t.Errorf("loss %.9g, want %.9g", loss, want)
			}
			for i, w := range []float64{kl, low, high, ratio, low + high} {
				if !relClose(metrics[i], w, 1e-5, 1e-6) {
					t.Errorf("metric %d = %v, want %v", i, metrics[i], w)
				}
			}
			if low+high == 0 {
				t.Errorf("no token is clipped; the case does not test clipping")
			}
			const h = 1e-6
			for i := range b.newLp {
				for j := range b.newLp[i] {
					orig := b.newLp[i][j]
					b.newLp[i][j] = orig + h
					lp, _, _, _, _ := refObjective(o, b)
					b.newLp[i][j] = orig - h
					lm, _, _, _, _ := refObjective(o, b)
					b.newLp[i][j] = orig
					fd := (lp - lm) / (2 * h)
					g := float64(grad[i*len(b.newLp[0])+j])
					if math.Abs(g-fd) > 1e-4*math.Max(math.Abs(fd), 1e-2) {
						t.Errorf("grad[%d][%d] = %.7g, finite differences %.7g", i, j, g, fd)
					}
				}
			}
		})
	}
}

// A dropped sequence (Keep 0) and a masked truncated one give no gradient at all.
func TestLossDroppedSequencesHaveNoGradient(t *testing.T) {
	o := Objective{LossType: LossBNPO, Beta: 0.5, EpsilonLow: 0.2, EpsilonHigh: 0.2, ScaleRewards: ScaleGroup, MaxCompletionLength: 5, MaskTruncatedCompletions: true}
	b := randBatch(rand.New(rand.NewPCG(1, 1)), 4, 5)
	for j := range b.mask[1] {
		b.mask[1][j], b.mask[2][j] = 1, 1
	}
	b.keep = []float64{1, 0, 1, 1}
	b.trunc = []float64{0, 0, 1, 0}
	_, grad, _ := runObjective(t, o, b)
	for _, row := range []int{1, 2} {
		for j := range 5 {
			if grad[row*5+j] != 0 {
				t.Errorf("row %d token %d has gradient %v", row, j, grad[row*5+j])
			}
		}
	}
}

// Host and graph advantages agree for every scaling; zero-variance groups are counted and dropped.
func TestAdvantages(t *testing.T) {
	rewards := []float64{0, 2, 2, 1.5 /**/, 0.1, 0.1, 0.1, 0.1 /**/, 0.5, -1, 2, 0}
	for _, scale := range ScaleRewardsModes {
		host, err := Advantages(rewards, 4, scale)
		if err != nil {
			t.Fatal(err)
		}
		if host.ZeroStdGroups != 1 || host.Keep[4] != 0 || host.Advantages[5] != 0 || host.Keep[0] != 1 {
			t.Errorf("%s: zero-variance group not dropped: %+v", scale, host)
		}
		// By hand: group 0 has mean 1.375 and unbiased std √(((1.375)²+2·(0.625)²+(0.125)²)/3).
		m, s := 1.375, math.Sqrt((1.375*1.375+2*0.625*0.625+0.125*0.125)/3)
		want0 := map[string]float64{ScaleGroup: (0 - m) / (s + 1e-4), ScaleNone: -m}[scale]
		if scale != ScaleBatch && !relClose(float64(host.Advantages[0]), want0, 1e-6, 0) {
			t.Errorf("%s: advantage 0 = %v, want %v", scale, host.Advantages[0], want0)
		}
		exec := MustNewExec(cpu(t), func(r *Node) (*Node, *Node) { return GroupAdvantages(r, 4, scale) })
		out := exec.MustExec(toFloat32(rewards))
		adv, keep := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
		for i := range rewards {
			if !relClose(float64(adv[i]), float64(host.Advantages[i]), 1e-5, 1e-3) || keep[i] != host.Keep[i] {
				t.Errorf("%s: completion %d: graph %v/%v, host %v/%v", scale, i, adv[i], keep[i], host.Advantages[i], host.Keep[i])
			}
		}
	}
	batchStd := func() float64 { _, s := meanStd(rewards); return s }()
	host, _ := Advantages(rewards, 4, ScaleBatch)
	if want := (0.5 - 0.375) / (batchStd + 1e-4); !relClose(float64(host.Advantages[8]), want, 1e-6, 0) {
		t.Errorf("batch scaling: %v, want %v", host.Advantages[8], want)
	}
	for _, c := range []struct {
		rewards []float64
		g       int
		scale   string
		want    string
	}{
		{[]float64{1, 2, 3}, 2, ScaleGroup, "whole groups"},
		{[]float64{1, 2}, 1, ScaleGroup, "at least 2"},
		{[]float64{1, 2}, 2, "global", "scale_rewards"},
		{[]float64{1, math.NaN()}, 2, ScaleGroup, "reward 1 is NaN"},
	} {
		if _, err := Advantages(c.rewards, c.g, c.scale); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Advantages(%v, %d, %s) = %v, want an error with %q", c.rewards, c.g, c.scale, err, c.want)
		}
	}
}

// Misuse of Loss is an error from Exec naming the input.
func TestLossInputErrors(t *testing.T) {
	o := DefaultObjective()
	for _, c := range []struct {
		name string
		fn   func(nl, m, a *Node) *Node
		want string
	}{
		{"missing ref with beta", func(nl, m, a *Node) *Node { return Loss(o, LossInputs{NewLogps: nl, Mask: m, Advantages: a}).Loss }, "RefLogps is nil"},
		{"mask shape", func(nl, m, a *Node) *Node {
			return Loss(o, LossInputs{NewLogps: nl, RefLogps: nl, Mask: Reshape(m, 3, 2), Advantages: a}).Loss
		}, "Mask is"},
		{"advantages shape", func(nl, m, a *Node) *Node {
			return Loss(o, LossInputs{NewLogps: nl, RefLogps: nl, Mask: m, Advantages: Reshape(a, 1, 2)}).Loss
		}, "Advantages is"},
		{"bad objective", func(nl, m, a *Node) *Node {
			bad := o
			bad.LossType = "sum"
			return Loss(bad, LossInputs{NewLogps: nl, RefLogps: nl, Mask: m, Advantages: a}).Loss
		}, `loss_type "sum"`},
	} {
		exec := MustNewExec(cpu(t), c.fn)
		_, err := exec.Exec([][]float32{{-1, -1, -1}, {-1, -1, -1}}, [][]float32{{1, 1, 0}, {1, 0, 0}}, []float32{1, -1})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	// On-policy (no OldLogps, no reference with β = 0): ratio 1, loss −mean A over tokens for bnpo.
	on := Objective{LossType: LossBNPO, EpsilonLow: 0.2, EpsilonHigh: 0.2, ScaleRewards: ScaleGroup, MaxCompletionLength: 3}
	exec := MustNewExec(cpu(t), func(nl, m, a *Node) *Node { return Loss(on, LossInputs{NewLogps: nl, Mask: m, Advantages: a}).Loss })
	out := exec.MustExec([][]float32{{-1, -2, -3}, {-1, -1, -1}}, [][]float32{{1, 1, 0}, {1, 0, 0}}, []float32{1, -1})
	if got := tensors.ToScalar[float32](out[0]); math.Abs(float64(got)-(-(1+1-1)/3.0)) > 1e-6 {
		t.Errorf("on-policy bnpo loss %v, want −1/3", got)
	}
}
