package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/qwen2vl"
)

// smallConfig is a random tiny Qwen2-VL: hidden 64, 4 heads over kvHeads
// key/value heads, vocabulary 512, one vision block.
func smallConfig(layers, kvHeads int) qwen2vl.Config {
	return qwen2vl.Config{
		Text: qwen2vl.TextConfig{VocabSize: 512, HiddenSize: 64, IntermediateSize: 128, NumLayers: layers, NumHeads: 4, NumKVHeads: kvHeads,
			RMSNormEps: 1e-6, RopeTheta: 10000, MRopeSection: []int{2, 3, 3}, MaxPositions: 4096, TieWordEmbeddings: true},
		Vision: qwen2vl.VisionConfig{Depth: 1, EmbedDim: 32, NumHeads: 2, MLPRatio: 2, InChannels: 3, PatchSize: 14,
			TemporalPatchSize: 2, SpatialMergeSize: 2, HiddenSize: 64, RopeTheta: 10000},
		ImageTokenID: 500, VideoTokenID: 501, VisionStartTokenID: 502, VisionEndTokenID: 503, EOSTokenID: 504, BOSTokenID: 505,
	}
}

// randomPrompt builds a prompt of text tokens around the given images.
func randomPrompt(cfg qwen2vl.Config, rng *rand.Rand, text int, grids []qwen2vl.Grid) Prompt {
	var p Prompt
	word := func() int32 { return int32(rng.IntN(cfg.ImageTokenID)) }
	for range text {
		p.IDs = append(p.IDs, word())
	}
	pd := cfg.Vision.PatchDim()
	for _, g := range grids {
		p.IDs = append(p.IDs, int32(cfg.VisionStartTokenID))
		for range g.T * g.H * g.W / 4 {
			p.IDs = append(p.IDs, int32(cfg.ImageTokenID))
		}
		p.IDs = append(p.IDs, int32(cfg.VisionEndTokenID), word(), word())
		px := make([]float32, g.T*g.H*g.W*pd)
		for i := range px {
			px[i] = float32(rng.NormFloat64())
		}
		p.Images = append(p.Images, Image{Pixels: px, Grid: g})
	}
	return p
}

// TestCachedGenerationMatchesFullForward generates with the KV cache on
// random tiny models — left padding (prompts of different lengths), several
// images per row, text-only rows, fewer slots than sequences so that slots
// are refilled mid-run, different lengths per request, one or several steps
// per device call, slots grouped by prompt with a shared prefix — and
// recomputes every
// completion with a full forward over prompt + completion: each generated
// token's policy log-prob must match, greedy tokens must be the argmax, and at
// temperature 1 the sampler's log-prob must equal the policy's.
func TestCachedGenerationMatchesFullForward(t *testing.T) {
	for ci, c := range []struct {
		layers, kvHeads, steps int
		shared                 bool
	}{{2, 2, 1, false}, {1, 1, 1, false}, {2, 1, 3, false}, {2, 2, 1, true}, {1, 1, 2, true}} {
		t.Run(fmt.Sprintf("layers%d_kv%d_steps%d_shared%v", c.layers, c.kvHeads, c.steps, c.shared), func(t *testing.T) {
			cfg := smallConfig(c.layers, c.kvHeads)
			src := randomBF16Source{specs: map[string][]int{}, seed: uint64(ci + 3), std: 0.3}
			for _, s := range cfg.ParamSpecs() {
				src.specs[s.Name] = s.Shape
			}
			model, err := qwen2vl.LoadFrom(cpuBackend(t), cfg, src, qwen2vl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			e, err := New(model, Options{Slots: 3, PrefillBatch: 2, StepsPerCall: c.steps, SharedPrefix: c.shared})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(ci), 9))
			prompts := []Prompt{
				randomPrompt(cfg, rng, 5, []qwen2vl.Grid{{T: 1, H: 4, W: 4}, {T: 1, H: 2, W: 6}}),
				randomPrompt(cfg, rng, 3, nil),
				randomPrompt(cfg, rng, 11, []qwen2vl.Grid{{T: 1, H: 6, W: 4}}),
				randomPrompt(cfg, rng, 1, nil),
			}
			for _, temp := range []float32{0, 1} {
				var reqs []Request
				want := 0
				for i, p := range prompts {
					n := 1 + i%2 // mixed N: one sequence per slot
					if c.shared {
						n = 3 // the same N: slots grouped by prompt
					}
					want += n
					reqs = append(reqs, Request{Prompt: p, N: n, Sampling: Sampling{Temperature: temp, MaxNewTokens: 3 + 2*i, IgnoreEOS: true, Seed: 5}})
				}
				comps, err := e.Generate(context.Background(), reqs, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(comps) != want {
					t.Fatalf("%d completions, want %d", len(comps), want)
				}
				for _, comp := range comps {
					checkAgainstForward(t, e, reqs[comp.Request], comp, temp)
				}
				if got := e.Runner().Stats().ByProgram["engine.admit_group"]; (got > 0) != c.shared {
					t.Errorf("shared prefix %v: %d group admission programs compiled", c.shared, got)
				}
			}
		})
	}
}

// checkAgainstForward recomputes a completion with one full forward.
func checkAgainstForward(t *testing.T, e *Engine, r Request, c Completion, temp float32) {
	t.Helper()
	if len(c.IDs) != r.Sampling.MaxNewTokens || c.Finish != FinishLength {
		t.Fatalf("request %d/%d: %d ids finished by %q, want %d by length", c.Request, c.Index, len(c.IDs), c.Finish, r.Sampling.MaxNewTokens)
	}
	full := Prompt{IDs: append(append([]int32(nil), r.Prompt.IDs...), c.IDs...), Images: r.Prompt.Images}
	out, err := e.Forward(batchOf([]Prompt{full}, len(full.IDs), 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := tensors.CopyFlatData[float32](out.Logits)
	if err != nil {
		t.Fatal(err)
	}
	v := e.m.Config.Text.VocabSize
	lp := len(r.Prompt.IDs)
	for k, id := range c.IDs {
		row := logits[(lp-1+k)*v : (lp+k)*v]
		top, lse := math.Inf(-1), 0.0
		for _, x := range row {
			top = max(top, float64(x))
		}
		for _, x := range row {
			lse += math.Exp(float64(x) - top)
		}
		want := float64(row[id]) - top - math.Log(lse)
		if d := math.Abs(want - float64(c.PolicyLogProbs[k])); d > 1e-4 {
			t.Errorf("request %d/%d token %d: policy log-prob %g, full forward %g", c.Request, c.Index, k, c.PolicyLogProbs[k], want)
		}
		if temp == 0 && float64(row[id]) < top-1e-4 {
			t.Errorf("request %d/%d token %d: greedy id %d has logit %g below the max %g", c.Request, c.Index, k, id, row[id], top)
		}
		if temp == 1 && math.Abs(float64(c.SamplerLogProbs[k]-c.PolicyLogProbs[k])) > 1e-4 {
			t.Errorf("request %d/%d token %d: at temperature 1 sampler log-prob %g ≠ policy %g", c.Request, c.Index, k, c.SamplerLogProbs[k], c.PolicyLogProbs[k])
		}
	}
}

// TestTrainBatchMatchesGeneration lays completions out as the trainer does
// (NewTrainBatch: prompts left-padded, completions right-padded, each
// prompt's images once) and checks that the trainer's log-probs
// (TokenLogProbs through SequenceLogProbs) equal the policy log-probs
// Generate returned.
func TestTrainBatchMatchesGeneration(t *testing.T) {
	e, cfg := smallEngine(t, Options{Slots: 4})
	rng := rand.New(rand.NewPCG(4, 4))
	prompts := []Prompt{
		randomPrompt(cfg, rng, 3, []qwen2vl.Grid{{T: 1, H: 4, W: 2}, {T: 1, H: 2, W: 2}}),
		randomPrompt(cfg, rng, 9, nil),
		randomPrompt(cfg, rng, 2, []qwen2vl.Grid{{T: 1, H: 2, W: 6}}),
	}
	var reqs []Request
	for i, p := range prompts {
		reqs = append(reqs, Request{Prompt: p, N: 2, Sampling: Sampling{Temperature: 1, MaxNewTokens: 2 + 2*i, IgnoreEOS: true, Seed: 9}})
	}
	comps, err := e.Generate(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := NewTrainBatch(cfg, prompts, comps, func(n int) int { return n + 3 })
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Grids) != 3 {
		t.Errorf("%d images in the train batch, want each prompt's once (3)", len(tb.Grids))
	}
	got, err := e.SequenceLogProbs(tb, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkTrainLogProbs(t, got, comps)
	for i, c := range comps {
		for k := len(c.IDs); k < tb.T; k++ {
			if got[i][k] != 0 || tb.Mask[i*tb.T+k] != 0 {
				t.Errorf("completion %d padding %d: log-prob %g, mask %g", i, k, got[i][k], tb.Mask[i*tb.T+k])
			}
		}
	}
}

// TestCompletionsIndependentOfSchedule generates the same sampled requests
// (stop ids that end completions at random lengths, so slots are refilled at
// different times) with different slot counts, steps per call (automatic
// included) and with and without a shared prefix: every completion must be
// the same, as each draws from its own stream (Sampling.Seed).
func TestCompletionsIndependentOfSchedule(t *testing.T) {
	e0, cfg := smallEngine(t, Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	prompts := []Prompt{
		randomPrompt(cfg, rng, 4, []qwen2vl.Grid{{T: 1, H: 2, W: 4}}),
		randomPrompt(cfg, rng, 7, nil),
		randomPrompt(cfg, rng, 2, []qwen2vl.Grid{{T: 1, H: 4, W: 4}}),
	}
	var stops []int32
	for id := range int32(40) {
		stops = append(stops, id)
	}
	var reqs []Request
	for i, p := range prompts {
		reqs = append(reqs, Request{Prompt: p, N: 6, Sampling: Sampling{Temperature: 1, TopP: 0.95, MaxNewTokens: 9, IgnoreEOS: true,
			StopIDs: stops, Seed: uint64(20 + i)}})
	}
	var want []Completion
	lengths := map[int]bool{}
	for _, o := range []Options{{Slots: 2, StepsPerCall: 1}, {Slots: 2, StepsPerCall: 3}, {Slots: 5}, {Slots: 18},
		{Slots: 7, StepsPerCall: 2}, {Slots: 6, SharedPrefix: true}, {Slots: 12, StepsPerCall: 4, SharedPrefix: true}} {
		e, err := New(e0.m, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Generate(context.Background(), reqs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = got
			for _, c := range got {
				lengths[len(c.IDs)] = true
			}
			continue
		}
		for i, c := range got {
			w := want[i]
			if !slices.Equal(c.IDs, w.IDs) || c.Finish != w.Finish {
				t.Errorf("%+v: completion %d/%d: %v (%s), with one step per call over 2 slots %v (%s)", o, c.Request, c.Index, c.IDs, c.Finish, w.IDs, w.Finish)
				continue
			}
			for k := range c.IDs {
				if math.Abs(float64(c.PolicyLogProbs[k]-w.PolicyLogProbs[k])) > 1e-5 || math.Abs(float64(c.SamplerLogProbs[k]-w.SamplerLogProbs[k])) > 1e-5 {
					t.Errorf("%+v: completion %d/%d token %d: log-probs %g, %g; before %g, %g", o, c.Request, c.Index, k,
						c.SamplerLogProbs[k], c.PolicyLogProbs[k], w.SamplerLogProbs[k], w.PolicyLogProbs[k])
				}
			}
		}
	}
	// The stop ids must have ended completions at several lengths, or no
	// slot was refilled at a different time.
	if len(lengths) < 3 {
		t.Errorf("completion lengths %v: the stop ids did not vary them", lengths)
	}
}

// TestTrainBatchSampledVisionIDs checks that vision ids a model samples in a
// completion are laid out as the decoder read them — token embeddings at
// consecutive text positions, not image placeholders: near-uniform sampling
// emits image-pad ids and the trainer's log-probs still equal Generate's; a
// completion holding a vision start followed by an image pad (which would
// read as a second image) lays out as text too.
func TestTrainBatchSampledVisionIDs(t *testing.T) {
	e, cfg := smallEngine(t, Options{Slots: 8})
	rng := rand.New(rand.NewPCG(7, 7))
	prompts := []Prompt{randomPrompt(cfg, rng, 4, []qwen2vl.Grid{{T: 1, H: 2, W: 4}})}
	comps, err := e.Generate(context.Background(), []Request{{Prompt: prompts[0], N: 8,
		Sampling: Sampling{Temperature: 50, MaxNewTokens: 160, IgnoreEOS: true, Seed: 3}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sampled := 0
	for _, c := range comps {
		for _, id := range c.IDs {
			if id == int32(cfg.ImageTokenID) {
				sampled++
			}
		}
	}
	if sampled == 0 {
		t.Fatal("no completion holds an image-pad id; the test needs one (change the seed)")
	}
	tb, err := NewTrainBatch(cfg, prompts, comps, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.SequenceLogProbs(tb, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkTrainLogProbs(t, got, comps)
	t.Logf("%d image-pad ids sampled in %d completions", sampled, len(comps))

	// A vision start and an image pad in a completion.
	c := Completion{IDs: []int32{7, int32(cfg.VisionStartTokenID), int32(cfg.ImageTokenID), int32(cfg.ImageTokenID), 9}}
	tb, err = NewTrainBatch(cfg, prompts, []Completion{c}, nil)
	if err != nil {
		t.Fatalf("a completion holding vision start + image pad: %v", err)
	}
	l := tb.Text.L
	for j := l - len(c.IDs); j < l; j++ {
		if tb.Text.IsImage[j] || tb.Text.IDs[j] != c.IDs[j-(l-len(c.IDs))] {
			t.Errorf("completion position %d: id %d image %v; want id %d as text", j, tb.Text.IDs[j], tb.Text.IsImage[j], c.IDs[j-(l-len(c.IDs))])
		}
		for a := range 3 {
			if p, prev := tb.Text.PositionIDs[a][0][j], tb.Text.PositionIDs[a][0][j-1]; p != prev+1 {
				t.Errorf("completion position %d axis %d: M-RoPE position %d after %d; want consecutive text positions", j, a, p, prev)
			}
		}
	}
}

// checkTrainLogProbs checks that the trainer's log-probs got [completion][token]
// equal the policy log-probs Generate reported for comps (1e-4).
func checkTrainLogProbs(t *testing.T, got [][]float32, comps []Completion) {
	t.Helper()
	for i, c := range comps {
		for k, want := range c.PolicyLogProbs {
			if d := math.Abs(float64(got[i][k] - want)); d > 1e-4 {
				t.Errorf("completion %d token %d: trainer log-prob %g, generation %g", i, k, got[i][k], want)
			}
		}
	}
}
