package grpo

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/lora"
)

// testCheckpoint builds a checkpoint with non-trivial values everywhere:
// random adapter weights, moments including NaN, −0, subnormals and extremes,
// random streams with a PCG state, metrics with NaN and ±Inf.
func testCheckpoint(t *testing.T) *Checkpoint {
	t.Helper()
	lc := lora.NewConfig(4, 16, "q_proj", "v_proj")
	lc.InitLoRAWeights = "false" // B non-zero
	targets := []string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.q_proj"}
	shapes := map[string][]int{targets[0]: {8, 6}, targets[1]: {4, 6}, targets[2]: {8, 6}}
	ad, err := lora.NewAdapter(lc, targets, shapes, 7)
	if err != nil {
		t.Fatal(err)
	}
	names, pshapes := AdapterParams(ad)
	opt, err := NewOptimizerState(names, pshapes)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	special := []float32{float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32, float32(math.NaN()), float32(math.Inf(1))}
	for i := range opt.Params {
		for k := range opt.Params[i].M {
			opt.Params[i].M[k] = float32(rng.NormFloat64())
			opt.Params[i].V[k] = float32(rng.ExpFloat64() * 1e-7)
		}
	}
	copy(opt.Params[0].M, special)
	opt.Step, opt.Skipped = 1234, 3
	pcg := rand.NewPCG(11, 12)
	pcg.Uint64()
	pcgState, err := pcg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Schedule.LearningRate = 1.2345678901234567e-5
	cfg.Seed = math.MaxUint64
	return &Checkpoint{
		Adapter:   ad,
		Optimizer: opt,
		State: TrainState{
			GlobalStep:   1234,
			ScheduleStep: 308,
			TotalSteps:   1000,
			RNG: map[string]RandomStream{
				"sampler": {Seed: math.MaxUint64, Counter: 1 << 60},
				"data":    {Seed: 42, Counter: 7, State: pcgState},
			},
			Data:    DataPosition{Epoch: 1, Index: 17},
			Config:  cfg,
			Metrics: []Metrics{{"loss": 0.1, "kl": Float(math.NaN())}, {"loss": Float(math.Inf(-1)), "reward": Float(math.Inf(1)), "tiny": 5e-324}},
		},
	}
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// Save then Load gives back every bit: adapter weights, moments, counters,
// random streams, positions, configuration and metrics (NaN and Inf included).
func TestCheckpointRoundTrip(t *testing.T) {
	ck := testCheckpoint(t)
	dir := CheckpointDir(t.TempDir(), 308)
	if err := SaveCheckpoint(dir, ck); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ck.Adapter.Names() {
		w, g := ck.Adapter.Modules[name], got.Adapter.Modules[name]
		if g == nil || !sameBits(w.A, g.A) || !sameBits(w.B, g.B) || g.R != w.R || g.Scale != w.Scale {
			t.Errorf("adapter module %s differs after the round trip", name)
		}
	}
	if len(got.Adapter.Modules) != len(ck.Adapter.Modules) {
		t.Errorf("%d modules, want %d", len(got.Adapter.Modules), len(ck.Adapter.Modules))
	}
	if got.Optimizer.Step != 1234 || got.Optimizer.Skipped != 3 || len(got.Optimizer.Params) != len(ck.Optimizer.Params) {
		t.Fatalf("optimizer: step %d skipped %d params %d", got.Optimizer.Step, got.Optimizer.Skipped, len(got.Optimizer.Params))
	}
	for i, p := range ck.Optimizer.Params {
		g := got.Optimizer.Params[i]
		if g.Name != p.Name || !slices.Equal(g.Shape, p.Shape) || !sameBits(g.M, p.M) || !sameBits(g.V, p.V) {
			t.Errorf("optimizer parameter %s differs after the round trip", p.Name)
		}
	}
	want := ck.State
	want.Format, want.Files = got.State.Format, got.State.Files
	gm, wm := got.State.Metrics, want.Metrics
	got.State.Metrics, want.Metrics = nil, nil
	if !reflect.DeepEqual(got.State, want) {
		t.Errorf("state differs:\n got %+v\nwant %+v", got.State, want)
	}
	if len(gm) != len(wm) {
		t.Fatalf("metrics: %d records, want %d", len(gm), len(wm))
	}
	for i := range wm {
		for k, v := range wm[i] {
			if math.Float64bits(float64(gm[i][k])) != math.Float64bits(float64(v)) && !(math.IsNaN(float64(v)) && math.IsNaN(float64(gm[i][k]))) {
				t.Errorf("metric %d %s = %v, want %v", i, k, gm[i][k], v)
			}
		}
	}
	// The PCG state restores the generator exactly.
	a, b := rand.NewPCG(0, 0), rand.NewPCG(11, 12)
	b.Uint64()
	if err := a.UnmarshalBinary(got.State.RNG["data"].State); err != nil || a.Uint64() != b.Uint64() {
		t.Errorf("restored PCG does not continue the stream (err %v)", err)
	}
	// The adapter folder is a PEFT adapter on its own.
	if _, err := lora.Load(filepath.Join(dir, AdapterDir)); err != nil {
		t.Errorf("adapter folder: %v", err)
	}
	// The saved optimizer state feeds a graph as tensors and comes back the same.
	if err := got.Optimizer.SetTensors(ck.Optimizer.Tensors()); err != nil || !sameBits(got.Optimizer.Params[0].M, ck.Optimizer.Params[0].M) {
		t.Errorf("Tensors/SetTensors: %v", err)
	}
}

// Saving over a checkpoint replaces it; a failed save leaves the old one and no debris.
func TestCheckpointReplaceAndFailedSave(t *testing.T) {
	root := t.TempDir()
	dir := CheckpointDir(root, 5)
	ck := testCheckpoint(t)
	if err := SaveCheckpoint(dir, ck); err != nil {
		t.Fatal(err)
	}
	ck.State.GlobalStep = 99
	if err := SaveCheckpoint(dir, ck); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCheckpoint(dir)
	if err != nil || got.State.GlobalStep != 99 {
		t.Fatalf("after replacing: %v, global step %v", err, got)
	}
	bad := testCheckpoint(t)
	bad.Optimizer.Params = bad.Optimizer.Params[1:] // does not match the adapter
	if err := SaveCheckpoint(dir, bad); err == nil || !strings.Contains(err.Error(), "optimizer state has") {
		t.Errorf("mismatched optimizer state saved: %v", err)
	}
	bad = testCheckpoint(t)
	bad.Adapter.Modules["model.layers.0.self_attn.q_proj"].R = 2 // refused by lora's Save, mid-write
	bad.Optimizer, _ = NewOptimizerState(AdapterParams(bad.Adapter))
	if err := SaveCheckpoint(dir, bad); err == nil {
		t.Error("a broken adapter was saved")
	}
	if got, err := LoadCheckpoint(dir); err != nil || got.State.GlobalStep != 99 {
		t.Errorf("the old checkpoint did not survive the failed saves: %v", err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("debris left beside the checkpoint: %q", names)
	}
}

// Missing and corrupt pieces are errors naming the piece.
func TestCheckpointCorrupt(t *testing.T) {
	for _, c := range []struct {
		name  string
		spoil func(dir string) error
		want  string
	}{
		{"no folder", func(dir string) error { return os.RemoveAll(dir) }, "no such file"},
		{"no state", func(dir string) error { return os.Remove(filepath.Join(dir, StateFile)) }, "no state.json"},
		{"state not JSON", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, StateFile), []byte("{\"format\": 1,"), 0o644)
		}, "state.json is corrupt"},
		{"other format", func(dir string) error { return rewrite(filepath.Join(dir, StateFile), `"format": 1`, `"format": 2`) }, "format 2"},
		{"no optimizer", func(dir string) error { return os.Remove(filepath.Join(dir, OptimizerFile)) }, "optimizer.safetensors is missing"},
		{"truncated optimizer", func(dir string) error { return truncate(filepath.Join(dir, OptimizerFile)) }, "optimizer.safetensors is corrupt"},
		{"flipped bit in the adapter", func(dir string) error { return flipLastByte(filepath.Join(dir, AdapterDir, lora.WeightsFile)) }, "adapter/adapter_model.safetensors is corrupt"},
		{"no adapter config", func(dir string) error { return os.Remove(filepath.Join(dir, AdapterDir, lora.ConfigFile)) }, "adapter/adapter_config.json is missing"},
		{"adapter not listed", func(dir string) error {
			return rewrite(filepath.Join(dir, StateFile), `"adapter/adapter_model.safetensors"`, `"adapter/other"`)
		}, "does not list adapter/adapter_model.safetensors"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := CheckpointDir(t.TempDir(), 1)
			if err := SaveCheckpoint(dir, testCheckpoint(t)); err != nil {
				t.Fatal(err)
			}
			if err := c.spoil(dir); err != nil {
				t.Fatal(err)
			}
			_, err := LoadCheckpoint(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "grpo: checkpoint") {
				t.Errorf("LoadCheckpoint = %v; want an error containing %q", err, c.want)
			}
		})
	}
}

func rewrite(path, old, new string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func truncate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.Truncate(path, st.Size()-5)
}

func flipLastByte(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b[len(b)-1] ^= 1
	return os.WriteFile(path, b, 0o644)
}

func TestRetention(t *testing.T) {
	// The seed: 10 points over a 95-step run.
	r := Retention{Keep: 10, TotalSteps: 95}
	if got, want := r.Targets(), []int{9, 19, 28, 38, 47, 57, 66, 76, 85, 95}; !slices.Equal(got, want) {
		t.Errorf("Targets = %v, want %v", got, want)
	}
	if got := (Retention{Keep: 10, TotalSteps: 4}).Targets(); !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Errorf("more points than steps: %v", got)
	}
	if got := (Retention{Keep: 0, TotalSteps: 4}).Targets(); len(got) != 0 {
		t.Errorf("keep 0: %v", got)
	}
	r = Retention{Keep: 3, Every: 4, TotalSteps: 30}
	var saves []int
	for s := 0; s <= 31; s++ {
		if r.ShouldSave(s) {
			saves = append(saves, s)
		}
	}
	if want := []int{4, 8, 10, 12, 16, 20, 24, 28, 30}; !slices.Equal(saves, want) {
		t.Errorf("ShouldSave at %v, want %v", saves, want)
	}
	// Mid-run (latest 17): keep the point 10, the latest; targets 20 and 30 are not reached.
	keep, drop := r.Select([]int{4, 8, 10, 12, 16, 17})
	if !slices.Equal(keep, []int{10, 17}) || !slices.Equal(drop, []int{4, 8, 12, 16}) {
		t.Errorf("Select mid-run: keep %v drop %v", keep, drop)
	}
	// Saves that missed a point: the last one before it stands in.
	keep, _ = r.Select([]int{8, 16, 24, 28})
	if !slices.Equal(keep, []int{8, 16, 28}) {
		t.Errorf("Select without the points: keep %v", keep)
	}

	root := t.TempDir()
	ck := testCheckpoint(t)
	for _, s := range []int{4, 8, 10, 12} {
		if err := SaveCheckpoint(CheckpointDir(root, s), ck); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, ".checkpoint-000016.tmp-123"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "checkpoint-000020"), 0o755); err != nil { // no state.json: not listed
		t.Fatal(err)
	}
	dropped, err := r.Prune(root)
	if err != nil || !slices.Equal(dropped, []int{4, 8}) {
		t.Errorf("Prune = %v, %v; want [4 8]", dropped, err)
	}
	left, err := ListCheckpoints(root)
	if err != nil || !slices.Equal(left, []int{10, 12}) {
		t.Errorf("left %v, %v; want [10 12]", left, err)
	}
	if _, err := os.Stat(filepath.Join(root, ".checkpoint-000016.tmp-123")); !os.IsNotExist(err) {
		t.Errorf("the leftover of an interrupted save was not removed: %v", err)
	}
}
