package grpo

import (
	"errors"
	"fmt"

	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/qwen2vl"
)

// The split layout's hook: the engine generates with its own copy of the
// adapter, which Setup.Sync refreshes before a rollout batch whenever it is
// more than Setup.MaxStaleness optimizer steps (rollout batches) behind the
// trainer's. With MaxStaleness 0 that is before every rollout batch, after
// the previous batch's updates: exactly one sync per rollout batch, of the
// adapter its μ optimizer steps produced (the intermediate adapters of
// μ > 1 are never generated with, so they are not copied). The sync's
// bytes and seconds, and the adapter's lag, go into the step's metrics
// (sync_bytes, sync_s, adapter_lag).

// splitState is the engine's adapter copy and the version it holds.
type splitState struct {
	synced   *qwen2vl.LoRA // the engine's copy (nil: none yet, or the trainer's adapter was replaced)
	syncedAt int           // the trainer's step the copy was made at
	gate     *distributed.Gate
}

func newSplitState(s Setup) splitState {
	return splitState{gate: &distributed.Gate{MaxLag: s.MaxStaleness}}
}

// invalidate drops the engine's copy: the trainer's adapter was replaced
// (LoadAdapter, Restore), so the next rollout syncs whatever the lag.
func (s *splitState) invalidate() { s.synced = nil }

// checkSplit validates the split layout's settings of a Setup.
func checkSplit(s Setup) error {
	switch {
	case s.MaxStaleness < 0:
		return fmt.Errorf("grpo: max staleness %d: give 0 (on-policy) or a positive number of steps", s.MaxStaleness)
	case s.MaxStaleness > 0 && s.Sync == nil:
		return errors.New("grpo: a max staleness above 0 needs the split layout (Setup.Sync): colocated, the engine reads the trainer's adapter, which is always current")
	case s.Sync != nil && s.Sync.Backend == nil:
		return errors.New("grpo: Setup.Sync has no backend")
	}
	return nil
}

// rolloutAdapter returns the adapter the engine generates the next rollout
// batch with, syncing it first when the split layout's copy is missing or
// too stale, and the sync's metrics (none colocated).
func (t *Trainer) rolloutAdapter() (*qwen2vl.LoRA, Metrics, error) {
	if t.s.Sync == nil {
		return t.lora, nil, nil
	}
	sp := &t.split
	sp.gate.Stepped(t.step)
	m := Metrics{"sync_bytes": 0, "sync_s": 0}
	if sp.synced == nil || sp.gate.Check(sp.syncedAt) != nil {
		l, st, err := t.s.Sync.PushLoRA(t.step, t.lora)
		if err != nil {
			return nil, nil, fmt.Errorf("grpo: %w", err)
		}
		sp.synced, sp.syncedAt = l, t.step
		m["sync_bytes"], m["sync_s"] = Float(st.Bytes), Float(st.Took.Seconds())
	}
	if err := sp.gate.Check(sp.syncedAt); err != nil {
		return nil, nil, fmt.Errorf("grpo: %w", err)
	}
	m["adapter_lag"] = Float(t.step - sp.syncedAt)
	return sp.synced, m, nil
}

// RolloutAdapter returns the adapter the engine generates with (for
// rollouts and evaluations outside Step): the trainer's own tensors when
// colocated; in the split layout the engine's copy, synced first when it
// is missing or staler than Setup.MaxStaleness allows.
func (t *Trainer) RolloutAdapter() (*qwen2vl.LoRA, error) {
	l, _, err := t.rolloutAdapter()
	return l, err
}
