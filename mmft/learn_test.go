package mmft

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/rewards"
)

// TestMainJobRaisesTheStructuralReward trains the main job (the embedded
// default, its configuration, the structural reward) for 40 steps on the CPU
// and checks that the mean structural reward of the last 5 steps exceeds the
// first 5's by at least 0.25 (range −1 … 2). The goal is +1.0 within
// 10 minutes; on 2026-12-02 this configuration reached about +0.6 in 40 steps
// and no setting tried reached +1.0 (see the closing note), so the bound
// checks learning, not the goal.
func TestMainJobRaisesTheStructuralReward(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for 40 steps")
	}
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
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
	job := &TrainJob{Config: cfg, Model: m, Data: d, Rewards: set, Steps: 40}
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
	t.Logf("mean structural reward: first 5 steps %.3f, last 5 steps %.3f (+%.3f)", first, last, last-first)
	if last-first < 0.25 {
		t.Errorf("structural reward rose by %.3f in 40 steps; want at least 0.25", last-first)
	}
}
