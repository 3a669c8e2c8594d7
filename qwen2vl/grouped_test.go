package qwen2vl

import (
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestGroupedLayerForms runs one grouped decoder layer (two groups of three
// rows, the second prompt left-padded, tails right-padded) on one flat token
// matrix joined and split by concatenation and slices (the XLA form, whose
// forward the pure-Go backend runs) and per part (the CPU form): both give
// the same residual streams, which differ from the layer's input.
func TestGroupedLayerForms(t *testing.T) {
	const gr, n, pl, tl = 2, 3, 4, 3
	b := gr * n
	cfg := Config{Text: TextConfig{VocabSize: 16, HiddenSize: 32, IntermediateSize: 48, NumLayers: 1, NumHeads: 4, NumKVHeads: 2,
		RMSNormEps: 1e-6, RopeTheta: 1e4, MRopeSection: []int{1, 1, 2}, MaxPositions: 64}}
	hid, kvd := cfg.Text.HiddenSize, cfg.Text.NumKVHeads*cfg.Text.HeadDim()
	shapes := map[string][]int{
		"input_layernorm.weight": {hid}, "post_attention_layernorm.weight": {hid},
		"self_attn.q_proj.weight": {hid, hid}, "self_attn.q_proj.bias": {hid},
		"self_attn.k_proj.weight": {kvd, hid}, "self_attn.k_proj.bias": {kvd},
		"self_attn.v_proj.weight": {kvd, hid}, "self_attn.v_proj.bias": {kvd},
		"self_attn.o_proj.weight": {hid, hid},
		"mlp.gate_proj.weight":    {cfg.Text.IntermediateSize, hid}, "mlp.up_proj.weight": {cfg.Text.IntermediateSize, hid},
		"mlp.down_proj.weight": {hid, cfg.Text.IntermediateSize},
	}
	wave := func(k int, dims ...int) []float32 {
		size := 1
		for _, d := range dims {
			size *= d
		}
		x := make([]float32, size)
		for i := range x {
			x[i] = float32(math.Sin(float64(i*(k+3))*0.37+float64(k))) * 0.3
		}
		return x
	}
	// Positions and validity: prompt row 1 starts at position 2 (left
	// padding); tail row r holds 1 + r%tl tokens.
	pos := func(rows, l, first int, valid func(r, j int) bool) ([]int32, []bool) {
		p, v := make([]int32, 3*rows*l), make([]bool, rows*l)
		for r := range rows {
			for j := range l {
				v[r*l+j] = valid(r, j)
				for ax := range 3 {
					p[(ax*rows+r)*l+j] = int32(first + j)
				}
			}
		}
		return p, v
	}
	pp, pv := pos(gr, pl, 0, func(r, j int) bool { return r == 0 || j >= 2 })
	tp, tv := pos(b, tl, pl, func(r, j int) bool { return j <= r%tl })
	out := MustExecOnceN(cpuBackend(t), func(pPos, pValid, tPos, tValid, hp, ht *Node) []*Node {
		g := hp.Graph()
		w := &Weights{Config: cfg, DType: dtypes.Float32, Params: map[string]*Node{}}
		for k, name := range slices.Sorted(maps.Keys(shapes)) {
			dims := shapes[name]
			w.Params[LayerPrefix(0)+name] = Reshape(Const(g, wave(k, dims...)), dims...)
		}
		in := GroupedInputs{Prompt: TextInputs{Positions: pPos, Valid: pValid}, Tail: TextInputs{Positions: tPos, Valid: tValid}}
		s := GroupedStream{Prompt: hp, Tail: ht}
		bySlices, byProducts := w.groupedLayerBy(0, in, s, true), w.groupedLayerBy(0, in, s, false) // flat, per part
		return []*Node{bySlices.Prompt, bySlices.Tail, byProducts.Prompt, byProducts.Tail}
	}, tensors.FromFlatDataAndDimensions(pp, 3, gr, pl), tensors.FromFlatDataAndDimensions(pv, gr, pl),
		tensors.FromFlatDataAndDimensions(tp, 3, b, tl), tensors.FromFlatDataAndDimensions(tv, b, tl),
		tensors.FromFlatDataAndDimensions(wave(100, gr, pl, hid), gr, pl, hid),
		tensors.FromFlatDataAndDimensions(wave(101, b, tl, hid), b, tl, hid))
	inputs := [][]float32{wave(100, gr, pl, hid), wave(101, b, tl, hid)}
	for part, name := range []string{"prompt", "tail"} {
		s, p := tensors.MustCopyFlatData[float32](out[part]), tensors.MustCopyFlatData[float32](out[2+part])
		if len(s) != len(inputs[part]) || len(p) != len(s) {
			t.Fatalf("%s: %d values flat, %d per part, want %d", name, len(s), len(p), len(inputs[part]))
		}
		worst := 0.0
		for i := range s {
			worst = max(worst, math.Abs(float64(s[i]-p[i])))
		}
		if worst > 1e-6 {
			t.Errorf("%s: the two forms differ by up to %g", name, worst)
		}
		moved := 0.0
		for i := range s {
			moved = max(moved, math.Abs(float64(s[i]-inputs[part][i])))
		}
		if moved < 1e-2 {
			t.Errorf("%s: the layer changed its residual stream by only %g", name, moved)
		}
		t.Logf("%s: flat vs per part differ by %g", name, worst)
	}
}
