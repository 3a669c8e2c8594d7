package mmft

import (
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/grpo"
)

// EmbeddedTrainConfig is the main job's configuration: GRPO on the embedded
// tiny model and documents, sized to learn the answer format in about four and
// a half minutes on two CPU cores (the seed's settings are for the 2B model on
// GPUs: grpo.DefaultConfig). 96 steps of 4 prompts × 8 completions of at most
// 8 new tokens (room for the whole format, "</think><answer>5</answer>" is
// four tokens, and for an end token after it); a KL to the reference at 0.04;
// the rate warms up over 4 steps to 5e-3 and follows a cosine down to 5e-4, so
// the policy moves fast while the tags are rare and slowly at the end.
// Measured on 2026-12-02 (structural reward, mean of the last 5 steps minus
// the first 5): +0.88 for seed 42, +1.32, +0.86, +0.88 for seeds 1, 3, 4,
// +0.23 for seed 2 (which lost its tags in one update); a peak of 3e-3 gave
// +0.50 to +0.59 on seeds 42, 1 and 2, 1e-2 drifted onto random completions
// (bench/results/2026-12-02-cpu-main-job.md).
func EmbeddedTrainConfig() grpo.Config {
	c := grpo.DefaultConfig()
	c.ModelName = embedded.Name
	c.OutputDir = "mmft-run"
	c.Seed = 42
	c.BatchSize = 4
	c.NumGenerations = 8
	c.NumIterations = 1
	c.Epochs = 6 // 64 documents in batches of 4: 96 steps
	c.Objective.MaxCompletionLength = 8
	c.Objective.Beta = 0.04
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
