package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/mmft"
	"github.com/mmft-go/mmft/qwen2vl"
)

func runPlan(c *cli, args []string) error {
	cfg := grpo.DefaultConfig()
	fs := c.newFlags("plan", "[--model DIR|HUB_ID] [--gpus N] [--rollout-gpus LIST] [--train-gpus LIST] [training flags] [--json]", `
Prints the GPU layout (which GPUs generate rollouts, which train) and each GPU's memory before
training starts: base weights, LoRA adapters, gradients and Adam moments (exact shards of the
ZeRO-3/FSDP layout over the training GPUs), activations, the all-gathered layers in flight and
the rollout KV cache (estimates, marked ~). With one GPU the engine and the trainer share it
(colocated); from two on, the last GPU generates and the others train, unless --rollout-gpus
and --train-gpus say otherwise. Training flags (--batch_size, --num_gens, --lora-r, --max-new-tokens, ...) are
those of mmft train. It exits 1 when a GPU's peak exceeds --gpu-memory.`)
	cfg.RegisterFlags(fs)
	var lay distributed.Flags
	lay.Register(fs)
	var dev compute.Flags
	dev.Register(fs)
	gpus := fs.Int("gpus", 0, "GPUs to plan for (0: the devices of --device)")
	memGiB := fs.Float64("gpu-memory", 0, "each GPU's memory in GiB (0: the first device's, when known)")
	promptLen := fs.Int("prompt-len", 1024, "tokens per prompt (text and image tokens)")
	dtype := fs.String("dtype", "bfloat16", "base weights dtype: bfloat16 or float32")
	asJSON := fs.Bool("json", false, "print JSON")
	stepLayout := fs.String("step-layout", "auto", "the GRPO step's layout, as mmft train takes it: full, shared, recompute or auto (a GPU's: recompute, or shared when lora_dropout > 0)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft plan: unexpected argument %q (every setting is a flag; see --help)\n", fs.Arg(0))
		return errUsage
	}
	if *gpus < 0 || *memGiB < 0 || *promptLen < 1 {
		fmt.Fprintf(c.stderr, "mmft plan: --gpus %d, --gpu-memory %g, --prompt-len %d: give positive values (0 for the detected GPUs and memory)\n", *gpus, *memGiB, *promptLen)
		return errUsage
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	wdt := dtypes.BFloat16
	switch *dtype {
	case "bfloat16":
	case "float32":
		wdt = dtypes.Float32
	default:
		fmt.Fprintf(c.stderr, "mmft plan: --dtype %q: use bfloat16 or float32\n", *dtype)
		return errUsage
	}
	mc, err := c.modelConfig(cfg.ModelName)
	if err != nil {
		return err
	}
	n, capacity := *gpus, int64(*memGiB*(1<<30))
	if n == 0 || capacity == 0 {
		be, err := dev.Backend()
		if err != nil {
			return err
		}
		info := be.Info()
		be.Finalize()
		if n == 0 {
			n = len(info.Devices)
		}
		if capacity == 0 && info.Device != compute.CPU && len(info.Devices) > 0 {
			capacity = info.Devices[0].MemoryBytes
		}
	}
	l, err := lay.Layout(n)
	if err != nil {
		return err
	}
	step, auto, ok := parseStepLayoutFlag(*stepLayout)
	if !ok {
		fmt.Fprintf(c.stderr, "mmft plan: --step-layout %q: want full, shared, recompute or auto\n", *stepLayout)
		return errUsage
	}
	if auto {
		step = mmft.AutoStepLayout(compute.GPU, cfg.LoRADropout) // a plan is for GPUs
	}
	ga := max(cfg.GradientAccumulationSteps, 1)
	p, err := distributed.NewPlan(distributed.PlanConfig{
		Model: mc, Layout: l, LoRA: cfg.LoRAConfig(), WeightDType: wdt,
		TrainSequences:   cfg.BatchSize * cfg.NumGenerations / ga,
		SeqLen:           *promptLen + cfg.Objective.MaxCompletionLength,
		RolloutSequences: cfg.BatchSize * cfg.NumGenerations,
		RolloutLen:       *promptLen + cfg.Objective.MaxCompletionLength,
		Capacity:         capacity,
		StepLayout:       string(step), PromptLen: *promptLen, GroupSize: cfg.NumGenerations,
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			return err
		}
	} else if err := p.Write(c.stdout); err != nil {
		return err
	}
	return p.Check()
}

// modelConfig reads a model's config.json: ref is a folder, a config.json
// file, or a Hub id (only config.json is fetched).
func (c *cli) modelConfig(ref string) (qwen2vl.Config, error) {
	if st, err := os.Stat(ref); err == nil {
		if st.IsDir() {
			ref = filepath.Join(ref, "config.json")
		}
		return qwen2vl.LoadConfig(ref)
	}
	dir, err := c.resolveModel(ref, "config.json")
	if err != nil {
		return qwen2vl.Config{}, err
	}
	return qwen2vl.LoadConfig(filepath.Join(dir, "config.json"))
}
