package mmft

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/internal/atomicfile"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/report"
	"github.com/mmft-go/mmft/rewards"
)

// Files a training run writes into its output folder.
const (
	MetricsFile = "metrics.jsonl" // one JSON line of metrics per step
	ReportFile  = "report.md"     // the summary with the reward curve
	RewardChart = "reward.svg"    // mean reward per step
	CurvesChart = "curves.svg"    // KL and completion length per step
	AdapterDir  = "adapter"       // the final adapter, PEFT's format
)

// TrainJob is one training run: a model, data, rewards and a configuration,
// with its output folder (metrics, checkpoints, final adapter, report).
type TrainJob struct {
	Config  grpo.Config
	Model   *Model
	Data    *Data
	Rewards rewards.Set
	// BatchRewards are rewards scored over a whole step (JudgeReward).
	BatchRewards []grpo.BatchReward
	// Steps is the number of rollout batches (0: Config.Epochs passes over the data).
	Steps int
	// Resume is a checkpoint folder, or a run folder whose latest checkpoint
	// is taken ("" for a fresh run).
	Resume string
	// OnStep is called after each step with its metrics (nil: nothing).
	OnStep func(step, steps int, m grpo.Metrics)
	// OnRollout reports rollout progress within a step (nil: nothing).
	OnRollout func(done, total int)
	// Layout places rollouts and training (nil: colocated on the model's
	// device). Split, the trainer runs on its own runner over the training
	// GPUs (an FSDP mesh where the backend can shard) with its own copy of
	// the base weights, and the engine (Model, loaded on the rollout GPU:
	// ModelOptions.Device) gets a copy of the adapter before rollouts.
	Layout *distributed.Layout
	// MaxStaleness is the split layout's off-policy option: how many
	// optimizer steps the engine's adapter may lag (0: on-policy; see
	// grpo.Setup.MaxStaleness).
	MaxStaleness int
	// OnSync, when set, is told about every adapter sync of the split
	// layout (bytes, seconds and route: "device" to device, or "host").
	OnSync func(distributed.SyncStats)
	// StepLayout is how the GRPO step lays out its sequences: StepFull
	// (every row's prompt computed, the default), StepShared (each group's
	// prompt computed once, exact and faster) or StepRecompute (shared
	// prompt, layer by layer with recomputation: least memory).
	StepLayout StepLayout
	// HeadInDType computes the GRPO step's LM-head logits as products in
	// the model dtype (bf16 on a GPU, as PyTorch's bf16 lm_head does)
	// instead of float32 products of the rounded inputs
	// (grpo.Setup.HeadInDType).
	HeadInDType bool

	trainer *grpo.Trainer
}

// StepLayout chooses the GRPO step's layout (TrainJob.StepLayout).
type StepLayout string

// The GRPO step's layouts; "" is StepFull.
const (
	StepFull      StepLayout = "full"
	StepShared    StepLayout = "shared"
	StepRecompute StepLayout = "recompute"
)

// CPUStepLayout is the step layout `mmft train --step-layout auto` uses on
// the CPU: each group's prompt is computed once (the same loss and gradient
// as StepFull, float rounding aside). The embedded default's prompt is long
// beside its 4-token completions, so the main job's update takes about a
// tenth of the full layout's time (0.25 s instead of 2.5 s per update of 32
// completions on 2 cores). `mmft train` runs it on a CPU backend that
// executes operations one at a time (compute.Options.CPUSequentialOps): with
// GoMLX's parallel scheduling this layout hung in 3 of 5 runs.
const CPUStepLayout = StepShared

// AutoStepLayout is the step layout `--step-layout auto` picks for a device
// (compute.CPU or compute.GPU): on the CPU CPUStepLayout; on a GPU
// StepRecompute (the least memory; the benchmarked layout), or StepShared
// when lora_dropout > 0 (recomputation redraws no dropout mask).
func AutoStepLayout(dev string, loraDropout float64) StepLayout {
	switch {
	case dev == compute.CPU:
		return CPUStepLayout
	case loraDropout > 0:
		return StepShared
	}
	return StepRecompute
}

// ParseStepLayout reads a step layout name ("" is StepFull).
func ParseStepLayout(s string) (StepLayout, error) {
	switch l := StepLayout(strings.ToLower(strings.TrimSpace(s))); l {
	case "", StepFull:
		return StepFull, nil
	case StepShared, StepRecompute:
		return l, nil
	}
	return "", fmt.Errorf("mmft: step layout %q: want full, shared or recompute", s)
}

// TotalSteps returns the run's length in rollout batches.
func (j *TrainJob) TotalSteps() int {
	if j.Steps > 0 {
		return j.Steps
	}
	per := (j.Data.Len + j.Config.BatchSize - 1) / j.Config.BatchSize
	return max(1, per*j.Config.Epochs)
}

// Trainer returns the job's trainer once Run has built it.
func (j *TrainJob) Trainer() *grpo.Trainer { return j.trainer }

// Prepare builds the trainer (and restores the checkpoint to resume from)
// without training; Run calls it when needed.
func (j *TrainJob) Prepare(ctx context.Context) error {
	if j.trainer != nil {
		return nil
	}
	if j.Model == nil || j.Data == nil {
		return errors.New("mmft: a training job needs a model and data")
	}
	if j.Config.BatchSize > j.Data.Len {
		return fmt.Errorf("mmft: batch_size (--batch-size) %d is larger than the %d samples of %s split %s; use at most %d",
			j.Config.BatchSize, j.Data.Len, j.Data.Ref, j.Data.Split, j.Data.Len)
	}
	steps := j.TotalSteps()
	if def := EmbeddedTrainConfig().Schedule.WarmupSteps; j.Config.Schedule.WarmupSteps == def && steps < def {
		// A short try of the main job (--steps 2) warms up over the whole
		// run; a warm-up set to anything else must fit the run.
		j.Config.Schedule.WarmupSteps = steps
	}
	s := j.setup()
	layout, err := ParseStepLayout(string(j.StepLayout))
	if err != nil {
		return err
	}
	s.SharedPrompt = layout == StepShared
	s.Recompute = layout == StepRecompute
	s.HeadInDType = j.HeadInDType
	if err := placeJob(&s, j.Model, j.Config, j.Layout, j.MaxStaleness); err != nil {
		return err
	}
	if s.Sync != nil {
		s.Sync.Log = j.OnSync
	}
	tr, err := grpo.New(j.Config, s)
	if err != nil {
		return err
	}
	if j.Resume != "" {
		dir, err := resolveCheckpoint(j.Resume)
		if err != nil {
			return err
		}
		ck, err := grpo.LoadCheckpoint(dir)
		if err != nil {
			return err
		}
		if err := tr.Restore(ctx, ck); err != nil {
			return fmt.Errorf("mmft: resuming from %s: %w", dir, err)
		}
	}
	j.trainer = tr
	return nil
}

// setup is the trainer's setup before the layout places it.
func (j *TrainJob) setup() grpo.Setup {
	s := grpo.Setup{Engine: j.Model.Engine, Processor: j.Model.Processor, Prompt: prompt.DefaultConfig(), Rewards: j.Rewards,
		Data: j.Data.Epochs, Steps: j.TotalSteps(), BatchRewards: j.BatchRewards}
	if j.OnRollout != nil {
		s.Progress = func(p engine.Progress) { j.OnRollout(p.Done, p.Total) }
	}
	return s
}

// resolveCheckpoint returns dir when it is a checkpoint, else the latest
// checkpoint of the run folder dir.
func resolveCheckpoint(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, grpo.StateFile)); err == nil {
		return dir, nil
	}
	steps, err := grpo.ListCheckpoints(dir)
	if err != nil {
		return "", fmt.Errorf("mmft: --resume %s: %w", dir, err)
	}
	if len(steps) == 0 {
		return "", fmt.Errorf("mmft: --resume %s: no checkpoint there (give a run's output folder or one of its checkpoint folders)", dir)
	}
	return grpo.CheckpointDir(dir, slices.Max(steps)), nil
}

// Run trains until the run's last step (or ctx is cancelled: then the last
// finished step is checkpointed and ctx's error returned), writing metrics,
// checkpoints (the seed's evenly spaced ones plus the latest), the final
// adapter and the report into Config.OutputDir.
func (j *TrainJob) Run(ctx context.Context) error {
	out := j.Config.OutputDir
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("mmft: output folder: %w", err)
	}
	if err := j.Prepare(ctx); err != nil {
		return err
	}
	tr := j.trainer
	steps := j.TotalSteps()
	ret := grpo.Retention{Keep: j.Config.SaveNumber, Every: j.Config.SaveSteps, TotalSteps: steps}
	// The metrics file holds exactly the steps done: on resume it is rewritten
	// from the checkpoint's history, so lines of a killed run's later steps go.
	if err := writeMetrics(filepath.Join(out, MetricsFile), tr.History()); err != nil {
		return err
	}
	mf, err := os.OpenFile(filepath.Join(out, MetricsFile), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("mmft: %w", err)
	}
	defer mf.Close()
	saved := tr.StepsDone()
	save := func() error {
		if tr.StepsDone() == saved {
			return nil
		}
		ck, err := tr.Checkpoint()
		if err != nil {
			return err
		}
		if err := grpo.SaveCheckpoint(grpo.CheckpointDir(out, tr.StepsDone()), ck); err != nil {
			return err
		}
		saved = tr.StepsDone()
		_, err = ret.Prune(out)
		return err
	}
	for tr.StepsDone() < steps {
		m, err := tr.Step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				if serr := save(); serr != nil {
					return errors.Join(err, serr)
				}
			}
			return err
		}
		line, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("mmft: metrics: %w", err)
		}
		if _, err := mf.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("mmft: writing metrics: %w", err)
		}
		if j.OnStep != nil {
			j.OnStep(tr.StepsDone(), steps, m)
		}
		if ret.ShouldSave(tr.StepsDone()) {
			if err := save(); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			if serr := save(); serr != nil {
				return errors.Join(err, serr)
			}
			return err
		}
	}
	ad, err := tr.Adapter()
	if err != nil {
		return err
	}
	if err := ad.Save(filepath.Join(out, AdapterDir)); err != nil {
		return fmt.Errorf("mmft: saving the adapter: %w", err)
	}
	return WriteReport(out, j.Config, tr.History())
}

// writeMetrics rewrites the metrics file with history.
func writeMetrics(path string, history []grpo.Metrics) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, m := range history {
			line, err := json.Marshal(m)
			if err != nil {
				return err
			}
			bw.Write(append(line, '\n'))
		}
		return bw.Flush()
	})
}

// Series returns metric key of every step of history as a chart series.
func Series(history []grpo.Metrics, key, name string) report.Series {
	s := report.Series{Name: name}
	for i, m := range history {
		v, ok := m[key]
		if !ok {
			continue
		}
		x := float64(i + 1)
		if st, ok := m["step"]; ok {
			x = float64(st)
		}
		s.X, s.Y = append(s.X, x), append(s.Y, float64(v))
	}
	return s
}

// SmoothingWindow returns the number of steps RewardChartOf and the report
// average the reward over: an eighth of the run, at least 1 and at most 8.
func SmoothingWindow(steps int) int { return max(1, min(8, steps/8)) }

// MovingAverage returns s averaged over the last window points at each point
// (fewer at the start).
func MovingAverage(s report.Series, window int, name string) report.Series {
	out := report.Series{Name: name, X: slices.Clone(s.X), Y: make([]float64, len(s.Y))}
	sum := 0.0
	for i, y := range s.Y {
		sum += y
		if i >= window {
			sum -= s.Y[i-window]
		}
		out.Y[i] = sum / float64(min(i+1, window))
	}
	return out
}

// RewardSummary is the course of a reward over a run, each figure a mean
// over Window steps: the first Window steps, the best Window consecutive
// steps (ending at PeakStep) and the last Window steps.
type RewardSummary struct {
	Window                 int
	Start, Peak, End, Rise float64 // Rise = End − Start
	PeakStep               int
}

// SummarizeReward summarizes metric key (e.g. "reward" or
// "reward/structural") of history.
func SummarizeReward(history []grpo.Metrics, key string) RewardSummary {
	s := Series(history, key, key)
	w := SmoothingWindow(len(s.Y))
	out := RewardSummary{Window: w}
	if len(s.Y) == 0 {
		return out
	}
	avg := MovingAverage(s, w, key)
	w = min(w, len(s.Y))
	out.Start, out.End = avg.Y[w-1], avg.Y[len(avg.Y)-1]
	out.Peak, out.PeakStep = avg.Y[w-1], int(avg.X[w-1])
	for i := w - 1; i < len(avg.Y); i++ {
		if avg.Y[i] > out.Peak {
			out.Peak, out.PeakStep = avg.Y[i], int(avg.X[i])
		}
	}
	out.Rise = out.End - out.Start
	return out
}

// RewardChartOf draws the mean reward and its components per step, with
// the total's moving average (SmoothingWindow steps).
func RewardChartOf(history []grpo.Metrics) report.Chart {
	total := Series(history, "reward", "total")
	w := SmoothingWindow(len(total.Y))
	c := report.Chart{Title: "reward per step", XLabel: "step", YLabel: "mean reward",
		Series: []report.Series{total, MovingAverage(total, w, fmt.Sprintf("total, mean of %d steps", w))}}
	keys := map[string]bool{}
	for _, m := range history {
		for k := range m {
			if strings.HasPrefix(k, "reward/") && !strings.HasSuffix(k, "_std") {
				keys[k] = true
			}
		}
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		c.Series = append(c.Series, Series(history, k, strings.TrimPrefix(k, "reward/")))
	}
	return c
}

// CurvesChartOf draws KL and mean completion length per step.
func CurvesChartOf(history []grpo.Metrics) report.Chart {
	return report.Chart{Title: "KL and completion length", XLabel: "step", YLabel: "value", Series: []report.Series{
		Series(history, "kl", "KL to reference"), Series(history, "completion_length", "completion length (tokens)")}}
}

// WriteReport writes the run's report (Markdown) and charts into dir.
func WriteReport(dir string, cfg grpo.Config, history []grpo.Metrics) error {
	if len(history) == 0 {
		return errors.New("mmft: no step to report")
	}
	for name, c := range map[string]report.Chart{RewardChart: RewardChartOf(history), CurvesChart: CurvesChartOf(history)} {
		svg, err := c.SVG()
		if err != nil {
			return err
		}
		if err := atomicfile.WriteBytes(filepath.Join(dir, name), svg); err != nil {
			return err
		}
	}
	last := history[len(history)-1]
	k := max(1, min(5, len(history)/4))
	avg := func(ms []grpo.Metrics, key string) float64 {
		s, n := 0.0, 0
		for _, m := range ms {
			if v, ok := m[key]; ok && !math.IsNaN(float64(v)) {
				s += float64(v)
				n++
			}
		}
		return s / float64(max(n, 1))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# mmft training report\n\nModel `%s`, %d steps, %s.\n\n", cfg.ModelName, len(history), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "![reward](%s)\n\n![curves](%s)\n\n", RewardChart, CurvesChart)
	rewardKeys := []string{"reward"}
	if _, ok := last["reward/structural"]; ok {
		rewardKeys = append(rewardKeys, "reward/structural")
	}
	for _, key := range rewardKeys {
		rs := SummarizeReward(history, key)
		fmt.Fprintf(&b, "%s (mean of %d steps): start %.3f, peak %.3f (steps %d–%d), end %.3f; %+.3f over the run.\n\n",
			key, rs.Window, rs.Start, rs.Peak, rs.PeakStep-rs.Window+1, rs.PeakStep, rs.End, rs.Rise)
	}
	wall := 0.0
	for _, m := range history {
		wall += float64(m["step_s"])
	}
	fmt.Fprintf(&b, "Training time: %.0f s (%.2f s per step).\n\n", wall, wall/float64(len(history)))
	fmt.Fprintf(&b, "| metric | first %d steps | last %d steps |\n|---|---|---|\n", k, k)
	keys := []string{"reward"}
	for key := range last {
		if strings.HasPrefix(key, "reward/") && !strings.HasSuffix(key, "_std") {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys[1:])
	keys = append(keys, "kl", "completion_length", "entropy", "zero_std_groups", "tokens_per_s", "step_s")
	for _, key := range keys {
		fmt.Fprintf(&b, "| %s | %.4g | %.4g |\n", key, avg(history[:k], key), avg(history[len(history)-k:], key))
	}
	fmt.Fprintf(&b, "\nSettings: seed %d, batch %d prompts × %d generations, %d new tokens at most, temperature %g, lr %g (%s, %d warm-up steps, last %g), β %g, max grad norm %g, LoRA r=%d α=%g on %s.\n",
		cfg.Seed, cfg.BatchSize, cfg.NumGenerations, cfg.Objective.MaxCompletionLength, cfg.Temperature, cfg.Schedule.LearningRate, cfg.Schedule.Kind,
		cfg.Schedule.WarmupSteps, cfg.Schedule.LastLearningRate, cfg.Objective.Beta, cfg.Optimizer.MaxGradNorm, cfg.LoRARank, cfg.LoRAAlpha, strings.Join(cfg.LoRATargetModules, ","))
	fmt.Fprintf(&b, "\nFiles: `%s` (per-step metrics), `%s/` (final adapter, PEFT format), `checkpoint-*/` (resumable checkpoints).\n", MetricsFile, AdapterDir)
	return atomicfile.WriteBytes(filepath.Join(dir, ReportFile), []byte(b.String()))
}
