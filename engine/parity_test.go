package engine

import (
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

var (
	backendOnce sync.Once
	testBackend backends.Backend
	backendErr  error
)

// cpuBackend returns the pure-Go backend with explicit parallelism (its
// default deadlocks on small machines).
func cpuBackend(t testing.TB) backends.Backend {
	backendOnce.Do(func() { testBackend, backendErr = simplego.New("parallelism=4") })
	if backendErr != nil {
		t.Fatalf("creating the CPU backend: %v", backendErr)
	}
	return testBackend
}

// reference is the tiny model's reference.safetensors.
type reference struct{ f *safetensors.File }

func openReference(t testing.TB) (dir string, ref reference) {
	dir = shared.Fixture(t, "qwen2vl-tiny")
	f, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return dir, reference{f}
}

// tensor returns a reference tensor, failing the test when it is absent.
func (r reference) tensor(t testing.TB, name string) safetensors.Info {
	info, ok := r.f.Tensor(name)
	if !ok {
		t.Fatalf("reference has no %s", name)
	}
	return info
}

func (r reference) ints(t testing.TB, name string) ([]int64, []int) {
	info := r.tensor(t, name)
	v, err := safetensors.ToInt64(info)
	if err != nil {
		t.Fatalf("reference %s: %v", name, err)
	}
	return v, info.Shape
}

func (r reference) floats(t testing.TB, name string) ([]float32, []int) {
	info := r.tensor(t, name)
	v, err := safetensors.ToFloat32(info)
	if err != nil {
		t.Fatalf("reference %s: %v", name, err)
	}
	return v, info.Shape
}

// batch reads the reference's inputs (input_ids, attention_mask,
// pixel_values, image_grid_thw) as mmft forward does.
func (r reference) batch(t testing.TB) qwen2vl.Batch {
	b, err := qwen2vl.ReadBatch(r.f)
	if err != nil {
		t.Fatalf("reference inputs: %v", err)
	}
	if b.AttentionMask == nil || len(b.Grids) == 0 {
		t.Fatal("reference inputs lack attention_mask or images")
	}
	return b
}

// testModel is a model and an engine over it.
type testModel struct {
	*qwen2vl.Model
	*Engine
}

// newTestModel wraps m in an engine with default options.
func newTestModel(t testing.TB, m *qwen2vl.Model) testModel {
	e, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return testModel{m, e}
}

func loadTiny(t testing.TB) (testModel, reference) {
	dir, ref := openReference(t)
	m, err := qwen2vl.Load(cpuBackend(t), dir, qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return newTestModel(t, m), ref
}

func maxAbsDiff(t testing.TB, got *tensors.Tensor, want []float32) float64 {
	g, err := tensors.CopyFlatData[float32](got)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(want) {
		t.Fatalf("got %d values (shape %s), want %d", len(g), got.Shape(), len(want))
	}
	worst := 0.0
	for i := range g {
		worst = max(worst, math.Abs(float64(g[i]-want[i])))
	}
	return worst
}

func TestParityTiny(t *testing.T) {
	m, ref := loadTiny(t)
	b := ref.batch(t)
	out, err := m.Forward(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantEmb, _ := ref.floats(t, "image_embeds")
	if d := maxAbsDiff(t, out.ImageEmbeds, wantEmb); d > 1e-4 {
		t.Errorf("image_embeds max abs diff %g > 1e-4", d)
	} else {
		t.Logf("image_embeds max abs diff %g", d)
	}
	pos, ps := ref.ints(t, "position_ids")
	for a := range 3 {
		for i := range ps[1] {
			for j := range ps[2] {
				if got, want := out.PositionIDs[a][i][j], pos[(a*ps[1]+i)*ps[2]+j]; got != want {
					t.Fatalf("position_ids[%d][%d][%d] = %d, want %d", a, i, j, got, want)
				}
			}
		}
	}
	deltas, _ := ref.ints(t, "rope_deltas")
	for i, d := range deltas {
		if out.RopeDeltas[i] != d {
			t.Errorf("rope_deltas[%d] = %d, want %d", i, out.RopeDeltas[i], d)
		}
	}
	wantLogits, ls := ref.floats(t, "logits")
	g, _ := tensors.CopyFlatData[float32](out.Logits)
	worst, worstPad := 0.0, 0.0
	for i := range ls[0] {
		for j := range ls[1] {
			for k := range ls[2] {
				o := (i*ls[1]+j)*ls[2] + k
				d := math.Abs(float64(g[o] - wantLogits[o]))
				if b.AttentionMask[i][j] == 0 {
					worstPad = max(worstPad, d)
				} else {
					worst = max(worst, d)
				}
			}
		}
	}
	t.Logf("logits max abs diff: tokens %g, padding %g", worst, worstPad)
	if worst > 1e-3 || worstPad > 1e-3 {
		t.Errorf("logits max abs diff tokens %g / padding %g > 1e-3", worst, worstPad)
	}
}

func TestParityTinyLoRA(t *testing.T) {
	m, ref := loadTiny(t)
	ad, err := lora.Load(shared.Fixture(t, "qwen2vl-tiny", "lora_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Modules) != 14 {
		t.Fatalf("adapter has %d modules, want 14 (7 projections × 2 layers)", len(l.Modules))
	}
	out, err := m.Forward(ref.batch(t), l)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.floats(t, "logits_with_lora")
	if d := maxAbsDiff(t, out.Logits, want); d > 1e-3 {
		t.Errorf("logits_with_lora max abs diff %g > 1e-3", d)
	} else {
		t.Logf("logits_with_lora max abs diff %g", d)
	}
	// Without the adapter the logits must differ (the adapter has non-zero B).
	base, _ := ref.floats(t, "logits")
	if d := maxAbsDiff(t, out.Logits, base); d < 1e-3 {
		t.Errorf("adapter changed the logits by only %g", d)
	}
}

// TestSaveRoundTrip saves the tiny model in the Hub layout and reloads it.
func TestSaveRoundTrip(t *testing.T) {
	m, ref := loadTiny(t)
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(shared.Fixture(t, "qwen2vl-tiny", "config.json"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	m2, err := qwen2vl.Load(cpuBackend(t), dir, qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := newTestModel(t, m2).Forward(ref.batch(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.floats(t, "logits")
	if d := maxAbsDiff(t, out.Logits, want); d > 1e-3 {
		t.Errorf("reloaded model logits differ by %g", d)
	}
}
