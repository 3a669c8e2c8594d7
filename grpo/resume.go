package grpo

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Checkpoint returns the trainer's whole state: the adapter and AdamW state
// copied from the device, the schedule and data positions, the random
// streams (each derived from the run's seed and the step or epoch, so their
// seeds say all) and the metrics history.
func (t *Trainer) Checkpoint() (*Checkpoint, error) {
	ad, err := t.Adapter()
	if err != nil {
		return nil, err
	}
	names, shp := AdapterParams(ad)
	opt, err := NewOptimizerState(names, shp)
	if err != nil {
		return nil, err
	}
	host := make([]*tensors.Tensor, len(t.opt))
	for i, x := range t.opt {
		if host[i], err = x.LocalClone(); err != nil {
			return nil, fmt.Errorf("grpo: reading optimizer state: %w", err)
		}
	}
	if err := opt.SetTensors(host); err != nil {
		return nil, err
	}
	epoch, index := t.stream.Position()
	rngs := map[string]RandomStream{
		"sampler": {Seed: t.cfg.Seed, Counter: uint64(t.step)},
		"data":    {Seed: t.cfg.Seed, Counter: uint64(epoch)},
	}
	if t.rng != nil {
		state, err := tensors.CopyFlatData[uint64](t.rng)
		if err != nil {
			return nil, fmt.Errorf("grpo: reading the dropout RNG state: %w", err)
		}
		b := make([]byte, 8*len(state))
		for i, v := range state {
			binary.LittleEndian.PutUint64(b[8*i:], v)
		}
		rngs["dropout"] = RandomStream{Seed: t.cfg.Seed, Counter: uint64(t.step), State: b}
	}
	return &Checkpoint{Adapter: ad, Optimizer: opt, State: TrainState{
		GlobalStep: int64(t.step), ScheduleStep: t.step, TotalSteps: t.s.Steps,
		RNG:  rngs,
		Data: DataPosition{Epoch: epoch, Index: index}, Config: t.cfg, Metrics: slices.Clone(t.history)}}, nil
}

// Restore puts the trainer in the state of a checkpoint taken by the same
// configuration: adapter and optimizer values, step, data position and
// metrics history. The next Step continues exactly where the checkpointed
// run would have.
func (t *Trainer) Restore(ctx context.Context, ck *Checkpoint) error {
	if ck == nil || ck.Adapter == nil || ck.Optimizer == nil {
		return fmt.Errorf("grpo: Restore needs a checkpoint with an adapter and optimizer state")
	}
	if ck.State.Config.Seed != t.cfg.Seed {
		return fmt.Errorf("grpo: the checkpoint was written with seed %d, this run has %d", ck.State.Config.Seed, t.cfg.Seed)
	}
	if err := t.LoadAdapter(ck.Adapter); err != nil {
		return fmt.Errorf("grpo: resuming: %w", err)
	}
	opt := ck.Optimizer.Tensors()
	t.opt = opt
	if t.rng != nil {
		st, ok := ck.State.RNG["dropout"]
		n := t.rng.Shape().Size()
		if !ok || len(st.State) != 8*n {
			return fmt.Errorf("grpo: the checkpoint has no dropout RNG state of %d words (was it written with lora_dropout 0?)", n)
		}
		vals := make([]uint64, n)
		for i := range vals {
			vals[i] = binary.LittleEndian.Uint64(st.State[8*i:])
		}
		t.rng = tensors.FromFlatDataAndDimensions(vals, t.rng.Shape().Dimensions...)
	}
	if err := t.stream.Seek(ctx, ck.State.Data.Epoch, ck.State.Data.Index); err != nil {
		return err
	}
	t.step = ck.State.ScheduleStep
	t.history = slices.Clone(ck.State.Metrics)
	return nil
}
