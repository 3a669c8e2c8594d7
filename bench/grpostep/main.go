// Command grpostep measures the GRPO trainer on issue 9's workloads with a
// Qwen2-VL-2B-shaped model (random bf16 weights, shapes from the assets'
// config.json) on the chosen device:
//
//   - step: one GRPO update of --prompts groups of --n sequences (prompt of
//     --len tokens with one --image² image, then --new completion tokens),
//     LoRA rank --rank on the seven LLM projections, reference log-probs
//     (adapters off) included when --beta > 0, micro-batches of --micro
//     sequences (gradient accumulation), AdamW. grpo.Trainer.TrainOn on
//     synthetic rollouts, --reps times (the first includes compilation).
//     --shared-prompt computes each group's prompt once (grpo.Setup.SharedPrompt);
//     --recompute runs the policy layer by layer with recomputation
//     (grpo.Setup.Recompute, implies --shared-prompt); --bf16-head computes
//     the log-prob head's logits in the model dtype (grpo.Setup.HeadInDType).
//     Without them: the full layout, one program per micro-batch.
//   - iteration: whole GRPO iterations (grpo.Trainer.Step: rollouts with the
//     engine, rewards, update) on generated financial documents rendered at
//     --image², with the split of the time between rollout, reward and update.
//
// It prints one JSON object.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/go-xla/pkg/stablehlo"

	"github.com/mmft-go/mmft/bench/internal/benchkit"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
)

func main() {
	assets := flag.String("assets", "../shared/assets/qwen2-vl-2b-instruct", "folder with the 2B config.json and tokenizer files")
	device := flag.String("device", "gpu", "cpu or gpu")
	mode := flag.String("mode", "step", "step (one update on synthetic rollouts) or iteration (rollouts + rewards + update)")
	prompts := flag.Int("prompts", 8, "prompts (groups) per batch")
	n := flag.Int("n", 8, "completions per prompt")
	newTokens := flag.Int("new", 256, "completion tokens (step: exact; iteration: max_new_tokens)")
	length := flag.Int("len", 427, "prompt tokens (step mode), image tokens included")
	side := flag.Int("image", 504, "image side in pixels (multiple of 28)")
	rank := flag.Int("rank", 64, "LoRA rank (alpha = 2·rank)")
	micro := flag.Int("micro", 8, "sequences per micro-batch (a multiple of --n)")
	beta := flag.Float64("beta", 0.04, "KL weight (> 0 includes the reference log-probs)")
	iters := flag.Int("iters", 1, "optimizer updates per batch (μ)")
	reps := flag.Int("reps", 3, "steps or iterations to time (the first includes compilation)")
	chunk := flag.Int("vocab-chunk", 0, "vocabulary chunk of the log-prob graph (0: 8192)")
	prealloc := flag.Bool("preallocate", false, "keep XLA's GPU preallocation")
	var v variant
	flag.BoolVar(&v.SharedPrompt, "shared-prompt", false, "compute each group's prompt once (grpo.Setup.SharedPrompt)")
	flag.BoolVar(&v.Recompute, "recompute", false, "layer-by-layer forward/backward with recomputation (grpo.Setup.Recompute; implies --shared-prompt)")
	flag.BoolVar(&v.HeadInDType, "bf16-head", false, "log-prob head logits in the model dtype (grpo.Setup.HeadInDType)")
	flag.Parse()
	if err := run(*assets, *device, *mode, *prompts, *n, *newTokens, *length, *side, *rank, *micro, *beta, *iters, *reps, *chunk, *prealloc, v); err != nil {
		fmt.Fprintln(os.Stderr, "grpostep:", err)
		os.Exit(1)
	}
}

// variant is the trainer path under test (grpo.Setup's switches).
type variant struct {
	SharedPrompt, Recompute, HeadInDType bool
}

func run(assets, device, mode string, prompts, n, newTokens, length, side, rank, micro int, beta float64, iters, reps, chunk int, prealloc bool, v variant) error {
	if micro%n != 0 || (prompts*n)%micro != 0 {
		return fmt.Errorf("--micro %d must be a multiple of --n %d and divide prompts×n = %d", micro, n, prompts*n)
	}
	cfg, err := qwen2vl.LoadConfig(assets)
	if err != nil {
		return err
	}
	proc, err := processor.Load(assets)
	if err != nil {
		return err
	}
	backend, err := benchkit.NewBackend(device, prealloc)
	if err != nil {
		return err
	}
	m, load, err := benchkit.LoadRandomModel(backend, cfg)
	if err != nil {
		return err
	}
	eng, err := engine.New(m, engine.Options{Slots: prompts * n})
	if err != nil {
		return err
	}
	tc := grpo.DefaultConfig()
	tc.BatchSize, tc.NumGenerations, tc.NumIterations = prompts, n, iters
	tc.GradientAccumulationSteps = prompts * n / micro
	tc.LoRARank, tc.LoRAAlpha, tc.LoRADropout = rank, float64(2*rank), 0
	tc.Objective.Beta = beta
	tc.Objective.MaxCompletionLength = newTokens
	tc.OutputDir = filepath.Join(os.TempDir(), "grpostep")
	docs, err := synth.Generate(synth.Options{Level: synth.Normal, Split: "train", Width: side, Height: side}, max(prompts, 16))
	if err != nil {
		return err
	}
	set, err := rewards.Default().ParseSet("structural,accuracy")
	if err != nil {
		return err
	}
	tr, err := grpo.New(tc, grpo.Setup{Engine: eng, Processor: proc, Rewards: set, Data: grpo.DocEpochs(docs, 1), Steps: reps, VocabChunk: chunk,
		SharedPrompt: v.SharedPrompt, Recompute: v.Recompute, HeadInDType: v.HeadInDType})
	if err != nil {
		return err
	}
	out := map[string]any{"device": device, "date": time.Now().UTC().Format("2006-01-02"), "mode": mode, "load_weights_s": load.Seconds(),
		"workload": map[string]any{"prompts": prompts, "n": n, "new": newTokens, "len": length, "image": side, "rank": rank,
			"micro_batch": micro, "beta": beta, "iters": iters},
		"shared_prompt": v.SharedPrompt || v.Recompute, "recompute": v.Recompute, "bf16_head": v.HeadInDType}
	var runs []map[string]any
	ctx := context.Background()
	var stopProfile func()
	defer func() {
		if stopProfile != nil {
			stopProfile()
		}
	}()
	profile := func(rep int) error {
		stop, err := benchkit.WarmCPUProfile(rep)
		if stop != nil {
			stopProfile = stop
		}
		return err
	}
	switch mode {
	case "step":
		ps, comps, rw := synthetic(cfg, prompts, n, length, side, newTokens)
		for rep := range reps {
			if err := profile(rep); err != nil {
				return err
			}
			before := eng.Runner().Stats()
			t := time.Now()
			met, err := tr.TrainOn(ctx, ps, comps, rw)
			if err != nil {
				return err
			}
			runs = append(runs, map[string]any{"seconds": time.Since(t).Seconds(), "window": benchkit.Span(t), "loss": met["loss"], "grad_norm": met["grad_norm"],
				"recompute_kept_bytes": met["recompute_kept_bytes"], "host": benchkit.HostTimeSince(before, eng.Runner().Stats())})
		}
	case "iteration":
		for rep := range reps {
			if err := profile(rep); err != nil {
				return err
			}
			before := eng.Runner().Stats()
			t := time.Now()
			met, err := tr.Step(ctx)
			if err != nil {
				return err
			}
			runs = append(runs, map[string]any{"seconds": time.Since(t).Seconds(), "window": benchkit.Span(t), "rollout_s": met["rollout_s"], "reward_s": met["reward_s"],
				"update_s": met["update_s"], "new_tokens": met["new_tokens"], "tokens_per_s": met["tokens_per_s"], "completion_length": met["completion_length"],
				"host": benchkit.HostTimeSince(before, eng.Runner().Stats())})
		}
	default:
		return fmt.Errorf("--mode %q: step or iteration", mode)
	}
	out["runs"] = runs
	benchkit.SettleProfiler()
	st := eng.Runner().Stats()
	out["programs_compiled"], out["compile_s"], out["programs_by_name"], out["aliased_arguments"] = st.Programs, st.CompileTime.Seconds(), st.ByProgram, st.Aliased
	out["xla_sync"] = pjrt.AwaitExecution() // false: the runs' per-program host times are enqueue times
	out["exact_bf16_dots"] = stablehlo.ExactBF16Dots()
	if ms, ok := benchkit.DeviceMemory(eng.Runner().Backend()); ok {
		// peak_bytes_in_use compares with PyTorch's max_memory_allocated.
		out["device_memory"] = map[string]int64{"bytes_in_use": ms.BytesInUse, "peak_bytes_in_use": ms.PeakBytesInUse, "peak_pool_bytes": ms.PeakPoolBytes}
	}
	mem := map[string]map[string]int{}
	for name, g := range eng.Runner().Graphs() {
		if ms, ok := benchkit.CompiledMemory(g); ok {
			mem[name] = map[string]int{"arguments": int(ms.Inputs), "outputs": int(ms.Outputs), "temporaries": int(ms.Temporary)}
		}
	}
	out["compiled_memory_bytes"] = mem
	// A device-memory estimate (the GPU's own peak is what tests/gpu/bench.sh
	// samples): weights + adapter, AdamW moments and gradient accumulators
	// (float32) + the largest program's temporaries + the residual streams
	// the layer-by-layer path keeps between calls.
	var weights, temps, kept int64
	for _, name := range m.ParamNames() {
		weights += int64(m.Param(name).Shape().Memory())
	}
	for _, ms := range mem {
		temps = max(temps, int64(ms["temporaries"]))
	}
	for _, r := range runs {
		if k, ok := r["recompute_kept_bytes"].(grpo.Float); ok {
			kept = max(kept, int64(k))
		}
	}
	ad, err := tr.Adapter()
	if err != nil {
		return err
	}
	state := int64(4 * 4 * ad.NumParams())
	out["memory_estimate_bytes"] = map[string]int64{"weights": weights, "adapter_optimizer_accumulators": state,
		"largest_temporaries": temps, "kept_streams": kept, "total": weights + state + temps + kept}
	var rt runtime.MemStats
	runtime.ReadMemStats(&rt)
	out["go_heap_sys_bytes"] = rt.HeapSys
	return json.NewEncoder(os.Stdout).Encode(out)
}

// synthetic makes prompts (random text around one side² image) and forced
// completions of newTokens random ids with rewards, as the peer's benchmark does.
func synthetic(cfg qwen2vl.Config, prompts, n, length, side, newTokens int) ([]engine.Prompt, []engine.Completion, []float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	grid := qwen2vl.Grid{T: 1, H: side / 14, W: side / 14}
	imgTokens := grid.H * grid.W / 4
	pd := cfg.Vision.PatchDim()
	top := min(150000, cfg.ImageTokenID-16) // ordinary tokens: below the special ones
	var ps []engine.Prompt
	for range prompts {
		ids := []int32{}
		text := max(length-imgTokens-2, 8)
		for range text / 2 {
			ids = append(ids, int32(rng.IntN(top)))
		}
		ids = append(ids, int32(cfg.VisionStartTokenID))
		for range imgTokens {
			ids = append(ids, int32(cfg.ImageTokenID))
		}
		ids = append(ids, int32(cfg.VisionEndTokenID))
		for range text - text/2 {
			ids = append(ids, int32(rng.IntN(top)))
		}
		px := make([]float32, grid.H*grid.W*pd)
		for i := range px {
			px[i] = float32(rng.NormFloat64())
		}
		ps = append(ps, engine.Prompt{IDs: ids, Images: []engine.Image{{Pixels: px, Grid: grid}}})
	}
	var comps []engine.Completion
	var rw []float64
	for p := range prompts {
		for i := range n {
			c := engine.Completion{Request: p, Index: i, Finish: engine.FinishLength}
			for range newTokens {
				c.IDs = append(c.IDs, int32(rng.IntN(top)))
				c.PolicyLogProbs = append(c.PolicyLogProbs, -11.9)
				c.SamplerLogProbs = append(c.SamplerLogProbs, -11.9)
			}
			comps = append(comps, c)
			rw = append(rw, rng.Float64())
		}
	}
	return ps, comps, rw
}
