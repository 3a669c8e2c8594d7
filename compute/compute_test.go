package compute

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// TestCPUNoDeadlockOnTwoCores runs a graph with many independent branches
// (matmuls, reductions, element-wise ops, a gradient) under GOMAXPROCS=2, the
// setting where the pure-Go backend's default worker pool deadlocks.
func TestCPUNoDeadlockOnTwoCores(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	b, err := NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	if b.CPUParallelism < MinCPUParallelism {
		t.Fatalf("CPU parallelism %d below the safe minimum %d", b.CPUParallelism, MinCPUParallelism)
	}
	done := make(chan error, 1)
	var got float64
	go func() {
		// Chained matmuls in parallel branches plus a gradient: with the
		// backend's default pool this graph hangs on 2 cores (seen with
		// simplego.New("") at n=128).
		const n = 128
		exec, err := NewExec(b.Backend, func(x *Node) (*Node, *Node) {
			g := x.Graph()
			var parts []*Node
			for i := range 8 {
				w := AddScalar(MulScalar(IotaFull(g, shapes.Make(dtypes.Float32, n, n)), 1e-6), float64(i))
				h := Tanh(MatMul(MatMul(x, w), w))
				h = Add(h, Reshape(ReduceSum(Mul(h, h), -1), n, 1))
				parts = append(parts, ReduceAllSum(Sigmoid(h)))
			}
			total := parts[0]
			for _, p := range parts[1:] {
				total = Add(total, p)
			}
			grad := Gradient(ReduceAllSum(Square(MatMul(x, x))), x)[0]
			return total, ReduceAllSum(grad)
		})
		if err != nil {
			done <- err
			return
		}
		x := make([][]float32, n)
		for i := range x {
			x[i] = make([]float32, n)
			for j := range x[i] {
				x[i][j] = float32((i+j)%7) * 0.01
			}
		}
		for range 3 {
			out, err := exec.Exec(x)
			if err != nil {
				done <- err
				return
			}
			got = float64(out[0].Value().(float32))
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			t.Fatal("graph returned 0: the computation did not run")
		}
	case <-time.After(120 * time.Second):
		t.Fatal("the pure-Go backend deadlocked (no result after 120 s under GOMAXPROCS=2)")
	}
}

func TestBenchMatmulCPU(t *testing.T) {
	b, err := NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	res, err := BenchMatmul(b, 64, 2, 1, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if res.TFLOPs <= 0 || res.PerIter <= 0 {
		t.Fatalf("bad result %+v", res)
	}
	if _, err := BenchMatmul(b, 0, 1, 1, dtypes.Float32); err == nil {
		t.Fatal("n=0 accepted")
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not really a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPluginSearchOrder(t *testing.T) {
	dir := t.TempDir()
	goxla := filepath.Join(dir, "go-xla")
	site := filepath.Join(dir, "site-packages")
	jax := filepath.Join(site, "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so")
	touch(t, jax)
	s := PluginSearch{GoXLADirs: []string{goxla}, SitePackages: []string{site}}

	p, err := s.Find()
	if err != nil || p.Path != jax || p.Source != SourcePython {
		t.Fatalf("python plugin: got %+v, %v", p, err)
	}
	lib := filepath.Join(goxla, "pjrt_c_api_cuda_plugin.so")
	touch(t, lib)
	if p, err = s.Find(); err != nil || p.Path != lib || p.Source != SourceGoXLA {
		t.Fatalf("go-xla folder must win over python: got %+v, %v", p, err)
	}
	explicit := filepath.Join(dir, "mine.so")
	touch(t, explicit)
	s.Explicit = explicit
	if p, err = s.Find(); err != nil || p.Path != explicit || p.Source != SourceExplicit {
		t.Fatalf("explicit setting must win: got %+v, %v", p, err)
	}
	s.Explicit = filepath.Join(dir, "missing.so")
	if _, err = s.Find(); err == nil || !errors.Is(err, ErrNoPlugin) || !strings.Contains(err.Error(), "missing.so") {
		t.Fatalf("missing explicit plugin: got %v", err)
	}
}

func TestPluginSearchNoneSaysWhereAndHow(t *testing.T) {
	dir := t.TempDir()
	s := PluginSearch{GoXLADirs: []string{filepath.Join(dir, "a")}, SitePackages: []string{filepath.Join(dir, "b")}}
	_, err := s.Find()
	if err == nil {
		t.Fatal("found a plugin in empty folders")
	}
	msg := err.Error()
	for _, want := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), EnvPlugin, "Fix:", "--device cpu"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestNewGPUWithoutPluginFailsClearly(t *testing.T) {
	if _, err := FindCUDAPlugin(""); err == nil {
		t.Skip("a CUDA plugin is installed on this machine")
	}
	_, err := New(Options{Device: GPU})
	if err == nil || !strings.Contains(err.Error(), "Looked in") {
		t.Fatalf("want a clear no-plugin error, got %v", err)
	}
	b, err := New(Options{Device: Auto})
	if err != nil || b.Device != CPU {
		t.Fatalf("auto without a plugin must fall back to the CPU: %v %+v", err, b)
	}
	b.Finalize()
	if _, err := New(Options{Device: "tpu"}); err == nil {
		t.Fatal("unknown device accepted")
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv(EnvDevice, "auto")
	t.Setenv(EnvCPUParallelism, "6")
	o, err := OptionsFromEnv()
	if err != nil || o.Device != "auto" || o.CPUParallelism != 6 {
		t.Fatalf("got %+v, %v", o, err)
	}
	t.Setenv(EnvCPUParallelism, "many")
	if _, err := OptionsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvCPUParallelism) {
		t.Fatalf("bad parallelism accepted: %v", err)
	}
}

func TestInfoCPU(t *testing.T) {
	b, err := NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	info := b.Info()
	if info.Device != CPU || len(info.Devices) != 1 || info.Versions["go"] == "" {
		t.Fatalf("bad info %+v", info)
	}
}
