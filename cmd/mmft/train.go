package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.yaml.in/yaml/v3"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/mmft"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
)

func runTrain(c *cli, args []string) error {
	cfg := grpo.DefaultConfig()
	embeddedRun := !namesModel(args)
	if embeddedRun {
		cfg = mmft.EmbeddedTrainConfig()
	}
	fs := c.newFlags("train", "[--model DIR|HUB_ID] [--data SRC] [--steps N] [--config FILE.yaml] [--resume DIR] [training flags] [--device cpu|gpu|auto] [--rollout-gpus LIST --train-gpus LIST] [--max-staleness N]", `
Fine-tunes LoRA adapters of a Qwen2-VL model with GRPO: rollouts from the engine (with the
adapter being trained), rewards, group advantages, clipped-objective AdamW updates. It writes
metrics.jsonl (one JSON line per step), resumable checkpoint-N/ folders, the final adapter
(adapter/, PEFT's format) and report.md with reward.svg into --output-dir.

With no --model (and no model_name in --config) it runs the main job on the embedded default:
a tiny Qwen2-VL with random weights and a small vocabulary, on the built-in synthetic
financial documents, on the CPU, in a few minutes. With --model and --data it trains the real
model on real data (use --device gpu). The seed's flag names (--model_name, --lr, --num_gens,
--kld_beta, --grpo_iters, ...) are accepted; a --config YAML file takes TRL's keys.

With two or more GPUs it runs the seed's split layout: rollouts on the last GPU, training
(ZeRO-3/FSDP) on the others; --rollout-gpus and --train-gpus choose otherwise. The adapter is
copied to the rollout GPU before every rollout batch (--max-staleness N allows N steps of lag,
off-policy). Each GPU's memory is printed before anything is loaded, and a run that would not
fit (--gpu-memory, or the device's own) is refused.`)
	cfg.RegisterFlags(fs)
	var dev compute.Flags
	dev.Register(fs)
	var lay distributed.Flags
	lay.RegisterTraining(fs)
	gpuMem := fs.Float64("gpu-memory", 0, "each GPU's memory in GiB for the memory plan (0: as the device reports; on the CPU the plan is checked only when given)")
	dataRef := fs.String("data", "", "training data: a folder or .parquet file in the Sujet layout, a Hub dataset id, or \"embedded\" (default with the embedded model)")
	split := fs.String("split", "train", "split of --data to train on")
	steps := fs.Int("steps", 0, "rollout batches to train (0: --epochs passes over the data)")
	rewardSpec := fs.String("rewards", mmft.DefaultRewards, "reward set: NAME or NAME=WEIGHT, comma-separated (structural, format, accuracy, overlong, judge: the seed's LLM judge on the base model)")
	resume := fs.String("resume", "", "continue a run: its output folder (latest checkpoint) or a checkpoint-N folder")
	dtype := fs.String("dtype", "", "weights dtype: float32 or bfloat16 (default: bfloat16 on a GPU, float32 on the CPU)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	stepLayout := fs.String("step-layout", "auto", "the GRPO step's layout: full, shared (each group's prompt computed once: exact, faster), recompute (shared, layer by layer: least memory) or auto (on a GPU recompute, or shared when lora_dropout > 0; shared on the CPU)")
	logits := fs.String("logits", "float32", "precision of the GRPO step's LM-head logits: float32 (float32 products of the bf16 head weights and the float32 hidden states) or bf16 (products in the model dtype, as PyTorch's bf16 lm_head computes them: about 2^-9 relative rounding, less memory; 0.79 instead of 0.83 s per step of 64 sequences × 683 tokens on an H200, and 8.0 instead of 9.6 GiB)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft train: unexpected argument %q (every setting is a flag; see --help)\n", fs.Arg(0))
		return errUsage
	}
	var headInDType bool
	switch strings.ToLower(strings.TrimSpace(*logits)) {
	case "float32", "f32", "fp32":
	case "bf16", "bfloat16":
		headInDType = true
	default:
		fmt.Fprintf(c.stderr, "mmft train: --logits %q: want float32 or bf16\n", *logits)
		return errUsage
	}
	stepLay, autoLayout, ok := parseStepLayoutFlag(*stepLayout)
	if !ok {
		fmt.Fprintf(c.stderr, "mmft train: --step-layout %q: want full, shared, recompute or auto\n", *stepLayout)
		return errUsage
	}
	if *steps < 0 {
		fmt.Fprintf(c.stderr, "mmft train: --steps %d: give a positive number of steps, or 0 for --epochs passes\n", *steps)
		return errUsage
	}
	if *gpuMem < 0 {
		fmt.Fprintf(c.stderr, "mmft train: --gpu-memory %g: give a size in GiB, or 0 for the device's own\n", *gpuMem)
		return errUsage
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(c.stderr, "warning:", w)
	}
	spec, judgeWeight, err := mmft.SplitJudge(*rewardSpec)
	if err != nil {
		return fmt.Errorf("--rewards: %w", err)
	}
	var set rewards.Set
	if strings.TrimSpace(spec) != "" {
		if set, err = rewards.Default().ParseSet(spec); err != nil {
			return fmt.Errorf("--rewards: %w", err)
		}
	}
	opts, err := dev.Options()
	if err != nil {
		return err
	}
	// Training on the CPU runs each program's operations one at a time:
	// GoMLX's parallel scheduling can hang (compute.Options.CPUSequentialOps).
	opts.CPUSequentialOps = true
	be, err := compute.New(opts)
	if err != nil {
		return err
	}
	if autoLayout {
		stepLay = mmft.AutoStepLayout(be.Device, cfg.LoRADropout)
	}
	defer be.Backend.Finalize()
	layout, err := lay.Layout(be.Backend.NumDevices())
	if err == nil {
		err = layout.CheckRollout()
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "mmft train: %s (device %s)\n", strings.TrimPrefix(err.Error(), "distributed: "), be.Device)
		return errUsage
	}
	if lay.MaxStaleness > 0 && !cfg.Objective.ImportanceSamplingCorrection {
		fmt.Fprintf(c.stderr, "warning: --max-staleness %d without --importance-sampling-correction: completions of an adapter up to %d steps old are weighted as if on-policy\n",
			lay.MaxStaleness, lay.MaxStaleness)
	}
	isEmbedded := embedded.IsName(cfg.ModelName)
	if *dataRef == "" {
		if !isEmbedded {
			fmt.Fprintln(c.stderr, "mmft train: --data is required with --model (a Sujet-layout folder, .parquet file or Hub dataset id)")
			return errUsage
		}
		*dataRef = embedded.Name
	}
	if be.Device != compute.CPU || *gpuMem > 0 {
		wdt := dtypes.BFloat16 // mmft.LoadModel's choice of dtype
		if *dtype == "float32" || *dtype == "f32" || ((*dtype == "" || *dtype == "auto") && be.Device == compute.CPU) {
			wdt = dtypes.Float32
		}
		if err := printTrainPlan(c, be, cfg, layout, stepLay, wdt, int64(*gpuMem*(1<<30))); err != nil {
			return err
		}
	}
	t0 := time.Now()
	model, err := mmft.LoadModel(c.ctx, be, cfg.ModelName, mmft.ModelOptions{DType: *dtype, Seed: cfg.Seed, Progress: c.stderr, Device: layout.Rollout[0]})
	if err != nil {
		return err
	}
	d, err := mmft.LoadData(c.ctx, *dataRef, *split, mmft.DataOptions{Seed: cfg.Seed, Progress: c.stderr})
	if err != nil {
		return err
	}
	job := &mmft.TrainJob{Config: cfg, Model: model, Data: d, Rewards: set, Steps: *steps, Resume: *resume,
		Layout: &layout, MaxStaleness: lay.MaxStaleness, StepLayout: stepLay, HeadInDType: headInDType}
	if judgeWeight != 0 {
		job.BatchRewards = append(job.BatchRewards, mmft.JudgeReward(model, judgeWeight))
	}
	total := job.TotalSteps()
	where := string(be.Device)
	if be.Device != compute.CPU {
		where = fmt.Sprintf("%s, %v", be.Device, layout)
	}
	fmt.Fprintf(c.stderr, "mmft train: %s on %s (%s, %d samples), %d steps of %d prompts × %d completions, device %s; loaded in %v\n",
		cfg.ModelName, d.Ref, d.Split, d.Len, total, cfg.BatchSize, cfg.NumGenerations, where, time.Since(t0).Round(time.Millisecond))
	var bar *progressbar.ProgressBar
	if !*quiet {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(c.stderr), progressbar.OptionSetDescription("training"),
			progressbar.OptionShowCount(), progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish())
	}
	if !layout.Colocated() {
		said := false
		job.OnSync = func(st distributed.SyncStats) {
			if !said { // the first sync says the route; metrics.jsonl has every one
				said = true
				fmt.Fprintf(c.stderr, "mmft train: %v (GPU %v → GPU %d)\n", st, layout.Train, layout.Rollout[0])
			}
		}
	}
	job.OnStep = func(step, steps int, m grpo.Metrics) {
		if bar != nil {
			bar.Describe(fmt.Sprintf("reward %.3f", float64(m["reward"])))
			_ = bar.Set(step)
		}
	}
	if err := job.Prepare(c.ctx); err != nil {
		return err
	}
	if bar != nil {
		_ = bar.Set(job.Trainer().StepsDone())
	}
	if err := job.Run(c.ctx); err != nil {
		if errors.Is(err, c.ctx.Err()) && c.ctx.Err() != nil {
			fmt.Fprintf(c.stderr, "\nmmft train: interrupted after step %d; resume with --resume %s\n", job.Trainer().StepsDone(), cfg.OutputDir)
		}
		return err
	}
	if bar != nil {
		_ = bar.Finish()
	}
	h := job.Trainer().History()
	rs := mmft.SummarizeReward(h, "reward")
	fmt.Fprintf(c.stdout, "trained %d steps in %v: mean reward (over %d steps) %.3f → %.3f, peak %.3f at step %d; adapter, metrics and report in %s\n",
		len(h), time.Since(t0).Round(time.Second), rs.Window, rs.Start, rs.End, rs.Peak, rs.PeakStep, cfg.OutputDir)
	return nil
}

// namesModel reports whether the arguments choose a model: --model,
// --model_name, or a --config file with a model_name key.
func namesModel(args []string) bool {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch name {
		case "model", "model_name":
			return true
		case grpo.ConfigFlag:
			path := val
			if !hasVal && i+1 < len(args) {
				path = args[i+1]
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return false // the flag's own parsing reports it
			}
			var m map[string]any
			if yaml.Unmarshal(raw, &m) == nil {
				if _, ok := m["model_name"]; ok {
					return true
				}
			}
		}
	}
	return false
}

// parseStepLayoutFlag reads a --step-layout value: a layout, or auto (the
// device's layout, mmft.AutoStepLayout, chosen once the device is known);
// ok is false for anything else.
func parseStepLayoutFlag(v string) (l mmft.StepLayout, auto, ok bool) {
	if strings.EqualFold(strings.TrimSpace(v), "auto") {
		return "", true, true
	}
	l, err := mmft.ParseStepLayout(v)
	return l, false, err == nil
}

// printTrainPlan prints the per-GPU memory of the run's layout (each part:
// weights, adapters, gradients, optimizer moments, activation estimates)
// and refuses the run when a GPU cannot fit it, before any weight is
// loaded. step is the GRPO step's layout, wdt the weights' dtype; capacity
// is each GPU's memory (0: the first device's, when known).
func printTrainPlan(c *cli, be *compute.Backend, cfg grpo.Config, l distributed.Layout, step mmft.StepLayout, wdt dtypes.DType, capacity int64) error {
	var mc qwen2vl.Config
	var err error
	if embedded.IsName(cfg.ModelName) {
		mc, err = embedded.Config()
	} else {
		mc, err = c.modelConfig(cfg.ModelName)
	}
	if err != nil {
		return err
	}
	if info := be.Info(); capacity == 0 && len(info.Devices) > 0 {
		capacity = info.Devices[0].MemoryBytes
	}
	p, err := mmft.TrainPlan(cfg, mc, l, step, wdt, capacity)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "memory plan (prompts of about %d tokens; mmft plan shows other layouts and prompt lengths):\n", mmft.PlanPromptLen)
	if err := p.Write(c.stderr); err != nil {
		return err
	}
	return p.Check()
}
