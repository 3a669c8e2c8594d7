package mmft

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/worker"
)

// The worker commands a worker Session calls; Register adds them to a worker.
const (
	cmdLoadModel     = "mmft.load_model"
	cmdLoadData      = "mmft.load_dataset"
	cmdSamples       = "mmft.show_samples"
	cmdPrompt        = "mmft.prompt_view"
	cmdSetRewards    = "mmft.set_rewards"
	cmdAddReward     = "mmft.add_reward"
	cmdConfig        = "mmft.config"
	cmdSetConfig     = "mmft.set_config"
	cmdResetTraining = "mmft.reset_training"
	cmdRollout       = "mmft.rollout"
	cmdTrain         = "mmft.train"
	cmdHistory       = "mmft.history"
	cmdEvaluate      = "mmft.evaluate"
	cmdSaveAdapter   = "mmft.save_adapter"
	cmdLoadAdapter   = "mmft.load_adapter"
	cmdGPUStatus     = "mmft.gpu_status"
	cmdReset         = "mmft.reset"
)

// Register adds the Session's commands to a worker, all backed by one
// in-process session on the compute backend o selects (nil: from the
// environment) with the layout lay (mmft worker's --rollout-gpus,
// --train-gpus, --max-staleness): the model, data, rewards, trainer and
// adapter live in the worker while cells come and go. Train publishes
// TrainEvents as progress.
func Register(s *worker.Server, o *compute.Options, lay distributed.Flags) error {
	l := newLocal(o, lay)
	cmds := map[string]worker.Handler{
		cmdLoadModel: handle(func(ctx context.Context, a loadModelArgs, _ func(any)) (any, error) { return l.loadModel(ctx, a, nil) }),
		cmdLoadData:  handle(func(ctx context.Context, a loadDataArgs, _ func(any)) (any, error) { return l.loadData(ctx, a, nil) }),
		cmdSamples:   handle(func(ctx context.Context, a samplesArgs, _ func(any)) (any, error) { return l.samples(ctx, a) }),
		cmdPrompt:    handle(func(ctx context.Context, a promptArgs, _ func(any)) (any, error) { return l.promptView(ctx, a) }),
		cmdSetRewards: handle(func(ctx context.Context, a rewardsArgs, _ func(any)) (any, error) {
			return l.setRewards(a)
		}),
		cmdAddReward: handle(func(ctx context.Context, a addRewardArgs, _ func(any)) (any, error) {
			return l.addReward(a)
		}),
		cmdConfig: handle(func(ctx context.Context, _ struct{}, _ func(any)) (any, error) { return l.getConfig() }),
		cmdSetConfig: handle(func(ctx context.Context, c grpo.Config, _ func(any)) (any, error) {
			return struct{}{}, l.setConfig(c)
		}),
		cmdResetTraining: handle(func(ctx context.Context, _ struct{}, _ func(any)) (any, error) {
			l.resetTraining()
			return struct{}{}, nil
		}),
		cmdRollout: handle(func(ctx context.Context, o RolloutOptions, _ func(any)) (any, error) { return l.rollout(ctx, o) }),
		cmdTrain: handle(func(ctx context.Context, a trainArgs, progress func(any)) (any, error) {
			sum, err := l.train(ctx, a, func(e TrainEvent) { progress(e) })
			return sum, err
		}),
		cmdHistory: handle(func(ctx context.Context, _ struct{}, _ func(any)) (any, error) { return l.history(), nil }),
		cmdEvaluate: handle(func(ctx context.Context, o SessionEvalOptions, _ func(any)) (any, error) {
			return l.evaluate(ctx, o)
		}),
		cmdSaveAdapter: handle(func(ctx context.Context, a adapterArgs, _ func(any)) (any, error) { return l.saveAdapter(a) }),
		cmdLoadAdapter: handle(func(ctx context.Context, a adapterArgs, _ func(any)) (any, error) { return l.loadAdapter(a) }),
		cmdReset: handle(func(ctx context.Context, _ struct{}, _ func(any)) (any, error) {
			l.reset()
			return struct{}{}, nil
		}),
		cmdGPUStatus: handle(func(ctx context.Context, _ struct{}, _ func(any)) (any, error) { return l.gpuStatus() }),
	}
	for name, h := range cmds {
		if err := s.Register(name, h); err != nil {
			return err
		}
	}
	return nil
}

// handle decodes a command's arguments into A and runs f.
func handle[A any](f func(ctx context.Context, a A, progress func(any)) (any, error)) worker.Handler {
	return func(ctx context.Context, req json.RawMessage, progress func(any)) (any, error) {
		var a A
		if len(req) > 0 && string(req) != "null" {
			if err := json.Unmarshal(req, &a); err != nil {
				return nil, fmt.Errorf("mmft: bad arguments %s: %w", req, err)
			}
		}
		return f(ctx, a, progress)
	}
}
