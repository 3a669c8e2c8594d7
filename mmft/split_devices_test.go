package mmft

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/rewards"
)

// TestSplitLayoutOnDevices is the split layout end to end where the backend
// has two or more devices (a multi-GPU machine: MMFT_DEVICE=gpu; there is
// no such backend on a CPU-only machine, where it is skipped): the embedded
// model in float32 trains colocated on device 0 and split with the seed's
// default (rollouts on the last device, training on the others; an FSDP
// mesh when more than one), and the final adapters agree with colocated
// ones: a mesh of one within 1e-6 relative after 3 steps; a larger mesh
// within 1e-5 after 1 step (its reductions run in another order, and later
// rollouts would sample from slightly different adapters). Every sync
// copies the adapter's bytes: device to device from a mesh of one (a larger
// mesh's outputs are gathered through the host, so its syncs are too).
func TestSplitLayoutOnDevices(t *testing.T) {
	o, err := compute.OptionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	be, err := compute.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Backend.Finalize()
	n := be.Backend.NumDevices()
	if n < 2 {
		t.Skipf("backend %s has %d device(s): the split layout needs two (run with MMFT_DEVICE=gpu on a machine with several GPUs)", be.Device, n)
	}
	ctx := context.Background()
	split, err := distributed.DefaultLayout(n)
	if err != nil {
		t.Fatal(err)
	}
	steps, tol := 3, 1e-6
	if len(split.Train) > 1 {
		steps, tol = 1, 1e-5
	}
	d, err := LoadData(ctx, "embedded", "train", DataOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rewards.Default().ParseSet(DefaultRewards)
	if err != nil {
		t.Fatal(err)
	}
	run := func(l distributed.Layout) (*lora.Adapter, []distributed.SyncStats) {
		m, err := LoadModel(ctx, be, "embedded", ModelOptions{Seed: 3, DType: "float32", Device: l.Rollout[0]})
		if err != nil {
			t.Fatal(err)
		}
		cfg := EmbeddedTrainConfig()
		cfg.BatchSize, cfg.NumGenerations = 2, 4
		cfg.OutputDir = filepath.Join(t.TempDir(), "run")
		var syncs []distributed.SyncStats
		j := &TrainJob{Config: cfg, Model: m, Data: d, Rewards: set, Steps: steps, Layout: &l,
			OnSync: func(st distributed.SyncStats) { syncs = append(syncs, st) }}
		if err := j.Run(ctx); err != nil {
			t.Fatalf("layout %v: %v", l, err)
		}
		ad, err := lora.Load(filepath.Join(cfg.OutputDir, AdapterDir))
		if err != nil {
			t.Fatal(err)
		}
		return ad, syncs
	}
	colo, none := run(distributed.Layout{GPUs: n, Rollout: []int{0}, Train: []int{0}})
	got, syncs := run(split)
	if len(none) != 0 {
		t.Errorf("colocated run synced %d times", len(none))
	}
	var bytes int64
	worst := 0.0
	for _, name := range colo.Names() {
		a, b := colo.Modules[name], got.Modules[name]
		bytes += 4 * int64(len(a.A)+len(a.B))
		for _, pair := range [][2][]float32{{a.A, b.A}, {a.B, b.B}} {
			scale := 0.0
			for _, v := range pair[0] {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for i := range pair[0] {
				worst = math.Max(worst, math.Abs(float64(pair[0][i]-pair[1][i]))/math.Max(scale, 1e-30))
			}
		}
	}
	t.Logf("layout %v: %d steps, max relative difference to colocated %.3g; syncs %v", split, steps, worst, syncs)
	if worst > tol {
		t.Errorf("split adapters differ from colocated by %.3g relative (> %g)", worst, tol)
	}
	if len(syncs) != steps {
		t.Errorf("%d syncs in %d steps", len(syncs), steps)
	}
	for _, st := range syncs {
		if st.Bytes != bytes || (len(split.Train) == 1 && st.Route != "device") {
			t.Errorf("sync %+v: want %d bytes (device to device from a mesh of one)", st, bytes)
		}
	}
}
