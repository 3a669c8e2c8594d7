package mmft

import (
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/grpo"
)

// EmbeddedTrainConfig is the main job's configuration: GRPO on the embedded
// tiny model and documents, sized to learn the answer format in about two
// and a half minutes on two CPU cores (with `mmft train`'s CPU step layout,
// CPUStepLayout; the seed's settings are for the 2B model on GPUs:
// grpo.DefaultConfig). 192 steps of 4 prompts × 8 completions of at most 4
// new tokens: exactly room for the whole format with a one-token answer,
// "</think><answer>5</answer>", so a completion scores 2.0 without having to
// learn to stop (with 8 tokens the policy never learnt to end after a tag,
// and the tags it had not yet sampled were lost among 8 positions of text).
// Two updates per rollout batch (logp_old from the rollout) with DAPO's
// clip-higher (ε 0.2 below, 0.28 above): a rare completion that scores
// better is learnt from twice before the policy turns deterministic, the
// clipping bounding how far the second update moves each token; with one
// update seed 1 settled on "</think>" as the last text (+0.5 per completion),
// its groups all alike, and learnt nothing more. A KL to the reference at
// 0.04; the rate warms up over 4 steps to 5e-3 and follows a cosine down to
// 5e-4.
// Measured on 2026-12-02 (structural reward, mean of the last 5 steps minus
// the first 5): +1.50 for seed 42, +1.48, +1.47, +1.38, +1.47 for seeds 1
// to 4, each settling on a completion worth +1.0 (such as "<answer>…</answer>"
// or "<answer>…</think>" as the last text); the full format (+2.0) is not
// reached. One update per
// batch gave +1.50, +1.00, +1.48, +1.42, +1.49 for seeds 42, 1, 2, 3, 4; 8
// new tokens gave +0.46 for seed 42 in 96 steps and +0.81 in 288
// (bench/results/2026-12-02-cpu-main-job.md).
func EmbeddedTrainConfig() grpo.Config {
	c := grpo.DefaultConfig()
	c.ModelName = embedded.Name
	c.OutputDir = "mmft-run"
	c.Seed = 42
	c.BatchSize = 4
	c.NumGenerations = 8
	c.NumIterations = 2
	c.Epochs = 12 // 64 documents in batches of 4: 192 steps
	c.Objective.MaxCompletionLength = 4
	c.Objective.Beta = 0.04
	c.Objective.EpsilonLow = 0.2
	c.Objective.EpsilonHigh = 0.28
	c.Schedule = grpo.ScheduleConfig{Kind: grpo.ScheduleCosine, LearningRate: 5e-3, LastLearningRate: 5e-4, WarmupSteps: 4}
	c.LoRARank = 8
	c.LoRAAlpha = 16
	c.LoRADropout = 0
	c.SaveNumber = 4
	return c
}

// DefaultRewards is the reward set `mmft train` uses unless told otherwise:
// the seed's structural reward plus answer accuracy.
const DefaultRewards = "structural,accuracy"
