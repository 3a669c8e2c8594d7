package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/qwen2vl"
)

// smallEngine loads a random small model into an engine.
func smallEngine(t *testing.T, opts Options) (*Engine, qwen2vl.Config) {
	t.Helper()
	cfg := smallConfig(1, 2)
	src := randomBF16Source{specs: map[string][]int{}, seed: 1, std: 0.3}
	for _, s := range cfg.ParamSpecs() {
		src.specs[s.Name] = s.Shape
	}
	m, err := qwen2vl.LoadFrom(cpuBackend(t), cfg, src, qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, cfg
}

// TestGenerateSeedsStopsAndRefusals checks determinism for a seed, finish
// reasons, cancellation and the refusals made before any memory is taken.
func TestGenerateSeedsStopsAndRefusals(t *testing.T) {
	e, cfg := smallEngine(t, Options{Slots: 4})
	rng := rand.New(rand.NewPCG(1, 2))
	p := randomPrompt(cfg, rng, 6, []qwen2vl.Grid{{T: 1, H: 2, W: 4}})
	gen := func(s Sampling, n int) []Completion {
		t.Helper()
		out, err := e.Generate(context.Background(), []Request{{Prompt: p, N: n, Sampling: s}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	s := Sampling{Temperature: 1, MaxNewTokens: 12, IgnoreEOS: true, Seed: 7}
	a, b := gen(s, 4), gen(s, 4)
	s.Seed = 8
	c := gen(s, 4)
	same, differ := true, false
	for i := range a {
		same = same && slices.Equal(a[i].IDs, b[i].IDs)
		differ = differ || !slices.Equal(a[i].IDs, c[i].IDs)
	}
	if !same || !differ {
		t.Errorf("seed 7 twice gave equal completions: %v; seed 8 differed: %v", same, differ)
	}
	// A stop id ends a completion with reason stop, the id kept.
	stop := a[0].IDs[3]
	s.Seed = 7
	s.StopIDs = []int32{stop}
	got := gen(s, 4)[0]
	if got.Finish != FinishStop || got.IDs[len(got.IDs)-1] != stop || len(got.IDs) > 4 {
		t.Errorf("stop id %d: finished by %q with ids %v", stop, got.Finish, got.IDs)
	}
	// Min-p 1 and top-k 1 keep only the most likely token: the sampler is greedy.
	greedy := gen(Sampling{MaxNewTokens: 6, IgnoreEOS: true}, 1)[0]
	minp := gen(Sampling{Temperature: 1, MinP: 1, MaxNewTokens: 6, IgnoreEOS: true, Seed: 3}, 1)[0]
	topk := gen(Sampling{Temperature: 1, TopK: 1, MaxNewTokens: 6, IgnoreEOS: true, Seed: 3}, 1)[0]
	if !slices.Equal(greedy.IDs, minp.IDs) || !slices.Equal(greedy.IDs, topk.IDs) {
		t.Errorf("min_p 1 gave %v, top_k 1 %v, greedy %v", minp.IDs, topk.IDs, greedy.IDs)
	}
	// Logits in the model dtype are the float32 ones for a float32 model.
	e2, _ := smallEngine(t, Options{Slots: 4, DTypeLogits: true})
	d, err := e2.Generate(context.Background(), []Request{{Prompt: p, N: 4, Sampling: Sampling{Temperature: 1, MaxNewTokens: 12, IgnoreEOS: true, Seed: 7}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range d {
		if !slices.Equal(d[i].IDs, a[i].IDs) {
			t.Errorf("DTypeLogits on a float32 model changed completion %d: %v vs %v", i, d[i].IDs, a[i].IDs)
		}
	}
	// Cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err = e.Generate(ctx, []Request{{Prompt: p, N: 2, Sampling: Sampling{MaxNewTokens: 50, IgnoreEOS: true}}}, func(Progress) {
		if calls++; calls == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled generation: error %v, want context.Canceled", err)
	}
	// Refusals.
	small, _ := smallEngine(t, Options{MemoryBytes: 1 << 10})
	for _, c := range []struct {
		e    *Engine
		r    Request
		want string
	}{
		{small, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: 8}}, "KV cache needs"},
		{e, Request{Prompt: p, N: 0, Sampling: Sampling{MaxNewTokens: 8}}, "n = 0"},
		{e, Request{Prompt: p, N: 1}, "max_new_tokens 0"},
		{e, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: 8, Temperature: -1}}, "temperature"},
		{e, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: 8, StopStrings: []string{"x"}}}, "Options.Decode"},
		{e, Request{Prompt: Prompt{IDs: []int32{1, 9999}}, N: 1, Sampling: Sampling{MaxNewTokens: 8}}, "outside the vocabulary"},
		{e, Request{Prompt: Prompt{IDs: []int32{1, int32(cfg.ImageTokenID)}}, N: 1, Sampling: Sampling{MaxNewTokens: 8}}, "ends inside an image"},
		{e, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: 5000}}, "max_position_embeddings"},
		{e, Request{Prompt: p, N: 1, Sampling: Sampling{MaxNewTokens: 1 << 40}}, "max_position_embeddings"}, // refused before any cache is sized
	} {
		_, err := c.e.Generate(context.Background(), []Request{c.r}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one saying %q", err, c.want)
		}
	}
}
