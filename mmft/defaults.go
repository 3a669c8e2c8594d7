package mmft

import (
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/grpo"
)

// EmbeddedTrainConfig is the main job's configuration: GRPO on the embedded
// tiny model and documents, sized to learn the answer format in a few
// minutes on two CPU cores (the seed's settings are for the 2B model on GPUs:
// grpo.DefaultConfig).
func EmbeddedTrainConfig() grpo.Config {
	c := grpo.DefaultConfig()
	c.ModelName = embedded.Name
	c.OutputDir = "mmft-run"
	c.Seed = 42
	c.BatchSize = 4
	c.NumGenerations = 8
	c.NumIterations = 1
	c.Epochs = 4
	// Eight tokens hold the whole format ("</think><answer>5</answer>" is four
	// of them) and keep random completions from repeating tags; a KL to the
	// reference at 0.04 and a rate of 5e-3 keep the policy from collapsing
	// onto one completion (at 1e-2 without KL it did, in runs on 2026-12-02).
	c.Objective.MaxCompletionLength = 8
	c.Objective.Beta = 0.04
	c.Schedule = grpo.ScheduleConfig{Kind: grpo.ScheduleConstant, LearningRate: 5e-3}
	c.LoRARank = 8
	c.LoRAAlpha = 16
	c.LoRADropout = 0
	c.SaveNumber = 4
	return c
}

// DefaultRewards is the reward set `mmft train` uses unless told otherwise:
// the seed's structural reward plus answer accuracy.
const DefaultRewards = "structural,accuracy"
