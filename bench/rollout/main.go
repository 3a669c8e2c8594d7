// Command rollout measures the rollout engine on issue 8's workload: a
// Qwen2-VL-2B-shaped model with random bf16 weights (shapes from the assets'
// config.json), --prompts prompts of --len tokens each holding one
// --image×--image image, --n completions each, --new new tokens forced
// (EOS ignored), sampled at temperature 1 on the device. It runs the whole
// Generate call --reps times in one process: the first run includes
// compilation (the time a fresh process waits), the others are warm. It
// prints one JSON object: new tokens/s, time to the first finished
// completion, programs compiled and seconds compiling, the KV cache and
// weight bytes (the bytes a decode step reads at most: the memory-bandwidth
// floor is that divided by the measured copy bandwidth) and XLA's compiled
// memory per program. --steps-per-call compares one call per step with
// several steps per call (an unrolled on-device loop; 0, the default, is the
// engine's automatic choice, 8 for this workload's 64 slots). On the GPU XLA's preallocation is off unless
// --preallocate.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/go-xla/pkg/stablehlo"

	"github.com/mmft-go/mmft/bench/internal/benchkit"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/qwen2vl"
)

// runResult is one timed Generate call.
type runResult struct {
	Seconds          float64 `json:"seconds"`
	NewTokens        int     `json:"new_tokens"`
	TokensPerSecond  float64 `json:"new_tokens_per_s"`
	FirstCompletionS float64 `json:"first_completion_s"`
	Calls            int     `json:"decode_calls"`
	MsPerCall        float64 `json:"ms_per_call"`
	// MsPerStep is the run's time per decode step (MsPerCall ÷ steps per
	// call; prefill and admission included).
	MsPerStep float64 `json:"ms_per_step"`
	// Window is the call's wall-clock span, for a kernel profile (bench/kprof).
	Window benchkit.Window `json:"window"`
	// Host is the run's program calls and their time inside the backend.
	Host benchkit.HostTime `json:"host"`
}

// deviceMemory is benchkit.DeviceMemory's figures in the report.
type deviceMemory struct {
	BytesInUse     int64 `json:"bytes_in_use"`
	PeakBytesInUse int64 `json:"peak_bytes_in_use"`
	PeakPoolBytes  int64 `json:"peak_pool_bytes"`
}

// report is the benchmark's JSON output.
type report struct {
	Device           string         `json:"device"`
	Date             string         `json:"date"`
	Workload         map[string]any `json:"workload"`
	Runs             []runResult    `json:"runs"`
	WarmTokensPerS   float64        `json:"warm_new_tokens_per_s"`
	ProgramsCompiled int            `json:"programs_compiled"`
	CompileSeconds   float64        `json:"compile_s"`
	ProgramsByName   map[string]int `json:"programs_by_name"`
	AliasedArguments int            `json:"aliased_arguments"`
	// XLASync is whether program calls waited for the device (MMFT_XLA_SYNC);
	// when false, the runs' per-program host times are enqueue times.
	XLASync bool `json:"xla_sync"`
	// ExactBF16Dots is MMFT_XLA_EXACT_BF16_DOTS's setting.
	ExactBF16Dots bool `json:"exact_bf16_dots"`
	// DeviceMemory is the allocator's state after the runs (PJRT memory
	// statistics; peak_bytes_in_use compares with PyTorch's
	// max_memory_allocated).
	DeviceMemory      *deviceMemory             `json:"device_memory,omitempty"`
	WeightsBytes      int64                     `json:"weights_bytes"`
	KVCacheBytes      int64                     `json:"kv_cache_bytes"`
	StepBytesUpper    int64                     `json:"bytes_read_per_step_upper"`
	CompiledMemory    map[string]map[string]int `json:"compiled_memory_bytes,omitempty"`
	GoHeapSysBytes    uint64                    `json:"go_heap_sys_bytes"`
	LoadWeightsSecond float64                   `json:"load_weights_s"`
}

func main() {
	cfgPath := flag.String("config", "../shared/assets/qwen2-vl-2b-instruct/config.json", "Qwen2-VL config.json")
	device := flag.String("device", "gpu", "cpu or gpu")
	prompts := flag.Int("prompts", 8, "prompts")
	n := flag.Int("n", 8, "completions per prompt")
	newTokens := flag.Int("new", 256, "new tokens per completion (forced: EOS ignored)")
	length := flag.Int("len", 427, "tokens per prompt (image tokens included)")
	side := flag.Int("image", 504, "image side in pixels (multiple of 28; 0: text only)")
	vary := flag.Int("vary-images", 0, "if > 0: each prompt's image has random height and width, multiples of 28 from this to --image pixels (Sujet-like varied sizes; --len then counts text tokens)")
	slots := flag.Int("slots", 0, "sequences decoded together (0: prompts × n)")
	prefillBatch := flag.Int("prefill-batch", 8, "prompts prefilled per call")
	reps := flag.Int("reps", 2, "Generate calls (the first includes compilation)")
	temperature := flag.Float64("temperature", 1, "sampling temperature (0: greedy)")
	topP := flag.Float64("top-p", 1, "top-p (1: off)")
	topK := flag.Int("top-k", 0, "top-k (0: off)")
	steps := flag.Int("steps-per-call", 0, "decode steps per device call (an unrolled on-device loop); 0: the engine's automatic choice (engine.AutoStepsPerCall)")
	shared := flag.Bool("shared-prefix", false, "group slots by prompt, each prompt's KV held once (engine.Options.SharedPrefix)")
	dtypeLogits := flag.Bool("dtype-logits", false, "decode logits as a bf16 product (engine.Options.DTypeLogits)")
	prealloc := flag.Bool("preallocate", false, "keep XLA's GPU preallocation")
	compileWorkers := flag.Int("compile-workers", 0, "programs compiled at once when a Generate call starts (engine.Options.CompileWorkers; 0: min(8, CPUs), 1: each at first use)")
	flag.Parse()
	if err := run(*cfgPath, *device, *prompts, *n, *newTokens, *length, *side, *vary, *slots, *prefillBatch, *steps, *compileWorkers, *reps, *dtypeLogits, *shared,
		engine.Sampling{Temperature: float32(*temperature), TopP: float32(*topP), TopK: *topK, MaxNewTokens: *newTokens, IgnoreEOS: true, Seed: 1},
		*prealloc); err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(1)
	}
}

func run(cfgPath, device string, prompts, n, newTokens, length, side, vary, slots, prefillBatch, steps, compileWorkers, reps int, dtypeLogits, shared bool, s engine.Sampling, prealloc bool) error {
	if prompts < 1 || n < 1 || newTokens < 1 || reps < 1 || slots < 0 {
		return fmt.Errorf("--prompts, --n, --new and --reps must be ≥ 1, --slots ≥ 0")
	}
	bm, err := benchkit.OpenRandomModel(cfgPath, device, prealloc)
	if err != nil {
		return err
	}
	cfg, backend, m, load := bm.Config, bm.Backend, bm.Model, bm.Load
	rep := report{Device: device + ": " + backend.Description(), Date: time.Now().UTC().Format(time.DateOnly), LoadWeightsSecond: load.Seconds(),
		Workload: map[string]any{"prompts": prompts, "n": n, "new_tokens": newTokens, "prompt_len": length, "image_side": side, "vary_images_from": vary,
			"slots": slots, "prefill_batch": prefillBatch, "steps_per_call": steps, "compile_workers": compileWorkers, "dtype_logits": dtypeLogits, "shared_prefix": shared, "temperature": s.Temperature, "top_p": s.TopP, "top_k": s.TopK, "dtype": "bf16"}}
	reqs, err := workload(cfg, prompts, n, length, side, vary, s)
	if err != nil {
		return err
	}
	if slots == 0 {
		slots = prompts * n
	}
	if steps == 0 {
		steps = engine.AutoStepsPerCall(min(slots, prompts*n), newTokens)
	}
	rep.Workload["steps_per_call"] = steps
	eng, err := engine.New(m, engine.Options{Slots: slots, PrefillBatch: prefillBatch, StepsPerCall: steps, CompileWorkers: compileWorkers, DTypeLogits: dtypeLogits, SharedPrefix: shared})
	if err != nil {
		return err
	}
	var stopProfile func()
	defer func() {
		if stopProfile != nil {
			stopProfile()
		}
	}()
	for i := range reps {
		if stop, err := benchkit.WarmCPUProfile(i); err != nil {
			return err
		} else if stop != nil {
			stopProfile = stop
		}
		var first time.Duration
		calls := 0
		before := eng.Runner().Stats()
		t := time.Now()
		comps, err := eng.Generate(context.Background(), reqs, func(p engine.Progress) {
			calls++
			if p.Done > 0 && first == 0 {
				first = p.Elapsed
			}
		})
		if err != nil {
			return err
		}
		el := time.Since(t)
		tokens := 0
		for _, c := range comps {
			tokens += len(c.IDs)
		}
		rep.Runs = append(rep.Runs, runResult{Seconds: el.Seconds(), NewTokens: tokens, TokensPerSecond: float64(tokens) / el.Seconds(),
			FirstCompletionS: first.Seconds(), Calls: calls, MsPerCall: float64(el.Milliseconds()) / float64(max(calls, 1)),
			MsPerStep: float64(el.Milliseconds()) / float64(max(calls*steps, 1)), Window: benchkit.Span(t),
			Host: benchkit.HostTimeSince(before, eng.Runner().Stats())})
	}
	for _, r := range rep.Runs[1:] {
		rep.WarmTokensPerS = max(rep.WarmTokensPerS, r.TokensPerSecond)
	}
	st := eng.Runner().Stats()
	rep.ProgramsCompiled, rep.CompileSeconds, rep.ProgramsByName, rep.AliasedArguments = st.Programs, st.CompileTime.Seconds(), st.ByProgram, st.Aliased
	rep.XLASync = pjrt.AwaitExecution()
	rep.ExactBF16Dots = stablehlo.ExactBF16Dots()
	if ms, ok := benchkit.DeviceMemory(backend); ok {
		rep.DeviceMemory = &deviceMemory{BytesInUse: ms.BytesInUse, PeakBytesInUse: ms.PeakBytesInUse, PeakPoolBytes: ms.PeakPoolBytes}
	}
	for _, name := range m.ParamNames() {
		rep.WeightsBytes += int64(m.Param(name).Shape().Memory())
	}
	tc := cfg.Text
	longest := 0
	for _, r := range reqs {
		longest = max(longest, len(r.Prompt.IDs))
	}
	entries := int64(slots) * int64(longest+newTokens+steps-1) // before bucketing: what a full cache holds
	if shared {
		entries = int64(slots)*int64(newTokens+steps-1) + int64(slots/n)*int64(longest)
	}
	rep.KVCacheBytes = int64(2*tc.NumLayers) * entries * int64(tc.NumKVHeads*tc.HeadDim()) * 2
	rep.StepBytesUpper = rep.WeightsBytes + rep.KVCacheBytes
	rep.CompiledMemory = map[string]map[string]int{}
	for name, g := range eng.Runner().Graphs() {
		if ms, ok := benchkit.CompiledMemory(g); ok {
			rep.CompiledMemory[name] = map[string]int{"arguments": int(ms.Inputs), "outputs": int(ms.Outputs), "temporaries": int(ms.Temporary),
				"code": int(ms.GeneratedCode)}
		}
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	rep.GoHeapSysBytes = mem.Sys
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	benchkit.SettleProfiler()
	return enc.Encode(rep)
}

// workload builds the prompts: random text around one image each (or none);
// with vary > 0 each image's height and width are drawn from [vary, side].
func workload(cfg qwen2vl.Config, prompts, n, length, side, vary int, s engine.Sampling) ([]engine.Request, error) {
	vc := cfg.Vision
	unit := vc.PatchSize * vc.SpatialMergeSize
	if side > 0 && (side%unit != 0 || (vary > 0 && (vary%unit != 0 || vary > side))) {
		return nil, fmt.Errorf("--image %d, --vary-images %d: sides must be multiples of %d pixels, --vary-images ≤ --image", side, vary, unit)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// Text words stay below the special ids (on small test vocabularies a
	// random word could otherwise be an image token).
	words := min(150000, cfg.Text.VocabSize-8, cfg.ImageTokenID, cfg.VideoTokenID, cfg.VisionStartTokenID, cfg.VisionEndTokenID)
	word := func() int32 { return int32(rng.IntN(words)) }
	var reqs []engine.Request
	for range prompts {
		var p engine.Prompt
		h, w := side, side
		if vary > 0 {
			h, w = vary+unit*rng.IntN((side-vary)/unit+1), vary+unit*rng.IntN((side-vary)/unit+1)
		}
		imgTokens := 0
		if side > 0 {
			imgTokens = (h / vc.PatchSize) * (w / vc.PatchSize) / (vc.SpatialMergeSize * vc.SpatialMergeSize)
		}
		text := length - imgTokens - 2
		if vary > 0 {
			text = length
		}
		if text < 2 {
			return nil, fmt.Errorf("--len %d is too short for a %d-token image", length, imgTokens)
		}
		for range text / 2 {
			p.IDs = append(p.IDs, word())
		}
		if side > 0 {
			grid := qwen2vl.Grid{T: 1, H: h / vc.PatchSize, W: w / vc.PatchSize}
			p.IDs = append(p.IDs, int32(cfg.VisionStartTokenID))
			for range imgTokens {
				p.IDs = append(p.IDs, int32(cfg.ImageTokenID))
			}
			p.IDs = append(p.IDs, int32(cfg.VisionEndTokenID))
			px := make([]float32, grid.H*grid.W*vc.PatchDim())
			for i := range px {
				px[i] = float32(rng.NormFloat64())
			}
			p.Images = []engine.Image{{Pixels: px, Grid: grid}}
		}
		for range text - text/2 {
			p.IDs = append(p.IDs, word())
		}
		reqs = append(reqs, engine.Request{Prompt: p, N: n, Sampling: s})
	}
	return reqs, nil
}
