package mmft

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/qwen2vl"
)

// placeJob fills the layout's part of a trainer's setup. Colocated (l nil
// or one shared GPU) it only checks that the model is on that GPU: the
// trainer then runs on the engine's runner and weights. Split, see
// splitSetup.
func placeJob(s *grpo.Setup, m *Model, cfg grpo.Config, l *distributed.Layout, maxStaleness int) error {
	if l == nil {
		s.MaxStaleness = maxStaleness // grpo refuses a positive one without the split layout
		return nil
	}
	if l.Colocated() {
		if got := int(m.Model.Device); got != l.Train[0] {
			return fmt.Errorf("mmft: layout %v, but the model is on device %d: load it on GPU %d (ModelOptions.Device)", l, got, l.Train[0])
		}
		s.MaxStaleness = maxStaleness
		return nil
	}
	return splitSetup(s, m, cfg, *l, maxStaleness)
}

// splitSetup fills s for the split layout l: the training placement on
// l.Train (distributed.PlaceTraining: the FSDP mesh where the backend can
// shard), the base weights laid out there once (distributed.TrainWeights),
// and a Syncer that copies the adapter to the engine's GPU, l.Rollout[0],
// where the model must have been loaded. It also serves rollouts and
// training that share one device (a layout whose Rollout and Train name
// the same GPU, which Prepare treats as colocated): the engine then still
// gets its own copy of the adapter, through the same code.
func splitSetup(s *grpo.Setup, m *Model, cfg grpo.Config, l distributed.Layout, maxStaleness int) error {
	if err := l.CheckRollout(); err != nil {
		return err
	}
	mm := m.Model
	if got := int(mm.Device); got != l.Rollout[0] {
		return fmt.Errorf("mmft: layout %v, but the model (and its engine) is on device %d: load it on the rollout GPU %d (ModelOptions.Device)", l, got, l.Rollout[0])
	}
	shapes := map[string][]int{}
	for _, p := range mm.Config.ParamSpecs() {
		shapes[p.Name] = p.Shape
	}
	targets, err := cfg.LoRAConfig().Targets(shapes)
	if err != nil {
		return fmt.Errorf("mmft: LoRA targets: %w", err)
	}
	names := mm.ParamNames()
	place, err := distributed.PlaceTraining(mm.Backend, l, distributed.FSDP{Roles: distributed.GRPORoles(len(names), 2*len(targets))})
	if err != nil {
		return err
	}
	ws := make([]*tensors.Tensor, len(names))
	for i, name := range names {
		ws[i] = mm.Param(name)
	}
	weights, _, err := distributed.TrainWeights(mm.Backend, place, ws)
	if err != nil {
		return err
	}
	s.Runner = execution.New(mm.Backend, place)
	s.Weights = weights
	s.Sync = &distributed.Syncer{Backend: mm.Backend, To: backends.DeviceNum(l.Rollout[0]), Copy: true}
	s.MaxStaleness = maxStaleness
	return nil
}

// PlanPromptLen is the prompt length TrainPlan assumes before the data is
// read: the seed's system prompt, a question and a 504×504 image.
const PlanPromptLen = 512

// TrainPlan is the per-GPU memory of a training run of cfg on a model of
// configuration mc in layout l with GRPO step layout step, with weights of
// dtype wdt, against GPUs of capacity bytes (0: not checked): what mmft
// train prints, and what it and a session's Train check (Plan.Check) before
// the trainer allocates.
func TrainPlan(cfg grpo.Config, mc qwen2vl.Config, l distributed.Layout, step StepLayout, wdt dtypes.DType, capacity int64) (distributed.Plan, error) {
	ga := max(cfg.GradientAccumulationSteps, 1)
	return distributed.NewPlan(distributed.PlanConfig{
		Model: mc, Layout: l, LoRA: cfg.LoRAConfig(), WeightDType: wdt,
		TrainSequences:   cfg.BatchSize * cfg.NumGenerations / ga,
		SeqLen:           PlanPromptLen + cfg.Objective.MaxCompletionLength,
		RolloutSequences: cfg.BatchSize * cfg.NumGenerations,
		RolloutLen:       PlanPromptLen + cfg.Objective.MaxCompletionLength,
		Capacity:         capacity,
		StepLayout:       string(step), PromptLen: PlanPromptLen, GroupSize: cfg.NumGenerations,
	})
}

// checkTrainPlan refuses a session's training run whose plan does not fit
// the GPUs (on a GPU backend; the CPU's memory is not planned) with step
// layout step, with the plan's table in the error.
func checkTrainPlan(be *compute.Backend, cfg grpo.Config, m *Model, l distributed.Layout, step StepLayout) error {
	info := be.Info()
	if be.Device == compute.CPU || len(info.Devices) == 0 {
		return nil
	}
	p, err := TrainPlan(cfg, m.Model.Config, l, step, m.Model.DType, info.Devices[0].MemoryBytes)
	if err != nil {
		return err
	}
	if err := p.Check(); err != nil {
		var b strings.Builder
		_ = p.Write(&b)
		return fmt.Errorf("mmft: %w\n%s", err, b.String())
	}
	return nil
}
