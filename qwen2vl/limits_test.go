package qwen2vl

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

func tinyLimitsConfig() Config {
	var c Config
	c.Text = TextConfig{VocabSize: 1024, HiddenSize: 64, IntermediateSize: 128, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, MRopeSection: []int{2, 3, 3}, MaxPositions: 4096}
	c.Vision = VisionConfig{Depth: 2, EmbedDim: 32, NumHeads: 4, MLPRatio: 4, InChannels: 3, PatchSize: 14, TemporalPatchSize: 2, SpatialMergeSize: 2, HiddenSize: 64}
	return c
}

// TestForwardBytes checks the estimate against what was seen: the tiny model
// on [1, 20000] tokens was killed by the kernel's OOM killer at about 24 GB,
// while [2, 20] tokens runs in a few megabytes.
func TestForwardBytes(t *testing.T) {
	cfg := tinyLimitsConfig()
	long := ForwardBytes(cfg, Batch{InputIDs: [][]int32{make([]int32, 20000)}}, dtypes.Float32)
	if long < 15<<30 || long > 40<<30 {
		t.Errorf("[1, 20000] tokens: estimate %d bytes, want between 15 and 40 GiB", long)
	}
	small := ForwardBytes(cfg, Batch{InputIDs: [][]int32{make([]int32, 20), make([]int32, 20)}, Grids: []Grid{{1, 4, 4}}}, dtypes.Float32)
	if small <= 0 || small > 64<<20 {
		t.Errorf("[2, 20] tokens: estimate %d bytes", small)
	}
	huge := ForwardBytes(cfg, Batch{InputIDs: [][]int32{make([]int32, 1)}, Grids: []Grid{{1, 1 << 20, 1 << 20}}}, dtypes.Float32)
	if huge != -1 {
		t.Errorf("overflowing estimate: %d, want -1", huge)
	}
}

func TestCheckBatch(t *testing.T) {
	cfg := tinyLimitsConfig()
	ok := Batch{InputIDs: [][]int32{{1, 2, 3}, {4, 5, 6}}, AttentionMask: [][]int32{{0, 1, 1}, {1, 1, 1}}}
	if err := CheckBatch(cfg, ok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		b    Batch
		want string
	}{
		{Batch{}, "empty"},
		{Batch{InputIDs: [][]int32{{1, 2}, {1}}}, "row 1 has 1 tokens"},
		{Batch{InputIDs: [][]int32{make([]int32, 4097)}}, "max_position_embeddings is 4096"},
		{Batch{InputIDs: [][]int32{{1}}, AttentionMask: [][]int32{{-1}}}, "= -1"},
		{Batch{InputIDs: [][]int32{{1}}, AttentionMask: [][]int32{{0}}}, "all zeros"},
		{Batch{InputIDs: [][]int32{{1}}, PixelValues: []float32{0, float32(math.Inf(1))}}, "pixel_values[0][1] is +Inf"},
	} {
		if err := CheckBatch(cfg, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.b, err, c.want)
		}
	}
}

func TestProblemsError(t *testing.T) {
	var ps []string
	for i := range 50 {
		ps = append(ps, "missing a.b."+strings.Repeat("x", i)+" [1]")
	}
	ps = append(ps, "w has shape [1] , the config needs [2]", "unexpected z")
	msg := problemsError("checkpoint", ps).Error()
	for _, want := range []string{"checkpoint (52 problems)", "missing: 50", "… and 47 more", "unexpected: 1", "unexpected z"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n"); n > 12 {
		t.Errorf("%d lines", n)
	}
}
