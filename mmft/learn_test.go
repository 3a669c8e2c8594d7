package mmft

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/rewards"
)

// mainJobRise is the least rise of the mean structural reward (range
// −1 … 2) the main job must show: the issue's +1.0. On 2026-12-02 the main
// job (seed 42: 192 steps of at most 4 new tokens, two updates per batch,
// about 2½ minutes on 2 cores with CPUStepLayout) rose +1.50, and seeds 1–4
// +1.48, +1.47, +1.38, +1.47 (bench/results/2026-12-02-cpu-main-job.md).
// A run is deterministic for a seed on this backend but chaotic across
// seeds (each settles on a deterministic completion worth +0.5 or +1.0),
// so the bound holds seed 42 to the goal with a margin of 0.5.
const mainJobRise = 1.0

// TestMainJobRaisesTheStructuralReward trains the main job (the embedded
// default with its configuration and length, the structural reward) on the
// CPU and checks that the mean structural reward of its last 5 steps exceeds
// that of its first 5 by at least mainJobRise.
func TestMainJobRaisesTheStructuralReward(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the main job (about 2½ minutes on 2 cores)")
	}
	// As `mmft train` runs it on the CPU: operations one at a time, each
	// group's prompt computed once.
	be, err := compute.New(compute.Options{CPUSequentialOps: true})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Backend.Finalize()
	cfg := EmbeddedTrainConfig()
	cfg.OutputDir = filepath.Join(t.TempDir(), "run")
	cfg.SaveNumber = 0
	m, err := LoadModel(context.Background(), be, cfg.ModelName, ModelOptions{Seed: cfg.Seed})
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadData(context.Background(), "embedded", "train", DataOptions{Seed: cfg.Seed})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rewards.Default().ParseSet("structural")
	if err != nil {
		t.Fatal(err)
	}
	job := &TrainJob{Config: cfg, Model: m, Data: d, Rewards: set, StepLayout: CPUStepLayout}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := job.Trainer().History()
	avg := func(from, to int) float64 {
		s := 0.0
		for _, m := range h[from:to] {
			s += float64(m["reward/structural"])
		}
		return s / float64(to-from)
	}
	first, last := avg(0, 5), avg(len(h)-5, len(h))
	rs := SummarizeReward(h, "reward/structural")
	t.Logf("mean structural reward over %d steps: first 5 steps %.3f, last 5 steps %.3f (%+.3f); peak of %d-step means %.3f at step %d",
		len(h), first, last, last-first, rs.Window, rs.Peak, rs.PeakStep)
	if last-first < mainJobRise {
		t.Errorf("structural reward rose by %.3f in %d steps; want at least %.2f", last-first, len(h), mainJobRise)
	}
}
