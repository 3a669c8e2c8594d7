// Package benchkit holds what the benchmark commands share: random weights
// of a config's shapes and a model loaded from them, opening the device (XLA
// preallocation off on the GPU) and XLA's compiled memory statistics.
package benchkit

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

// Model is a benchmark's model: its config, the device it is on, and how long
// its random weights took to load.
type Model struct {
	Config  qwen2vl.Config
	Backend backends.Backend
	Model   *qwen2vl.Model
	Load    time.Duration
}

// OpenRandomModel reads the config at cfgPath (a config.json or its folder),
// opens the device (NewBackend) and loads random bf16 weights of the config's
// shapes on it (LoadRandomModel).
func OpenRandomModel(cfgPath, device string, preallocate bool) (*Model, error) {
	cfg, err := qwen2vl.LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	backend, err := NewBackend(device, preallocate)
	if err != nil {
		return nil, err
	}
	m, load, err := LoadRandomModel(backend, cfg)
	if err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Backend: backend, Model: m, Load: load}, nil
}

// LoadRandomModel loads a bf16 model of cfg's shapes with random weights
// (RandomBF16) on backend, and says how long that took.
func LoadRandomModel(backend backends.Backend, cfg qwen2vl.Config) (*qwen2vl.Model, time.Duration, error) {
	src := &RandomBF16{Specs: map[string][]int{}}
	for _, s := range cfg.ParamSpecs() {
		src.Specs[s.Name] = s.Shape
	}
	t0 := time.Now()
	m, err := qwen2vl.LoadFrom(backend, cfg, src, qwen2vl.Options{DType: dtypes.BFloat16})
	return m, time.Since(t0), err
}

// RandomBF16 serves random BF16 tensors of the config's shapes: values
// with mean 0 and standard deviation 0.02 (a sum of two uniforms, scaled),
// filled in parallel from per-chunk PCG streams, so the 2B weights take about
// a second rather than a minute of NormFloat64.
type RandomBF16 struct {
	// Specs are the tensors' shapes by name.
	Specs map[string][]int
}

// Names lists the tensors.
func (r *RandomBF16) Names() []string {
	return slices.Collect(maps.Keys(r.Specs))
}

// Raw returns a tensor's dtype, shape and random bytes.
func (r *RandomBF16) Raw(name string) (string, []int, []byte, error) {
	shape := r.Specs[name]
	n := 1
	for _, d := range shape {
		n *= d
	}
	var seed uint64 = 1469598103934665603
	for _, c := range name {
		seed = (seed ^ uint64(c)) * 1099511628211
	}
	data := make([]byte, 2*n)
	const chunk = 1 << 18
	scale := float32(0.02 * math.Sqrt(6) / (1 << 32))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.NumCPU())
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		wg.Add(1)
		sem <- struct{}{}
		go func(start, end int) {
			defer wg.Done()
			defer func() { <-sem }()
			rng := rand.NewPCG(seed, uint64(start))
			for i := start; i < end; i++ {
				u := rng.Uint64()
				v := float32(int64(u>>32)+int64(u&0xffffffff)-(1<<32)) * scale
				binary.LittleEndian.PutUint16(data[2*i:], safetensors.Float32ToBF16(v))
			}
		}(start, end)
	}
	wg.Wait()
	return "BF16", shape, data, nil
}

// NewBackend opens the device; on the GPU with XLA's preallocation as asked.
func NewBackend(device string, preallocate bool) (backends.Backend, error) {
	if device != "gpu" || preallocate {
		be, err := compute.New(compute.Options{Device: device})
		if err != nil {
			return nil, err
		}
		return be.Backend, nil
	}
	found, err := compute.FindCUDAPlugin("")
	if err != nil {
		return nil, err
	}
	xla.EnableAutoInstall(false)
	if _, err := compute.PrepareXLA(); err != nil {
		return nil, err
	}
	if _, err := compute.ConfigureDispatch(); err != nil {
		return nil, err
	}
	if _, err := compute.ConfigureDots(); err != nil {
		return nil, err
	}
	if os.Getenv("GOPJRT_CUDA_CHECKS") == "" && found.Source == compute.SourcePython {
		os.Setenv("GOPJRT_CUDA_CHECKS", "0")
	}
	b, err := xla.NewWithOptions(found.Path, pjrt.NamedValuesMap{"preallocate": false})
	if err != nil {
		fmt.Printf("the plugin refused preallocate=false (%v); using its defaults\n", err)
		be, err := compute.New(compute.Options{Device: device})
		if err != nil {
			return nil, err
		}
		return be.Backend, nil
	}
	fmt.Println("XLA GPU preallocation off (PJRT client option preallocate=false)")
	return b, nil
}

// CompiledMemory returns the device memory XLA computed for a compiled graph
// (arguments, outputs, temporaries, generated code), read from go-xla's
// LoadedExecutable behind GoMLX's unexported fields; ok is false on other
// backends or when the layout differs.
func CompiledMemory(g *graph.Graph) (stats pjrt.ExecutableMemoryUsageStats, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	field := func(v reflect.Value, name string) reflect.Value {
		f := v.Elem().FieldByName(name)
		return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	}
	exe, isXLA := field(reflect.ValueOf(g), "executable").Interface().(*xla.Executable)
	if !isXLA || exe == nil {
		return stats, false
	}
	le, _ := field(reflect.ValueOf(exe), "exec").Interface().(*pjrt.LoadedExecutable)
	if le == nil {
		return stats, false
	}
	return le.OnDeviceMemoryUsageStats, true
}

// Window is a wall-clock span in Unix nanoseconds: a timed repetition's, so
// that a kernel profile (bench/kprof) can select the kernels it ran.
type Window struct {
	StartUnixNs int64 `json:"start_unix_ns"`
	EndUnixNs   int64 `json:"end_unix_ns"`
}

// Span returns the window from start to now.
func Span(start time.Time) Window {
	return Window{StartUnixNs: start.UnixNano(), EndUnixNs: time.Now().UnixNano()}
}

// SettleProfiler waits for a kernel profiler injected into this process
// (CUDA_INJECTION64_PATH, e.g. bench/kprof) to flush its last records: it
// writes once a second, and a Go program exits without running C exit
// handlers. Without a profiler it returns at once.
func SettleProfiler() {
	if os.Getenv("CUDA_INJECTION64_PATH") != "" {
		time.Sleep(2500 * time.Millisecond)
	}
}

// HostTime is what one benchmark run's program calls cost the host, per
// program: calls and milliseconds inside the backend (execution.Stats.Runs).
type HostTime map[string]struct {
	Calls int     `json:"calls"`
	Ms    float64 `json:"ms_in_backend"`
}

// HostTimeSince returns the calls made between the runner snapshots before
// and after, per program.
func HostTimeSince(before, after execution.Stats) HostTime {
	h := HostTime{}
	for name, a := range after.Runs {
		b := before.Runs[name]
		if a.Calls == b.Calls {
			continue
		}
		e := h[name]
		e.Calls, e.Ms = a.Calls-b.Calls, float64(a.Time-b.Time)/float64(time.Millisecond)
		h[name] = e
	}
	return h
}

// WarmCPUProfile starts a Go CPU profile into the file named by
// MMFT_BENCH_CPUPROFILE, and a Go execution trace into the file named by
// MMFT_BENCH_TRACE, when rep is 1 (the first warm run), so that what the
// host does between device calls can be read with `go tool pprof` and `go
// tool trace` (the trace shows where the host waits, and the collector's
// work, which a CPU profile does not). It returns the function that stops
// them (nil when neither is on), to call after the last run.
func WarmCPUProfile(rep int) (stop func(), err error) {
	if rep != 1 {
		return nil, nil
	}
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	if path := os.Getenv("MMFT_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("MMFT_BENCH_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("MMFT_BENCH_CPUPROFILE: %w", err)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if path := os.Getenv("MMFT_BENCH_TRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			stop()
			return nil, fmt.Errorf("MMFT_BENCH_TRACE: %w", err)
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			stop()
			return nil, fmt.Errorf("MMFT_BENCH_TRACE: %w", err)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	if len(stops) == 0 {
		return nil, nil
	}
	return stop, nil
}

// DeviceMemory returns the first device's allocator statistics on an XLA
// backend (compute.DeviceMemory); ok is false elsewhere.
func DeviceMemory(b backends.Backend) (pjrt.DeviceMemoryStats, bool) {
	return compute.DeviceMemory(b, 0)
}
