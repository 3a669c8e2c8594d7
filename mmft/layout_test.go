package mmft

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
)

// TestSplitJobOnOneDevice runs a training job through the split layout's
// setup (splitSetup) with rollouts and training on the one CPU device, and
// the same job colocated: the saved adapters are bit-identical, and every
// line of the split run's metrics.jsonl records one adapter sync with the
// adapter's bytes and its seconds.
func TestSplitJobOnOneDevice(t *testing.T) {
	ctx := context.Background()
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(ctx, be, "embedded", ModelOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	d, err := LoadData(ctx, "embedded", "train", DataOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rewards.Default().ParseSet(DefaultRewards)
	if err != nil {
		t.Fatal(err)
	}
	cfg := EmbeddedTrainConfig()
	cfg.BatchSize, cfg.NumGenerations = 2, 4
	cfg.Schedule.WarmupSteps = 2 // within the 3 steps (the split trainer is built here, not by Prepare)
	job := func(dir string) *TrainJob {
		c := cfg
		c.OutputDir = dir
		return &TrainJob{Config: c, Model: m, Data: d, Rewards: set, Steps: 3}
	}

	colo := job(filepath.Join(t.TempDir(), "colocated"))
	colo.Layout = &distributed.Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}
	if err := colo.Run(ctx); err != nil {
		t.Fatal(err)
	}

	split := job(filepath.Join(t.TempDir(), "split"))
	s := split.setup()
	if err := splitSetup(&s, m, split.Config, distributed.Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}, 0); err != nil {
		t.Fatal(err)
	}
	if s.Runner == m.Engine.Runner() || s.Runner.Placement() != (execution.Placement{}) || s.Sync == nil || s.Sync.To != 0 || !s.Sync.Copy {
		t.Fatalf("split setup: runner %p placement %+v, sync %+v", s.Runner, s.Runner.Placement(), s.Sync)
	}
	if s.Weights[0] != any(m.Model.Param(m.Model.ParamNames()[0])) {
		t.Error("the training weights on the engine's own device are not the engine's tensors")
	}
	tr, err := grpo.New(split.Config, s)
	if err != nil {
		t.Fatal(err)
	}
	split.trainer = tr
	if err := split.Run(ctx); err != nil {
		t.Fatal(err)
	}

	a, err := lora.Load(filepath.Join(colo.Config.OutputDir, AdapterDir))
	if err != nil {
		t.Fatal(err)
	}
	b, err := lora.Load(filepath.Join(split.Config.OutputDir, AdapterDir))
	if err != nil {
		t.Fatal(err)
	}
	var bytes float64
	for _, name := range a.Names() {
		if !slices.Equal(a.Modules[name].A, b.Modules[name].A) || !slices.Equal(a.Modules[name].B, b.Modules[name].B) {
			t.Errorf("module %s: the split run's adapter differs from the colocated one", name)
		}
		bytes += 4 * float64(len(a.Modules[name].A)+len(a.Modules[name].B))
	}
	f, err := os.Open(filepath.Join(split.Config.OutputDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, updated := 0, false
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var mt map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &mt); err != nil {
			t.Fatal(err)
		}
		updated = updated || mt["grad_norm"] > 0
		if mt["sync_bytes"] != bytes || mt["sync_s"] <= 0 || mt["adapter_lag"] != 0 {
			t.Errorf("metrics line %d: sync_bytes %v (want %v), sync_s %v, adapter_lag %v", lines+1, mt["sync_bytes"], bytes, mt["sync_s"], mt["adapter_lag"])
		}
	}
	if lines != 3 || !updated {
		t.Errorf("%d metrics lines (want 3), some update with a gradient: %v", lines, updated)
	}
}

// TestPlaceJobRefusals checks the layout's refusals: a model on another
// device than the layout's rollout GPU, several rollout GPUs, a model
// device the backend lacks, staleness without the split layout, and a
// session whose layout flags name GPUs the backend does not have.
func TestPlaceJobRefusals(t *testing.T) {
	ctx := context.Background()
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(ctx, be, "embedded", ModelOptions{Device: 1}); err == nil || !strings.Contains(err.Error(), "model device 1: the backend (cpu) has 1 device(s)") {
		t.Errorf("model on device 1 of 1: %v", err)
	}
	m, err := LoadModel(ctx, be, "embedded", ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := EmbeddedTrainConfig()
	for _, c := range []struct {
		l         distributed.Layout
		staleness int
		want      string
	}{
		{distributed.Layout{GPUs: 2, Rollout: []int{1}, Train: []int{0}}, 0, "is on device 0: load it on the rollout GPU 1"},
		{distributed.Layout{GPUs: 3, Rollout: []int{0, 1}, Train: []int{2}}, 0, "the rollout engine runs on one GPU"},
		{distributed.Layout{GPUs: 2, Rollout: []int{1}, Train: []int{1}}, 0, "is on device 0: load it on GPU 1"},
		{distributed.Layout{GPUs: 2, Rollout: []int{0}, Train: []int{1}}, 0, "GPU 1 of layout"},
	} {
		var s grpo.Setup
		if err := placeJob(&s, m, cfg, &c.l, c.staleness); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("layout %+v: %v, want %q", c.l, err, c.want)
		}
	}
	d, err := LoadData(ctx, "embedded", "train", DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j := &TrainJob{Config: cfg, Model: m, Data: d, Steps: 1, MaxStaleness: 1,
		Layout: &distributed.Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}}
	j.Rewards, _ = rewards.Default().ParseSet(DefaultRewards)
	if err := j.Prepare(ctx); err == nil || !strings.Contains(err.Error(), "needs the split layout") {
		t.Errorf("staleness 1 colocated: %v", err)
	}

	s := Open(SessionOptions{Compute: &compute.Options{Device: compute.CPU}, Layout: distributed.Flags{TrainGPUs: "0,1"}})
	if _, err := s.LoadModel(ctx, "embedded", ModelOptions{}); err == nil || !strings.Contains(err.Error(), "--train-gpus: \"0,1\": GPU 1 is out of range") {
		t.Errorf("session with --train-gpus 0,1 on one device: %v", err)
	}
}

// TestTrainPlanOfASplitLayout plans the embedded job's settings for
// Qwen2-VL-2B on the seed's layout of 4 GPUs: each of the three training
// GPUs holds between a third and a half of the weights (the LLM's 1536 wide
// tensors split in three; the vision tower's 1280 is not divisible by 3, so
// it stays whole), the rollout GPU all of them; a capacity too small names
// every GPU.
func TestTrainPlanOfASplitLayout(t *testing.T) {
	mc, err := qwen2vl.LoadConfig(shared.Asset(t, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := distributed.DefaultLayout(4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := TrainPlan(EmbeddedTrainConfig(), mc, l, StepRecompute, dtypes.BFloat16, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GPUs) != 4 || p.GPUs[0].Role != "train" || p.GPUs[3].Role != "rollout" || p.Check() != nil {
		t.Fatalf("plan %+v", p)
	}
	part := func(g distributed.GPUPlan, prefix string) int64 {
		for _, x := range g.Parts {
			if strings.HasPrefix(x.Name, prefix) {
				return x.Bytes
			}
		}
		t.Fatalf("GPU %d has no part %q", g.GPU, prefix)
		return 0
	}
	train, whole := part(p.GPUs[0], "base weights"), part(p.GPUs[3], "base weights")
	if train >= whole/2 || train < whole/3 {
		t.Errorf("a training GPU holds %d of %d weight bytes, want between a third and a half", train, whole)
	}
	p.Capacity = 1 << 10
	if err := p.Check(); err == nil || !strings.Contains(err.Error(), "GPU 0 (train)") || !strings.Contains(err.Error(), "GPU 3 (rollout)") {
		t.Errorf("1 KiB GPUs: %v", err)
	}
}
