package grpo

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/lora"
)

// splitOnDevice0 turns s into the split layout's setup with rollouts and
// training both on device 0: the trainer's own runner (the placement
// distributed.PlaceTraining gives on this backend), its own arguments for
// the base weights, and a Syncer that copies the adapter to the engine.
func splitOnDevice0(t *testing.T, s Setup, maxStaleness int, log func(distributed.SyncStats)) Setup {
	t.Helper()
	be := s.Engine.Model().Backend
	l := distributed.Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}
	place, err := distributed.PlaceTraining(be, l, distributed.FSDP{})
	if err != nil {
		t.Fatal(err)
	}
	if place.Mesh != nil || place.Device != 0 {
		t.Fatalf("pure-Go backend: placement %+v, want device 0 without a mesh", place)
	}
	m := s.Engine.Model()
	var ws []*tensors.Tensor
	for _, name := range m.ParamNames() {
		ws = append(ws, m.Param(name))
	}
	weights, copied, err := distributed.TrainWeights(be, place, ws)
	if err != nil {
		t.Fatal(err)
	}
	if copied != 0 || weights[0] != any(ws[0]) {
		t.Fatalf("weights on the same device were copied (%d bytes)", copied)
	}
	s.Runner = execution.New(be, place)
	s.Weights = weights
	s.Sync = &distributed.Syncer{Backend: be, To: 0, Copy: true, Log: log}
	s.MaxStaleness = maxStaleness
	return s
}

func adapterBytes(ad *lora.Adapter) int64 {
	var n int64
	for _, m := range ad.Modules {
		n += 4 * int64(len(m.A)+len(m.B))
	}
	return n
}

// TestSplitOnOneDeviceMatchesColocated runs the split layout's code path
// (own training runner, adapters copied to the engine before every rollout
// batch) with rollouts and training on the one CPU device, against the
// colocated trainer: the adapters after three steps are bit-identical, the
// Syncer ran exactly once per rollout batch with the adapter's bytes, and
// the metrics carry the sync.
func TestSplitOnOneDeviceMatchesColocated(t *testing.T) {
	s := tinySetup(t)
	cfg := tinyConfig()
	const steps = 3
	run := func(s Setup) (*lora.Adapter, []Metrics) {
		tr, err := New(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		var ms []Metrics
		for range steps {
			m, err := tr.Step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		ad, err := tr.Adapter()
		if err != nil {
			t.Fatal(err)
		}
		return ad, ms
	}
	colo, colM := run(s)
	var syncs []distributed.SyncStats
	split, splitM := run(splitOnDevice0(t, s, 0, func(st distributed.SyncStats) { syncs = append(syncs, st) }))

	for _, name := range colo.Names() {
		if !slices.Equal(colo.Modules[name].A, split.Modules[name].A) || !slices.Equal(colo.Modules[name].B, split.Modules[name].B) {
			t.Errorf("module %s: split adapters differ from colocated", name)
		}
	}
	for i := range steps {
		if colM[i]["reward"] != splitM[i]["reward"] || colM[i]["loss"] != splitM[i]["loss"] {
			t.Errorf("step %d: reward %v loss %v split, %v %v colocated", i+1, splitM[i]["reward"], splitM[i]["loss"], colM[i]["reward"], colM[i]["loss"])
		}
		if _, ok := colM[i]["sync_bytes"]; ok {
			t.Errorf("colocated step %d reports a sync", i+1)
		}
	}
	want := adapterBytes(colo)
	if len(syncs) != steps {
		t.Fatalf("%d syncs in %d steps, want one per rollout batch", len(syncs), steps)
	}
	for i, st := range syncs {
		if st.Version != i || st.Bytes != want || st.Tensors != 2*len(colo.Modules) || st.Route == "shared" {
			t.Errorf("sync %d: %+v, want version %d, %d bytes in %d tensors, copied", i, st, i, want, 2*len(colo.Modules))
		}
		if m := splitM[i]; m["sync_bytes"] != Float(want) || m["adapter_lag"] != 0 || m["sync_s"] <= 0 {
			t.Errorf("step %d metrics: sync_bytes %v sync_s %v adapter_lag %v", i+1, m["sync_bytes"], m["sync_s"], m["adapter_lag"])
		}
	}
}

// TestSplitStaleness checks the off-policy option: with MaxStaleness 1 the
// engine keeps the adapter of step 0 for the second rollout batch (its
// values are the initial adapter's, not the trained one) and syncs again
// before the third; settings that cannot work are refused.
func TestSplitStaleness(t *testing.T) {
	s := tinySetup(t)
	cfg := tinyConfig()
	var syncs []distributed.SyncStats
	tr, err := New(cfg, splitOnDevice0(t, s, 1, func(st distributed.SyncStats) { syncs = append(syncs, st) }))
	if err != nil {
		t.Fatal(err)
	}
	initial, err := tr.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	var lags []Float
	for range 2 {
		m, err := tr.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		lags = append(lags, m["adapter_lag"])
	}
	// Step 1 synced version 0; step 2 generated with it (lag 1, allowed).
	if len(syncs) != 1 || syncs[0].Version != 0 {
		t.Fatalf("syncs after 2 steps with staleness 1: %+v, want only version 0", syncs)
	}
	if !slices.Equal(lags, []Float{0, 1}) {
		t.Errorf("adapter lags %v, want [0 1]", lags)
	}
	// The engine's copy is still step 0's: its values are the initial adapter.
	name := initial.Names()[0]
	trained, err := tr.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	held, err := tensors.CopyFlatData[float32](tr.split.synced.Modules[name].B)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held, initial.Modules[name].B) {
		t.Errorf("the engine's copy of %s.B after 2 steps with staleness 1 is not step 0's", name)
	}
	// A third rollout batch would be 2 steps stale: RolloutAdapter syncs.
	l, err := tr.RolloutAdapter()
	if err != nil {
		t.Fatal(err)
	}
	if len(syncs) != 2 || syncs[1].Version != 2 {
		t.Fatalf("syncs %+v, want a second one at version 2", syncs)
	}
	got, err := tensors.CopyFlatData[float32](l.Modules[name].B)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, trained.Modules[name].B) || slices.Equal(initial.Modules[name].B, trained.Modules[name].B) {
		t.Errorf("synced copy of %s.B does not hold the trained values (or training left them unchanged)", name)
	}

	// Refused settings.
	bad := s
	bad.MaxStaleness = 2
	if _, err := New(cfg, bad); err == nil || !strings.Contains(err.Error(), "needs the split layout") {
		t.Errorf("staleness without a syncer: %v", err)
	}
	bad.MaxStaleness = -1
	if _, err := New(cfg, bad); err == nil || !strings.Contains(err.Error(), "max staleness -1") {
		t.Errorf("negative staleness: %v", err)
	}
	bad = splitOnDevice0(t, s, 0, nil)
	bad.Weights = bad.Weights[1:]
	if _, err := New(cfg, bad); err == nil || !strings.Contains(err.Error(), "Setup.Weights") {
		t.Errorf("short weights: %v", err)
	}
}
