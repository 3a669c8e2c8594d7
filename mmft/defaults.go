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
	c.Objective.MaxCompletionLength = 16
	c.Objective.Beta = 0
	c.Schedule = grpo.ScheduleConfig{Kind: grpo.ScheduleConstant, LearningRate: 1e-2}
	c.LoRARank = 8
	c.LoRAAlpha = 16
	c.LoRADropout = 0
	c.SaveNumber = 4
	return c
}

// DefaultRewards is the reward set `mmft train` uses unless told otherwise:
// the seed's structural reward plus answer accuracy.
const DefaultRewards = "structural,accuracy"
