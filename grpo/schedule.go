package grpo

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Learning-rate schedule kinds (transformers' lr_scheduler_type names).
const (
	// ScheduleLinear goes linearly from LearningRate to LastLearningRate over
	// the run (the seed's LinearLR 5e-6 → 1e-6).
	ScheduleLinear = "linear"
	// ScheduleConstant stays at LearningRate.
	ScheduleConstant = "constant"
	// ScheduleCosine follows half a cosine from LearningRate down to LastLearningRate.
	ScheduleCosine = "cosine"
)

// ScheduleKinds lists the accepted schedule kinds.
var ScheduleKinds = []string{ScheduleLinear, ScheduleConstant, ScheduleCosine}

// ScheduleConfig chooses the learning-rate schedule.
type ScheduleConfig struct {
	// Kind is "linear", "constant" or "cosine".
	Kind string `yaml:"lr_scheduler_type"`
	// LearningRate is the peak learning rate, reached after warm-up (seed: --lr).
	LearningRate float64 `yaml:"learning_rate"`
	// LastLearningRate is where linear and cosine end (seed: --last_lr).
	LastLearningRate float64 `yaml:"last_learning_rate"`
	// WarmupSteps ramps the rate linearly from 0 during the first steps.
	WarmupSteps int `yaml:"warmup_steps"`
}

// Validate checks the configuration and returns one error naming the first bad field.
func (c *ScheduleConfig) Validate() error {
	switch {
	case !slices.Contains(ScheduleKinds, c.Kind):
		return fmt.Errorf("grpo: lr_scheduler_type %q: use one of %s", c.Kind, strings.Join(ScheduleKinds, ", "))
	case !finite(c.LearningRate) || c.LearningRate <= 0:
		return fmt.Errorf("grpo: learning_rate (--lr) %v: must be a positive number, e.g. 5e-6", c.LearningRate)
	case !finite(c.LastLearningRate) || c.LastLearningRate < 0:
		return fmt.Errorf("grpo: last_learning_rate (--last_lr) %v: must be a number ≥ 0, e.g. 1e-6", c.LastLearningRate)
	case c.WarmupSteps < 0:
		return fmt.Errorf("grpo: warmup_steps %d: must be ≥ 0", c.WarmupSteps)
	}
	return nil
}

// Schedule gives the learning rate at a schedule step (0, 1, …). The loop
// decides what a step is; the seed advances it once per rollout batch, after
// its grpo_iters optimizer updates, so they all share one rate. Past the
// last step the rate stays at its final value.
type Schedule func(step int) float64

// NewSchedule returns the schedule c describes over totalSteps steps.
func NewSchedule(c ScheduleConfig, totalSteps int) (Schedule, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if totalSteps <= 0 {
		return nil, fmt.Errorf("grpo: schedule: %d total steps; want a positive number (batches per epoch × epochs)", totalSteps)
	}
	if c.WarmupSteps > totalSteps {
		return nil, fmt.Errorf("grpo: warmup_steps %d is longer than the run's %d steps", c.WarmupSteps, totalSteps)
	}
	switch c.Kind {
	case ScheduleConstant:
		return Constant(c.LearningRate, c.WarmupSteps), nil
	case ScheduleCosine:
		return Cosine(c.LearningRate, c.LastLearningRate, c.WarmupSteps, totalSteps), nil
	default:
		return Linear(c.LearningRate, c.LastLearningRate, c.WarmupSteps, totalSteps), nil
	}
}

// warmup returns the warm-up factor at step: step/warmup during warm-up
// (transformers' convention: step 0 has rate 0), 1 after.
func warmup(step, steps int) float64 {
	if step < steps {
		return float64(step) / float64(steps)
	}
	return 1
}

// decayProgress returns how far step is through the decay phase, in [0, 1].
func decayProgress(step, warmupSteps, total int) float64 {
	if total <= warmupSteps {
		return 1
	}
	return math.Min(1, math.Max(0, float64(step-warmupSteps)/float64(total-warmupSteps)))
}

// Linear warms up over warmupSteps, then goes linearly from lr at the end of
// warm-up to last at totalSteps. With no warm-up it is the seed's
// torch.optim.lr_scheduler.LinearLR(start_factor=1, end_factor=last/lr,
// total_iters=totalSteps): lr at step 0, last at step totalSteps.
func Linear(lr, last float64, warmupSteps, totalSteps int) Schedule {
	return func(step int) float64 {
		if step < warmupSteps {
			return lr * warmup(step, warmupSteps)
		}
		return lr + (last-lr)*decayProgress(step, warmupSteps, totalSteps)
	}
}

// Constant warms up over warmupSteps, then stays at lr.
func Constant(lr float64, warmupSteps int) Schedule {
	return func(step int) float64 { return lr * warmup(step, warmupSteps) }
}

// Cosine warms up over warmupSteps, then follows
// last + (lr − last)·(1 + cos(π·progress))/2 down to last at totalSteps
// (transformers' cosine schedule when last is 0).
func Cosine(lr, last float64, warmupSteps, totalSteps int) Schedule {
	return func(step int) float64 {
		if step < warmupSteps {
			return lr * warmup(step, warmupSteps)
		}
		p := decayProgress(step, warmupSteps, totalSteps)
		return last + (lr-last)*0.5*(1+math.Cos(math.Pi*p))
	}
}
