package qwen2vl

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPlanScratchReuse: plans made with a PlanScratch — whose buffers come
// back dirty from an earlier plan of other images, and whose rotary tables
// are reused — equal plans made without one, padding included.
func TestPlanScratchReuse(t *testing.T) {
	cfg := VisionConfig{Depth: 2, EmbedDim: 32, NumHeads: 4, MLPRatio: 4, InChannels: 3, PatchSize: 14, TemporalPatchSize: 2, SpatialMergeSize: 2, HiddenSize: 64, RopeTheta: 10000}
	pd := cfg.PatchDim()
	rng := rand.New(rand.NewPCG(3, 4))
	images := func(grids []Grid) [][]float32 {
		var out [][]float32
		for _, g := range grids {
			px := make([]float32, g.T*g.H*g.W*pd)
			for i := range px {
				px[i] = rng.Float32() + 1 // never zero: stale values would show
			}
			out = append(out, px)
		}
		return out
	}
	patches := func(n int) int { return (n + 15) / 16 * 16 }
	frames := func(n int) int { return 3 }
	rows := func(n int) int { return n + 5 }
	var s PlanScratch
	for round, grids := range [][]Grid{
		{{T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 6}, {T: 2, H: 4, W: 4}},
		{{T: 1, H: 2, W: 2}, {T: 1, H: 4, W: 4}}, // fewer patches: the reused buffers have stale tails
		{{T: 1, H: 6, W: 4}, {T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 6}, {T: 1, H: 2, W: 2}},
	} {
		imgs := images(grids)
		want, err := PlanImages(cfg, imgs, grids, patches, frames, rows)
		if err != nil {
			t.Fatal(err)
		}
		got, err := PlanImagesWith(&s, cfg, imgs, grids, patches, frames, rows)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Calls) != len(want.Calls) || got.Rows != want.Rows || got.Tokens != want.Tokens {
			t.Fatalf("round %d: %d calls, %d rows, %d tokens; want %d, %d, %d", round, len(got.Calls), got.Rows, got.Tokens, len(want.Calls), want.Rows, want.Tokens)
		}
		for i, c := range got.Calls {
			w := want.Calls[i]
			if !slices.Equal(c.Pixels, w.Pixels) || !slices.Equal(c.Cos, w.Cos) || !slices.Equal(c.Sin, w.Sin) || !slices.Equal(c.Valid, w.Valid) || !slices.Equal(c.Dest, w.Dest) {
				t.Fatalf("round %d: call %d differs from the plan made without a scratch", round, i)
			}
		}
		// Dirty the buffers before they go back, as a caller may.
		for _, c := range got.Calls {
			for k := range c.Pixels {
				c.Pixels[k] = -7
			}
		}
		got.Release(&s)
		if got.Calls[0].Pixels != nil {
			t.Fatalf("round %d: Release left the plan's pixels in place", round)
		}
	}
	// Many plans of many calls: the scratch keeps a bounded number of buffers.
	for range 3 {
		grids := slices.Repeat([]Grid{{T: 1, H: 4, W: 4}}, 3*(maxFreeBuffers+1))
		plan, err := PlanImagesWith(&s, cfg, images(grids), grids, patches, frames, rows)
		if err != nil {
			t.Fatal(err)
		}
		plan.Release(&s)
		if len(s.free) > maxFreeBuffers {
			t.Fatalf("scratch keeps %d buffers, want ≤ %d", len(s.free), maxFreeBuffers)
		}
	}
	if len(s.free) == 0 || len(s.rope) == 0 {
		t.Errorf("scratch kept %d buffers and %d rotary tables, want some of each", len(s.free), len(s.rope))
	}
}
