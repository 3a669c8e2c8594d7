package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/mmft-go/mmft/compute"
)

var (
	backendOnce sync.Once
	backendCPU  *compute.Backend
	backendErr  error
)

func cpu(t testing.TB) *compute.Backend {
	backendOnce.Do(func() { backendCPU, backendErr = compute.NewCPU() })
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	return backendCPU
}

// outputs is what one sampling call returns, on the host.
type outputs struct {
	ids        []int32
	samplerLP  []float32
	policyLP   []float32
	logProbs   [][]float32
	stateAfter *tensors.Tensor
}

// sampleRows runs Sample and LogProbs once over the rows, with every stage in the graph.
func sampleRows(t testing.TB, logits [][]float32, rows []Settings, presence [][]bool, seed int64) outputs {
	t.Helper()
	cols, err := Pack(rows)
	if err != nil {
		t.Fatal(err)
	}
	state, err := graph.RNGStateFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExec(cpu(t), func(in []*graph.Node) []*graph.Node {
		p := Params{Temperature: in[1], TopK: in[2], TopP: in[3], MinP: in[4], RepetitionPenalty: in[5]}
		r := Sample(in[0], p, in[6], in[7])
		return []*graph.Node{r.IDs, r.SamplerLogProb, r.PolicyLogProb, r.RNGState, LogProbs(in[0], p, in[6])}
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Exec(tensors.FromValue(logits), cols.Temperature, cols.TopK, cols.TopP, cols.MinP,
		cols.RepetitionPenalty, tensors.FromValue(presence), state)
	if err != nil {
		t.Fatal(err)
	}
	return outputs{
		ids:        outs[0].Value().([]int32),
		samplerLP:  outs[1].Value().([]float32),
		policyLP:   outs[2].Value().([]float32),
		stateAfter: outs[3],
		logProbs:   outs[4].Value().([][]float32),
	}
}

// sampleKeyed runs SampleUniform over KeyedUniform once over the rows (row
// r with stream key keys[r] at draw number draws[r]), every stage in the graph.
func sampleKeyed(t testing.TB, logits [][]float32, rows []Settings, presence [][]bool, keys [][2]int32, draws []int32) outputs {
	t.Helper()
	cols, err := Pack(rows)
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := make([]int32, len(keys)), make([]int32, len(keys))
	for i, k := range keys {
		keyA[i], keyB[i] = k[0], k[1]
	}
	exec, err := graph.NewExec(cpu(t), func(in []*graph.Node) []*graph.Node {
		p := Params{Temperature: in[1], TopK: in[2], TopP: in[3], MinP: in[4], RepetitionPenalty: in[5]}
		u := KeyedUniform(in[7], in[8], in[9], in[0].Shape().Dimensions[1])
		r := SampleUniform(in[0], p, in[6], u)
		return []*graph.Node{r.IDs, r.SamplerLogProb, r.PolicyLogProb, LogProbs(in[0], p, in[6])}
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Exec(tensors.FromValue(logits), cols.Temperature, cols.TopK, cols.TopP, cols.MinP,
		cols.RepetitionPenalty, tensors.FromValue(presence), tensors.FromValue(keyA), tensors.FromValue(keyB), tensors.FromValue(draws))
	if err != nil {
		t.Fatal(err)
	}
	return outputs{
		ids:       outs[0].Value().([]int32),
		samplerLP: outs[1].Value().([]float32),
		policyLP:  outs[2].Value().([]float32),
		logProbs:  outs[3].Value().([][]float32),
	}
}

// reference returns the processed distribution of one row, computed on the
// host with sorting, in float64 from the float32 processed logits.
func reference(logits []float32, s Settings, present []bool) []float64 {
	p, _ := referenceKept(logits, s, present)
	return p
}

// referenceKept returns reference's distribution and the tokens the filters
// keep (a kept token's probability may underflow to 0).
func referenceKept(logits []float32, s Settings, present []bool) ([]float64, []bool) {
	v := len(logits)
	x := make([]float64, v)
	for i, l := range logits {
		if present[i] && l > 0 {
			l /= s.RepetitionPenalty
		} else if present[i] {
			l *= s.RepetitionPenalty
		}
		x[i] = float64(l)
	}
	if s.Temperature < GreedyTemperature {
		p := make([]float64, v)
		keep := make([]bool, v)
		best := slices.Index(x, slices.Max(x))
		p[best], keep[best] = 1, true
		return p, keep
	}
	keep := make([]bool, v)
	for i := range x {
		x[i] = float64(float32(x[i]) / s.Temperature)
		keep[i] = !math.IsInf(x[i], -1)
	}
	keepAtLeast := func(threshold float64) {
		for i := range x {
			keep[i] = keep[i] && x[i] >= threshold
		}
	}
	if s.TopK > 0 && s.TopK < v {
		sorted := slices.Sorted(slices.Values(x))
		keepAtLeast(sorted[v-s.TopK])
	}
	if s.TopP < 1 {
		p := softmax(x, keep)
		order := make([]int, v)
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return -cmpFloat(x[a], x[b]) })
		mass := 0.0
		for _, i := range order {
			mass += p[i]
			if mass >= float64(s.TopP) {
				keepAtLeast(x[i])
				break
			}
		}
	}
	if s.MinP > 0 {
		p := softmax(x, keep)
		best := slices.Max(p)
		for i := range x {
			keep[i] = keep[i] && p[i] >= float64(s.MinP)*best
		}
	}
	return softmax(x, keep), keep
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func softmax(x []float64, keep []bool) []float64 {
	best := math.Inf(-1)
	for i := range x {
		if keep[i] {
			best = max(best, x[i])
		}
	}
	p := make([]float64, len(x))
	sum := 0.0
	for i := range x {
		if keep[i] {
			p[i] = math.Exp(x[i] - best)
			sum += p[i]
		}
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// chiSquare001 are the chi-square critical values at p = 0.001 for 1..7 degrees of freedom.
var chiSquare001 = []float64{0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32}

func TestDistributionMatchesProcessedDistribution(t *testing.T) {
	base := []float32{2.0, 1.5, 0.3, -0.7, 1.1, -2.0, 0.0, 0.8}
	present := []bool{true, false, false, true, false, false, true, false}
	none := make([]bool, len(base))
	cases := []struct {
		name     string
		settings Settings
		presence []bool
		support  int // tokens the reference keeps: proves the filter bites
	}{
		{"temperature", Settings{Temperature: 0.7, TopP: 1, RepetitionPenalty: 1}, none, 8},
		{"top-k", Settings{Temperature: 1, TopK: 3, TopP: 1, RepetitionPenalty: 1}, none, 3},
		{"top-p", Settings{Temperature: 1.3, TopP: 0.75, RepetitionPenalty: 1}, none, 4},
		{"min-p", Settings{Temperature: 1, TopP: 1, MinP: 0.2, RepetitionPenalty: 1}, none, 4},
		{"repetition penalty", Settings{Temperature: 1, TopP: 1, RepetitionPenalty: 1.8}, present, 8},
		{"all stages", Settings{Temperature: 0.9, TopK: 6, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.3}, present, 5},
	}
	const draws = 20000
	var logits [][]float32
	var rows []Settings
	var presence [][]bool
	for _, c := range cases {
		for range draws {
			logits = append(logits, base)
			rows = append(rows, c.settings)
			presence = append(presence, c.presence)
		}
	}
	// The same draws with an RNG state (Sample) and with keyed uniforms
	// (SampleUniform over KeyedUniform: row r is stream r, at draw r%7).
	keys, drawNo := make([][2]int32, len(rows)), make([]int32, len(rows))
	for r := range rows {
		keys[r], drawNo[r] = StreamKey(42, uint64(r)), int32(r%7)
	}
	outs := map[string]outputs{"rng": sampleRows(t, logits, rows, presence, 42), "keyed": sampleKeyed(t, logits, rows, presence, keys, drawNo)}
	raw := softmax(toFloat64(base), []bool{true, true, true, true, true, true, true, true})

	for _, mode := range []string{"rng", "keyed"} {
		out := outs[mode]
		for ci, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				want := reference(base, c.settings, c.presence)
				support := 0
				for _, p := range want {
					if p > 0 {
						support++
					}
				}
				if support != c.support {
					t.Fatalf("reference keeps %d tokens, the case expects %d: %v", support, c.support, want)
				}
				counts := make([]int, len(base))
				for r := ci * draws; r < (ci+1)*draws; r++ {
					id := out.ids[r]
					counts[id]++
					if want[id] == 0 {
						t.Fatalf("row %d drew excluded token %d", r, id)
					}
					if d := math.Abs(float64(out.samplerLP[r]) - math.Log(want[id])); d > 1e-4 {
						t.Fatalf("row %d: sampler log-prob %v, want %v", r, out.samplerLP[r], math.Log(want[id]))
					}
					if d := math.Abs(float64(out.policyLP[r]) - math.Log(raw[id])); d > 1e-5 {
						t.Fatalf("row %d: policy log-prob %v, want %v", r, out.policyLP[r], math.Log(raw[id]))
					}
				}
				for i, lp := range out.logProbs[ci*draws] {
					if got, w := math.Exp(float64(lp)), want[i]; math.Abs(got-w) > 1e-5 {
						t.Fatalf("LogProbs token %d: p = %v, want %v", i, got, w)
					}
				}
				chi2 := 0.0
				for i, p := range want {
					if p > 0 {
						e := p * draws
						chi2 += (float64(counts[i]) - e) * (float64(counts[i]) - e) / e
					}
				}
				if chi2 > chiSquare001[support-1] {
					t.Errorf("chi-square %.2f > %.2f (df %d): counts %v, expected probabilities %v",
						chi2, chiSquare001[support-1], support-1, counts, want)
				}
				t.Logf("chi-square %.2f (df %d, critical %.2f): counts %v", chi2, support-1, chiSquare001[support-1], counts)
			})
		}
	}
}

func toFloat64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func TestGreedyAtTemperatureZero(t *testing.T) {
	logits := [][]float32{
		{0.1, 3.0, 2.9, -1},
		{0.1, 3.0, 2.9, -1}, // penalty 2 on token 1 makes token 2 the best
		{1, 5, 5, 0},        // tie: the lowest id
		{-3, -1, -2, -1.5},  // penalty on token 1 (negative: multiplied) makes token 3 the best
	}
	presence := [][]bool{{false, false, false, false}, {false, true, false, false}, {false, false, false, false}, {false, true, false, false}}
	greedy := Settings{Temperature: 0, TopK: 1, TopP: 0.5, MinP: 0.5, RepetitionPenalty: 1}
	withPenalty := greedy
	withPenalty.RepetitionPenalty = 2
	tiny := greedy
	tiny.Temperature = GreedyTemperature / 2
	rows := []Settings{greedy, withPenalty, tiny, withPenalty}
	want := []int32{1, 2, 1, 3}
	for seed := range int64(3) {
		out := sampleRows(t, logits, rows, presence, seed)
		if !slices.Equal(out.ids, want) {
			t.Fatalf("seed %d: greedy ids %v, want %v", seed, out.ids, want)
		}
		for r, id := range out.ids {
			if out.samplerLP[r] != 0 {
				t.Errorf("row %d: greedy sampler log-prob %v, want 0", r, out.samplerLP[r])
			}
			raw := softmax(toFloat64(logits[r]), []bool{true, true, true, true})
			if d := math.Abs(float64(out.policyLP[r]) - math.Log(raw[id])); d > 1e-5 {
				t.Errorf("row %d: policy log-prob %v, want %v (raw logits, no penalty)", r, out.policyLP[r], math.Log(raw[id]))
			}
		}
	}
}

func TestSeedDeterminism(t *testing.T) {
	const rows, vocab = 500, 16
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([][]float32, rows)
	presence := make([][]bool, rows)
	settings := make([]Settings, rows)
	for r := range logits {
		logits[r] = make([]float32, vocab)
		for i := range logits[r] {
			logits[r][i] = float32(rng.NormFloat64())
		}
		presence[r] = make([]bool, vocab)
		settings[r] = Plain()
	}
	a := sampleRows(t, logits, settings, presence, 7)
	b := sampleRows(t, logits, settings, presence, 7)
	c := sampleRows(t, logits, settings, presence, 8)
	if !slices.Equal(a.ids, b.ids) {
		t.Fatal("the same seed drew different ids")
	}
	same := 0
	for r := range a.ids {
		if a.ids[r] == c.ids[r] {
			same++
		}
	}
	// Two independent draws over 16 tokens agree on about 1/6 of rows here.
	if same > rows/2 {
		t.Fatalf("seeds 7 and 8 agree on %d of %d rows", same, rows)
	}
	if slices.Equal(a.stateAfter.Value().([]uint64), mustState(t, 7).Value().([]uint64)) {
		t.Fatal("the RNG state did not advance")
	}
}

func mustState(t testing.TB, seed int64) *tensors.Tensor {
	s, err := graph.RNGStateFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestThresholdsAreExact checks the kept sets of top-k and top-p against a
// sort on rows with extreme values, ties, denormals and infinities, and that
// many draws never leave them.
func TestThresholdsAreExact(t *testing.T) {
	const vocab = 300
	rng := rand.New(rand.NewPCG(3, 4))
	special := []float32{float32(math.Inf(-1)), -1e30, 1e30, 1e-40, -1e-40, 2e-40, 0, float32(math.Copysign(0, -1)),
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1, math.Nextafter32(1, 2), math.Nextafter32(1, 0)}
	var logits [][]float32
	var rows []Settings
	var presence [][]bool
	for r := range 60 {
		row := make([]float32, vocab)
		for i := range row {
			switch rng.IntN(4) {
			case 0:
				if r%2 == 0 { // top-k rows; top-p rows would put all their mass on 1e30
					row[i] = special[rng.IntN(len(special))]
				} else { // -Inf and neighbours of the tied values
					row[i] = []float32{float32(math.Inf(-1)), math.Nextafter32(2, 3), math.Nextafter32(2, 1), 1e-40}[rng.IntN(4)]
				}
			case 1:
				row[i] = float32(rng.IntN(5)) // ties
			default:
				row[i] = float32(rng.NormFloat64() * 3)
			}
		}
		s := Plain()
		if r%2 == 0 {
			s.TopK = 1 + rng.IntN(vocab)
		} else {
			s.TopP = float32(rng.Float64())
			for s.TopP == 0 {
				s.TopP = float32(rng.Float64())
			}
		}
		for range 50 { // many draws of each row
			logits = append(logits, row)
			rows = append(rows, s)
			presence = append(presence, make([]bool, vocab))
		}
	}
	out := sampleRows(t, logits, rows, presence, 11)
	for r := 0; r < len(rows); r += 50 {
		_, want := referenceKept(logits[r], rows[r], presence[r])
		for i, lp := range out.logProbs[r] {
			if kept := !math.IsInf(float64(lp), -1); kept != want[i] {
				t.Fatalf("row %d (%+v): token %d (logit %g) kept %v, want %v", r, rows[r], i, logits[r][i], kept, want[i])
			}
		}
		for d := r; d < r+50; d++ {
			if !want[out.ids[d]] {
				t.Fatalf("row %d (%+v): drew excluded token %d", d, rows[r], out.ids[d])
			}
		}
	}
}

func TestTopKKeepsTies(t *testing.T) {
	logits := [][]float32{{1, 3, 2, 2, 0}}
	s := Plain()
	s.TopK = 2
	out := sampleRows(t, logits, []Settings{s}, [][]bool{make([]bool, 5)}, 1)
	var kept []int
	for i, lp := range out.logProbs[0] {
		if !math.IsInf(float64(lp), -1) {
			kept = append(kept, i)
		}
	}
	if !slices.Equal(kept, []int{1, 2, 3}) {
		t.Fatalf("top-2 of %v kept %v, want [1 2 3] (the tie with the 2nd value kept)", logits[0], kept)
	}
}

func TestMark(t *testing.T) {
	for _, presence := range []*tensors.Tensor{
		tensors.FromValue([][]bool{{false, true, false}, {false, false, false}}),
		tensors.FromValue([][]float32{{0, 1, 0}, {0, 0, 0}}),
	} {
		exec, err := graph.NewExec(cpu(t), func(p, ids *graph.Node) *graph.Node {
			return graph.ConvertDType(Mark(p, ids), dtypes.Float32)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec1(presence, tensors.FromValue([]int32{0, 2}))
		if err != nil {
			t.Fatal(err)
		}
		want := [][]float32{{1, 1, 0}, {0, 0, 1}}
		got := out.Value().([][]float32)
		for r := range want {
			if !slices.Equal(got[r], want[r]) {
				t.Fatalf("Mark(%v, [0 2]) = %v, want %v", presence, got, want)
			}
		}
	}
}

func TestPresence(t *testing.T) {
	exec, err := graph.NewExec(cpu(t), func(ids, valid *graph.Node) *graph.Node { return Presence(ids, valid, 5) })
	if err != nil {
		t.Fatal(err)
	}
	ids := [][]int32{{1, 2, 2, -1}, {4, 3, 9, 0}}
	valid := [][]bool{{true, true, true, false}, {true, false, true, true}}
	out, err := exec.Exec1(tensors.FromValue(ids), tensors.FromValue(valid))
	if err != nil {
		t.Fatal(err)
	}
	// Row 1: 3 is padding and 9 is out of the vocabulary.
	want := [][]bool{{false, true, true, false, false}, {true, false, false, false, true}}
	got := out.Value().([][]bool)
	for r := range want {
		if !slices.Equal(got[r], want[r]) {
			t.Fatalf("Presence(%v, %v) = %v, want %v", ids, valid, got, want)
		}
	}
}

func TestShapeErrorsAreErrors(t *testing.T) {
	exec, err := graph.NewExec(cpu(t), func(logits, temp, state *graph.Node) *graph.Node {
		return Sample(logits, Params{Temperature: temp}, nil, state).IDs
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = exec.Exec(tensors.FromValue([][]float32{{1, 2}, {3, 4}}), tensors.FromValue([]float32{1, 1, 1}), mustState(t, 1))
	if err == nil || !strings.Contains(err.Error(), "sample: temperature") {
		t.Fatalf("temperature of the wrong length: error %v, want one naming temperature", err)
	}
}

func TestValidateAndPack(t *testing.T) {
	bad := map[string]Settings{
		"temperature":        {Temperature: -1, TopP: 1, RepetitionPenalty: 1},
		"top_k":              {Temperature: 1, TopK: -1, TopP: 1, RepetitionPenalty: 1},
		"top_p":              {Temperature: 1, TopP: 0, RepetitionPenalty: 1},
		"min_p":              {Temperature: 1, TopP: 1, MinP: 1.5, RepetitionPenalty: 1},
		"repetition_penalty": {Temperature: 1, TopP: 1, RepetitionPenalty: 0},
	}
	for name, s := range bad {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%+v: error %v, want one naming %s", s, err, name)
		}
	}
	if err := Plain().Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := Pack([]Settings{Plain(), bad["top_p"]})
	if err == nil || !strings.Contains(err.Error(), "sample: row 1: top_p") {
		t.Fatalf("Pack with a bad row 1: error %v", err)
	}
	cols, err := Pack([]Settings{Plain(), {Temperature: 0.5, TopK: 40, TopP: 0.9, MinP: 0.1, RepetitionPenalty: 1.1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := cols.TopK.Value().([]int32); !slices.Equal(got, []int32{0, 40}) {
		t.Fatalf("packed top_k %v", got)
	}
}

// BenchmarkSample times one step on the CPU backend at Qwen2-VL's
// vocabulary, B=64 and V=151936: temperature alone, with top-k, with top-p,
// and every stage (the graph leaves out the stages whose node is nil).
func BenchmarkSample(b *testing.B) {
	const batch, vocab = 64, 151936
	rng := rand.New(rand.NewPCG(5, 6))
	logits := make([][]float32, batch)
	presence := make([][]bool, batch)
	rows := make([]Settings, batch)
	for r := range logits {
		logits[r] = make([]float32, vocab)
		presence[r] = make([]bool, vocab)
		for i := range logits[r] {
			logits[r][i] = float32(rng.NormFloat64() * 4)
			presence[r][i] = rng.IntN(100) == 0
		}
		rows[r] = Settings{Temperature: 0.8, TopK: 50, TopP: 0.95, MinP: 0.02, RepetitionPenalty: 1.1}
	}
	cols, err := Pack(rows)
	if err != nil {
		b.Fatal(err)
	}
	args := []any{tensors.FromValue(logits), cols.Temperature, cols.TopK, cols.TopP, cols.MinP,
		cols.RepetitionPenalty, tensors.FromValue(presence), mustState(b, 1)}
	for _, stages := range []struct {
		name                string
		topK, topP, minPPen bool
	}{{"temperature", false, false, false}, {"top-k", true, false, false}, {"top-p", false, true, false}, {"all", true, true, true}} {
		b.Run(stages.name, func(b *testing.B) {
			exec, err := graph.NewExec(cpu(b), func(in []*graph.Node) []*graph.Node {
				p := Params{Temperature: in[1]}
				if stages.topK {
					p.TopK = in[2]
				}
				if stages.topP {
					p.TopP = in[3]
				}
				if stages.minPPen {
					p.MinP, p.RepetitionPenalty = in[4], in[5]
				}
				r := Sample(in[0], p, in[6], in[7])
				return []*graph.Node{r.IDs, r.SamplerLogProb, r.PolicyLogProb, r.RNGState}
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := exec.Exec(args...); err != nil { // compile outside the timing
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := exec.Exec(args...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKeyedUniform checks the keyed uniforms: inside (0, 1) with the
// moments of a uniform, every value of a row distinct, a row's values
// independent of the other rows of the batch and of its place in it, and
// different for another draw number or stream.
func TestKeyedUniform(t *testing.T) {
	const vocab = 4096
	keys := [][2]int32{StreamKey(1, 0), StreamKey(1, 1), StreamKey(2, 0), StreamKey(1, 0), StreamKey(1, 0)}
	draws := []int32{0, 0, 0, 1, 0} // row 4 repeats row 0
	run := func(order []int) [][]float32 {
		a, b, d := make([]int32, len(order)), make([]int32, len(order)), make([]int32, len(order))
		for i, r := range order {
			a[i], b[i], d[i] = keys[r][0], keys[r][1], draws[r]
		}
		exec, err := graph.NewExec(cpu(t), func(a, b, d *graph.Node) *graph.Node { return KeyedUniform(a, b, d, vocab) })
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(tensors.FromValue(a), tensors.FromValue(b), tensors.FromValue(d))
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Value().([][]float32)
	}
	u := run([]int{0, 1, 2, 3, 4})
	for r, row := range u[:4] {
		mean, sq := 0.0, 0.0
		seen := map[float32]bool{}
		for _, x := range row {
			if x <= 0 || x >= 1 {
				t.Fatalf("row %d: uniform %v outside (0, 1)", r, x)
			}
			seen[x] = true
			mean += float64(x) / vocab
			sq += float64(x) * float64(x) / vocab
		}
		// Mean 1/2 and variance 1/12, with standard errors 0.0045 and 0.0013.
		if v := sq - mean*mean; math.Abs(mean-0.5) > 0.025 || math.Abs(v-1.0/12) > 0.007 {
			t.Errorf("row %d: mean %.4f, variance %.4f; want 0.5, 0.0833", r, mean, v)
		}
		if len(seen) < vocab-5 { // 24-bit values: about 0.5 collisions expected
			t.Errorf("row %d: %d distinct values of %d", r, len(seen), vocab)
		}
	}
	if !slices.Equal(u[0], u[4]) {
		t.Error("the same stream and draw gave different uniforms in one batch")
	}
	for _, r := range []int{1, 2, 3} {
		same := 0
		for i := range u[0] {
			if u[0][i] == u[r][i] {
				same++
			}
		}
		if same > 2 {
			t.Errorf("row %d shares %d of %d values with row 0 (another stream or draw)", r, same, vocab)
		}
	}
	moved := run([]int{3, 0})
	if !slices.Equal(moved[1], u[0]) || !slices.Equal(moved[0], u[3]) {
		t.Error("a row's uniforms changed with its place in the batch or the batch size")
	}
}
