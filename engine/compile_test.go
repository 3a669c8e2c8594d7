package engine

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mmft-go/mmft/qwen2vl"
)

// TestConcurrentCompile generates from prompts with images of several
// sizes, prefilled two at a time (prefill batches of different shapes),
// compiling as each program is first used (CompileWorkers 1) and compiling
// everything up front concurrently (CompileWorkers 4): the completions must
// be the same, the same programs compiled (the shapes compiled up front are
// the ones used: none extra), and with 4 workers every program must be
// compiled before the first decode call returns.
func TestConcurrentCompile(t *testing.T) {
	e0, cfg := smallEngine(t, Options{})
	rng := rand.New(rand.NewPCG(21, 22))
	grids := [][]qwen2vl.Grid{{{T: 1, H: 2, W: 2}}, {{T: 1, H: 4, W: 6}, {T: 1, H: 2, W: 2}}, nil, {{T: 1, H: 8, W: 8}}, {{T: 1, H: 6, W: 12}}}
	var reqs []Request
	for i, gr := range grids {
		reqs = append(reqs, Request{Prompt: randomPrompt(cfg, rng, 3+5*i, gr), N: 2,
			Sampling: Sampling{Temperature: 1, MaxNewTokens: 4, IgnoreEOS: true, Seed: 3}})
	}
	var want []Completion
	var wantPrograms map[string]int
	for _, workers := range []int{1, 4} {
		e, err := New(e0.m, Options{Slots: 3, PrefillBatch: 2, CompileWorkers: workers})
		if err != nil {
			t.Fatal(err)
		}
		atFirst := -1
		got, err := e.Generate(context.Background(), reqs, func(Progress) {
			if atFirst < 0 {
				atFirst = e.Runner().Stats().Programs
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		st := e.Runner().Stats()
		t.Logf("workers %d: %d programs (%d before the first decode call returned), %v", workers, st.Programs, atFirst, st.ByProgram)
		if workers == 1 {
			want, wantPrograms = got, st.ByProgram
			if atFirst == st.Programs {
				t.Errorf("one worker: every program compiled before the first decode call; the test's prefill batches should need more later")
			}
			continue
		}
		for i := range got {
			if !slices.Equal(got[i].IDs, want[i].IDs) || !slices.Equal(got[i].PolicyLogProbs, want[i].PolicyLogProbs) {
				t.Errorf("completion %d: %v with concurrent compiles, %v without", i, got[i].IDs, want[i].IDs)
			}
		}
		for name, n := range st.ByProgram {
			if n != wantPrograms[name] {
				t.Errorf("program %s compiled %d times with concurrent compiles, %d without", name, n, wantPrograms[name])
			}
		}
		if atFirst != st.Programs {
			t.Errorf("%d programs compiled before the first decode call returned, %d in all: not all compiled up front", atFirst, st.Programs)
		}
	}
}

// TestVisionShapes checks that the shapes compiled up front for a batch's
// images are the shapes of the vision calls qwen2vl.PlanVision plans.
func TestVisionShapes(t *testing.T) {
	e, cfg := smallEngine(t, Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	pd := cfg.Vision.PatchDim()
	for range 20 {
		var grids []qwen2vl.Grid
		total := 0
		for range 1 + rng.IntN(6) {
			g := qwen2vl.Grid{T: 1 + rng.IntN(2), H: 2 * (1 + rng.IntN(20)), W: 2 * (1 + rng.IntN(20))}
			grids = append(grids, g)
			total += g.T * g.H * g.W
		}
		plan, err := qwen2vl.PlanVision(cfg.Vision, make([]float32, total*pd), grids, e.patchBucket, frameBucket, rowBucket)
		if err != nil {
			t.Fatal(err)
		}
		var planned [][2]int
		for _, c := range plan.Calls {
			planned = append(planned, [2]int{c.Frames, c.Patches})
		}
		if got := e.visionShapes(grids); !slices.Equal(got, planned) {
			t.Fatalf("grids %v: shapes %v, PlanVision's calls %v", grids, got, planned)
		}
	}
}

// TestVisionChunks runs seven images through the vision tower at once — six
// of one patch bucket (two calls of four frames, the second padded) and one
// of another — and checks that their features equal each image's alone.
func TestVisionChunks(t *testing.T) {
	e, cfg := smallEngine(t, Options{})
	rng := rand.New(rand.NewPCG(7, 8))
	pd := cfg.Vision.PatchDim()
	grids := []qwen2vl.Grid{{T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 8}, {T: 1, H: 4, W: 4}, {T: 1, H: 8, W: 12}, {T: 1, H: 8, W: 2}, {T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 6}}
	var all []float32
	var want []float32
	for _, g := range grids {
		px := make([]float32, g.T*g.H*g.W*pd)
		for i := range px {
			px[i] = float32(rng.NormFloat64())
		}
		all = append(all, px...)
		f, err := e.ImageFeatures(px, []qwen2vl.Grid{g})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range f.Value().([][]float32) {
			want = append(want, row...)
		}
	}
	if shapes := e.visionShapes(grids); len(shapes) != 3 {
		t.Fatalf("vision calls %v: want two calls of 4 frames and one of 1", shapes)
	}
	f, err := e.ImageFeatures(all, grids)
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for _, row := range f.Value().([][]float32) {
		got = append(got, row...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d feature values, want %d", len(got), len(want))
	}
	for i := range got {
		if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("feature value %d: %v together, %v alone", i, got[i], want[i])
		}
	}
}
