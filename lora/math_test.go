package lora

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

var (
	backendOnce sync.Once
	backend     backends.Backend
	backendErr  error
)

// cpu returns the pure-Go backend (opened with a safe parallelism by compute).
func cpu(t testing.TB) backends.Backend {
	t.Helper()
	backendOnce.Do(func() {
		b, err := compute.NewCPU()
		if err == nil {
			backend = b.Backend
		}
		backendErr = err
	})
	if backendErr != nil {
		t.Fatal(backendErr)
	}
	return backend
}

// baseWeight returns a base weight of the tiny fixture model as float32.
func baseWeight(t *testing.T, name string) ([]float32, []int) {
	t.Helper()
	f, err := safetensors.Open(shared.Fixture(t, "qwen2vl-tiny", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Tensor(name + ".weight")
	if !ok {
		t.Fatalf("fixture model has no %s.weight", name)
	}
	w, err := safetensors.ToFloat32(info)
	if err != nil {
		t.Fatal(err)
	}
	return w, info.Shape
}

// Merging the fixture adapter must give W + (alpha/r)·B·A, PEFT's merged
// weight (computed here in float64), for every module; Unmerge restores W.
func TestMergeFixture(t *testing.T) {
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ad.Names() {
		m := ad.Modules[name]
		w, shape := baseWeight(t, name)
		orig := append([]float32(nil), w...)
		if err := Merge(w, shape[0], shape[1], m); err != nil {
			t.Fatal(err)
		}
		maxDelta := 0.0
		for o := 0; o < m.Out; o++ {
			for i := 0; i < m.In; i++ {
				var d float64
				for k := 0; k < m.R; k++ {
					d += float64(m.B[o*m.R+k]) * float64(m.A[k*m.In+i])
				}
				want := float64(orig[o*m.In+i]) + 8.0/4.0*d
				got := float64(w[o*m.In+i])
				if math.Abs(got-want) > 1e-6+1e-6*math.Abs(want) {
					t.Fatalf("%s[%d,%d]: merged %v, want W + 2·(B·A) = %v", name, o, i, got, want)
				}
				maxDelta = math.Max(maxDelta, math.Abs(2*d))
			}
		}
		if maxDelta < 1e-4 {
			t.Errorf("%s: the update is negligible (%g); the check would not catch a wrong scale", name, maxDelta)
		}
		if err := Unmerge(w, shape[0], shape[1], m); err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if math.Abs(float64(w[i]-orig[i])) > 1e-6 {
				t.Fatalf("%s: unmerge left %v, want %v", name, w[i], orig[i])
			}
		}
	}
	m := ad.Modules["model.layers.0.self_attn.q_proj"]
	if err := Merge(make([]float32, 64*64), 64, 32, m); err == nil || !strings.Contains(err.Error(), "[64, 32]") {
		t.Errorf("shape mismatch: %v", err)
	}
	if err := Merge(make([]float32, 10), 64, 64, m); err == nil {
		t.Error("short weight merged")
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// hostApply computes scale·(x·Aᵀ)·Bᵀ in float64 for x [rows, in].
func hostApply(x []float32, rows int, m *Module) []float64 {
	y := make([]float64, rows*m.Out)
	for n := 0; n < rows; n++ {
		xa := make([]float64, m.R)
		for k := 0; k < m.R; k++ {
			for i := 0; i < m.In; i++ {
				xa[k] += float64(x[n*m.In+i]) * float64(m.A[k*m.In+i])
			}
		}
		for o := 0; o < m.Out; o++ {
			var s float64
			for k := 0; k < m.R; k++ {
				s += xa[k] * float64(m.B[o*m.R+k])
			}
			y[n*m.Out+o] = m.Scale * s
		}
	}
	return y
}

// Apply on the pure-Go backend must equal the host math, and adding it to the
// base projection must equal projecting with the merged weight (PEFT's
// unmerged forward = merged forward).
func TestApplyMatchesHostAndMerge(t *testing.T) {
	ad, err := Load(fixtureAdapterDir(t))
	if err != nil {
		t.Fatal(err)
	}
	be := cpu(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{"model.layers.0.self_attn.k_proj", "model.layers.1.mlp.down_proj"} {
		m := ad.Modules[name]
		const batch, seq = 2, 3
		x := randSlice(rng, batch*seq*m.In)
		w, shape := baseWeight(t, name)
		exec := MustNewExec(be, func(x, w, a, b *Node) (*Node, *Node) {
			base := DotGeneral(x, []int{-1}, nil, w, []int{1}, nil)
			lo := Apply(x, a, b, m.Scale)
			return lo, Add(base, lo)
		})
		out, err := exec.Exec(
			tensors.FromFlatDataAndDimensions(x, batch, seq, m.In),
			tensors.FromFlatDataAndDimensions(w, shape[0], shape[1]),
			tensors.FromFlatDataAndDimensions(m.A, m.R, m.In),
			tensors.FromFlatDataAndDimensions(m.B, m.Out, m.R))
		if err != nil {
			t.Fatal(err)
		}
		if dims := out[0].Shape().Dimensions; len(dims) != 3 || dims[0] != batch || dims[1] != seq || dims[2] != m.Out {
			t.Fatalf("Apply shape %v, want [%d %d %d]", dims, batch, seq, m.Out)
		}
		lo := tensors.MustCopyFlatData[float32](out[0])
		full := tensors.MustCopyFlatData[float32](out[1])
		want := hostApply(x, batch*seq, m)
		for i := range want {
			if math.Abs(float64(lo[i])-want[i]) > 1e-5+1e-5*math.Abs(want[i]) {
				t.Fatalf("%s: Apply[%d] = %v, host %v", name, i, lo[i], want[i])
			}
		}
		merged := append([]float32(nil), w...)
		if err := Merge(merged, shape[0], shape[1], m); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < batch*seq; n++ {
			for o := 0; o < m.Out; o++ {
				var s float64
				for i := 0; i < m.In; i++ {
					s += float64(x[n*m.In+i]) * float64(merged[o*m.In+i])
				}
				if got := float64(full[n*m.Out+o]); math.Abs(got-s) > 1e-4+1e-5*math.Abs(s) {
					t.Fatalf("%s: x·Wᵀ + Apply = %v, x·merged(W)ᵀ = %v", name, got, s)
				}
			}
		}
	}
}

// Gradients of a loss through Apply must reach A and B, equal the analytic
// gradients and match central finite differences.
func TestApplyGradients(t *testing.T) {
	be := cpu(t)
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, in, out, r = 5, 7, 6, 3
	const scale = 2.5
	x := randSlice(rng, rows*in)
	a := randSlice(rng, r*in)
	b := randSlice(rng, out*r)
	c := randSlice(rng, rows*out) // loss = Σ c ⊙ Apply(x)
	lossFn := func(x, a, b, c *Node) *Node { return ReduceAllSum(Mul(c, Apply(x, a, b, scale))) }
	exec := MustNewExec(be, func(x, a, b, c *Node) (*Node, *Node, *Node) {
		loss := lossFn(x, a, b, c)
		g := Gradient(loss, a, b)
		return loss, g[0], g[1]
	})
	run := func(a, b []float32) (float64, []float32, []float32) {
		res, err := exec.Exec(
			tensors.FromFlatDataAndDimensions(x, rows, in),
			tensors.FromFlatDataAndDimensions(a, r, in),
			tensors.FromFlatDataAndDimensions(b, out, r),
			tensors.FromFlatDataAndDimensions(c, rows, out))
		if err != nil {
			t.Fatal(err)
		}
		return float64(tensors.MustCopyFlatData[float32](res[0])[0]),
			tensors.MustCopyFlatData[float32](res[1]), tensors.MustCopyFlatData[float32](res[2])
	}
	_, ga, gb := run(a, b)
	// Analytic: dL/dA = s·(C·B)ᵀ·X, dL/dB = s·Cᵀ·(X·Aᵀ).
	for k := 0; k < r; k++ {
		for i := 0; i < in; i++ {
			var s float64
			for n := 0; n < rows; n++ {
				var cb float64
				for o := 0; o < out; o++ {
					cb += float64(c[n*out+o]) * float64(b[o*r+k])
				}
				s += cb * float64(x[n*in+i])
			}
			if want := scale * s; math.Abs(float64(ga[k*in+i])-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("dL/dA[%d,%d] = %v, want %v", k, i, ga[k*in+i], want)
			}
		}
	}
	for o := 0; o < out; o++ {
		for k := 0; k < r; k++ {
			var s float64
			for n := 0; n < rows; n++ {
				var xa float64
				for i := 0; i < in; i++ {
					xa += float64(x[n*in+i]) * float64(a[k*in+i])
				}
				s += float64(c[n*out+o]) * xa
			}
			if want := scale * s; math.Abs(float64(gb[o*r+k])-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("dL/dB[%d,%d] = %v, want %v", o, k, gb[o*r+k], want)
			}
		}
	}
	// Central finite differences on a few entries of each.
	const eps = 1e-2
	for _, idx := range []int{0, 4, r*in - 1} {
		ap, am := append([]float32(nil), a...), append([]float32(nil), a...)
		ap[idx] += eps
		am[idx] -= eps
		lp, _, _ := run(ap, b)
		lm, _, _ := run(am, b)
		if fd := (lp - lm) / (2 * eps); math.Abs(fd-float64(ga[idx])) > 2e-2*(1+math.Abs(fd)) {
			t.Errorf("dL/dA[%d]: graph %v, finite difference %v", idx, ga[idx], fd)
		}
	}
	for _, idx := range []int{1, out*r - 2} {
		bp, bm := append([]float32(nil), b...), append([]float32(nil), b...)
		bp[idx] += eps
		bm[idx] -= eps
		lp, _, _ := run(a, bp)
		lm, _, _ := run(a, bm)
		if fd := (lp - lm) / (2 * eps); math.Abs(fd-float64(gb[idx])) > 2e-2*(1+math.Abs(fd)) {
			t.Errorf("dL/dB[%d]: graph %v, finite difference %v", idx, gb[idx], fd)
		}
	}
}

func BenchmarkDelta(b *testing.B) {
	// A Qwen2-VL-2B MLP projection (1536 → 8960) at r = 16.
	rng := rand.New(rand.NewPCG(5, 6))
	m := &Module{Name: "bench", R: 16, In: 1536, Out: 8960, Alpha: 32, Scale: 2}
	m.A, m.B = randSlice(rng, m.R*m.In), randSlice(rng, m.Out*m.R)
	w := randSlice(rng, m.Out*m.In)
	b.SetBytes(int64(4 * len(w)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Merge(w, m.Out, m.In, m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTensorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := &Module{Name: "m", R: 2, In: 3, Out: 4, Alpha: 4, Scale: 2}
	m.A, m.B = randSlice(rng, 6), randSlice(rng, 8)
	a, b, err := m.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	m2 := &Module{Name: "m", R: 2, In: 3, Out: 4}
	if err := m2.SetTensors(a, b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.A, m2.A) || !slices.Equal(m.B, m2.B) {
		t.Error("Tensors/SetTensors changed the values")
	}
	if err := m2.SetTensors(b, a); err == nil || !strings.Contains(err.Error(), "want float32 [2 3]") {
		t.Errorf("swapped tensors: %v", err)
	}
	if err := m2.SetTensors(a, nil); err == nil {
		t.Error("nil tensor accepted")
	}
}
