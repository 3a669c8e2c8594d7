// Command prefill measures Qwen2-VL-2B prefill: 8 prompts × 427 tokens, each
// with one 504×504 image (36×36 patches → 324 image tokens), bf16 weights
// (random, 2B shape from the assets' config.json), on the chosen device. It
// prints tokens/s over timed repetitions after a warm-up (compilation) run,
// the Go heap peak, and the compiled executables' device memory (XLA's own
// accounting: arguments, outputs and temporaries). On the GPU it turns XLA's
// preallocation off (PJRT client option preallocate=false, so the BFC
// allocator grows on demand and nvidia-smi, sampled by tests/gpu/run.sh, sees
// what is really used); --preallocate restores the default (75% of the card).
package main

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/mmft-go/mmft/bench/internal/benchkit"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/qwen2vl"
)

func main() {
	cfgPath := flag.String("config", "../shared/assets/qwen2-vl-2b-instruct/config.json", "Qwen2-VL config.json")
	device := flag.String("device", "gpu", "cpu or gpu")
	batch := flag.Int("batch", 8, "prompts")
	length := flag.Int("len", 427, "tokens per prompt")
	side := flag.Int("image", 504, "image side in pixels (multiple of 28)")
	reps := flag.Int("reps", 5, "timed repetitions")
	prealloc := flag.Bool("preallocate", false, "keep XLA's GPU preallocation (then nvidia-smi shows the pool, not the use)")
	flag.Parse()
	if err := run(*cfgPath, *device, *batch, *length, *side, *reps, *prealloc); err != nil {
		fmt.Fprintln(os.Stderr, "prefill:", err)
		os.Exit(1)
	}
}

func run(cfgPath, device string, b, l, side, reps int, prealloc bool) error {
	if b < 1 || reps < 1 {
		return fmt.Errorf("--batch %d, --reps %d: both must be at least 1", b, reps)
	}
	bm, err := benchkit.OpenRandomModel(cfgPath, device, prealloc)
	if err != nil {
		return err
	}
	cfg, m, load := bm.Config, bm.Model, bm.Load
	fmt.Printf("loaded random 2B-shape bf16 weights in %v\n", load.Round(time.Millisecond))
	if unit := cfg.Vision.PatchSize * cfg.Vision.SpatialMergeSize; side < unit || side%unit != 0 {
		return fmt.Errorf("--image %d: the side must be a positive multiple of %d pixels (patch × merge size)", side, unit)
	}
	g := side / cfg.Vision.PatchSize
	imgTokens := g * g / (cfg.Vision.SpatialMergeSize * cfg.Vision.SpatialMergeSize)
	text := l - imgTokens - 2
	if text < 1 {
		return fmt.Errorf("prompt length %d too short for a %d-token image", l, imgTokens)
	}
	in := qwen2vl.Batch{}
	rng := rand.New(rand.NewPCG(3, 4))
	for range b {
		row := []int32{}
		for range text / 2 {
			row = append(row, int32(rng.IntN(min(150000, cfg.Text.VocabSize-8))))
		}
		row = append(row, int32(cfg.VisionStartTokenID))
		for range imgTokens {
			row = append(row, int32(cfg.ImageTokenID))
		}
		row = append(row, int32(cfg.VisionEndTokenID))
		for len(row) < l {
			row = append(row, int32(rng.IntN(min(150000, cfg.Text.VocabSize-8))))
		}
		in.InputIDs = append(in.InputIDs, row)
		in.Grids = append(in.Grids, qwen2vl.Grid{T: 1, H: g, W: g})
	}
	in.PixelValues = make([]float32, b*g*g*cfg.Vision.PatchDim())
	for i := range in.PixelValues {
		in.PixelValues[i] = float32(rng.NormFloat64())
	}
	eng, err := engine.New(m, engine.Options{})
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := eng.Prefill(in, nil); err != nil {
		return err
	}
	fmt.Printf("warm-up (compile + run) %v\n", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	for range reps {
		kv, err := eng.Prefill(in, nil)
		if err != nil {
			return err
		}
		// Copying the last layer's values (B·L·KVH·D entries) waits for the call.
		if err := kv[len(kv)-1].ToLocal(); err != nil {
			return err
		}
		for _, c := range kv {
			c.FinalizeAll()
		}
	}
	el := time.Since(t0) / time.Duration(reps)
	// The vision tower alone (its output is copied to the host to wait for it).
	t0 = time.Now()
	for range reps {
		emb, err := eng.ImageFeatures(in.PixelValues, in.Grids)
		if err != nil {
			return err
		}
		if err := emb.ToLocal(); err != nil {
			return err
		}
		emb.FinalizeAll()
	}
	vis := time.Since(t0) / time.Duration(reps)
	fmt.Printf("of which the vision tower (%d images, incl. a %d MiB copy to the host to wait for it): %v per batch\n",
		b, b*imgTokens*cfg.Text.HiddenSize*4>>20, vis.Round(time.Millisecond))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("prefill %d × %d tokens (image %dx%d px, %d image tokens): %v per batch, %.0f tokens/s; Go heap peak (Sys) %.2f GiB\n",
		b, l, side, side, imgTokens, el.Round(time.Millisecond), float64(b*l)/el.Seconds(), float64(ms.Sys)/(1<<30))
	graphs := eng.Runner().Graphs()
	names := slices.Sorted(maps.Keys(graphs))
	var weights int64
	for _, name := range m.ParamNames() {
		weights += int64(m.Param(name).Shape().Memory())
	}
	fmt.Printf("device memory: weights %.2f GiB\n", float64(weights)/(1<<30))
	for _, name := range names {
		st, ok := benchkit.CompiledMemory(graphs[name])
		if !ok {
			continue
		}
		fmt.Printf("  %s (XLA compiled stats): arguments %.2f GiB (incl. weights), outputs %.3f GiB, temporaries %.2f GiB, code %.1f MiB\n",
			name, float64(st.Inputs)/(1<<30), float64(st.Outputs)/(1<<30), float64(st.Temporary)/(1<<30), float64(st.GeneratedCode)/(1<<20))
	}
	return nil
}
