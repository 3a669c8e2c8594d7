package qwen2vl

import (
	"math"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

var (
	backendOnce sync.Once
	testBackend backends.Backend
	backendErr  error
)

// cpuBackend returns the pure-Go backend with explicit parallelism (its
// default deadlocks on small machines).
func cpuBackend(t testing.TB) backends.Backend {
	backendOnce.Do(func() { testBackend, backendErr = simplego.New("parallelism=4") })
	if backendErr != nil {
		t.Fatalf("creating the CPU backend: %v", backendErr)
	}
	return testBackend
}

// TestMRopeGraphMatchesHost checks the in-graph M-RoPE tables against the
// host reference MRopeTables on the tiny fixture's positions.
func TestMRopeGraphMatchesHost(t *testing.T) {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := ReadBatch(f)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := PrepareText(cfg, b.InputIDs, b.AttentionMask, b.Grids)
	if err != nil {
		t.Fatal(err)
	}
	run := execution.New(cpuBackend(t), execution.Placement{})
	prog := execution.NewProgram("mropetest", func(_ any, in []*Node) []*Node {
		w := &Weights{Config: cfg}
		c, s := w.MRope(in[0])
		return []*Node{c, s}
	})
	outs, err := run.Run(prog, nil, tensors.FromFlatDataAndDimensions(tb.Positions, 3, tb.B, tb.L))
	if err != nil {
		t.Fatal(err)
	}
	cos, sin := MRopeTables(cfg.Text, tb.PositionIDs)
	for i, want := range [][]float32{cos, sin} {
		got, _ := tensors.CopyFlatData[float32](outs[i])
		worst := 0.0
		for k := range got {
			worst = max(worst, math.Abs(float64(got[k]-want[k])))
		}
		if len(got) != len(want) || worst > 1e-6 {
			t.Errorf("graph M-RoPE table %d differs from MRopeTables by %g (%d vs %d values)", i, worst, len(got), len(want))
		}
	}
}

// mediumConfig is a Qwen2-VL of medium size (hidden 512, 8 heads / 2 KV
// heads, vocabulary 4096) with the given depths.
func mediumConfig(layers, visionDepth int) Config {
	return Config{
		Text: TextConfig{VocabSize: 4096, HiddenSize: 512, IntermediateSize: 1536, NumLayers: layers, NumHeads: 8, NumKVHeads: 2,
			RMSNormEps: 1e-6, RopeTheta: 1e6, MRopeSection: []int{8, 12, 12}, MaxPositions: 4096, TieWordEmbeddings: true},
		Vision: VisionConfig{Depth: visionDepth, EmbedDim: 256, NumHeads: 4, MLPRatio: 4, InChannels: 3, PatchSize: 14,
			TemporalPatchSize: 2, SpatialMergeSize: 2, HiddenSize: 512, RopeTheta: 10000},
		ImageTokenID: 4000, VideoTokenID: 4001, VisionStartTokenID: 4002, VisionEndTokenID: 4003, EOSTokenID: 4004, BOSTokenID: 4005,
	}
}

// TestRotateHalfForms: the slice form (XLA) and the ±1 product (pure-Go CPU
// backend) of rotate_half agree exactly, and equal concat(−x₂, x₁).
func TestRotateHalfForms(t *testing.T) {
	be := cpuBackend(t)
	x := make([]float32, 2*3*8)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*1.7)) * 3
	}
	out := MustExecOnceN(be, func(v *Node) []*Node {
		return []*Node{rotateHalfBy(v, true), rotateHalfBy(v, false)}
	}, tensors.FromFlatDataAndDimensions(x, 2, 3, 8))
	bySlices, byProduct := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
	for i := range x {
		row, j := i/8*8, i%8
		want := x[row+(j+4)%8]
		if j < 4 {
			want = -want
		}
		if bySlices[i] != want || byProduct[i] != want {
			t.Fatalf("element %d: slices %g, product %g, want %g", i, bySlices[i], byProduct[i], want)
		}
	}
}
