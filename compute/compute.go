// Package compute chooses and opens the GoMLX backend that every other mmft
// package computes on: GoMLX's pure-Go backend on the CPU (tests, CI, the
// embedded default), or GoMLX's XLA backend through a PJRT CUDA plugin on the GPU.
//
// The CPU backend is always created with an explicit worker count, because the
// pure-Go backend's default pool (one worker per core) deadlocks on 2-core
// machines. The GPU plugin is found on the machine, never downloaded: GoMLX's
// auto-install is turned off.
package compute

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/backends/xla"
)

// Device names accepted by Options.Device.
const (
	// CPU is GoMLX's pure-Go backend.
	CPU = "cpu"
	// GPU is GoMLX's XLA backend on a PJRT CUDA plugin.
	GPU = "gpu"
	// Auto picks the GPU when a CUDA plugin is found and the CPU otherwise.
	Auto = "auto"
)

// Environment variables read by OptionsFromEnv.
const (
	// EnvDevice selects the device: cpu, gpu or auto.
	EnvDevice = "MMFT_DEVICE"
	// EnvPlugin is the path of a PJRT CUDA plugin (.so) to use.
	EnvPlugin = "MMFT_PJRT_PLUGIN"
	// EnvCPUParallelism is the worker count of the pure-Go CPU backend.
	EnvCPUParallelism = "MMFT_CPU_PARALLELISM"
)

// MinCPUParallelism is the smallest worker count the pure-Go backend is given:
// below it, its worker pool can deadlock on small machines.
const MinCPUParallelism = 4

// Options selects a backend.
type Options struct {
	// Device is CPU, GPU or Auto; empty means CPU.
	Device string
	// PluginPath is an explicit PJRT plugin file; it wins over every search.
	PluginPath string
	// CPUParallelism is the pure-Go backend's worker count, at least
	// MinCPUParallelism (smaller values are refused). Zero means
	// max(MinCPUParallelism, NumCPU).
	CPUParallelism int
	// CPUSequentialOps runs the operations of each CPU program one at a
	// time (each still spreads its own work over the worker pool). GoMLX
	// v0.26's pure-Go backend otherwise schedules ready operations on the
	// pool as tasks, and a task that itself waits for a pool slot (a large
	// matrix product splitting its batch) can wait forever once every slot
	// holds such a task: `mmft train` with the shared-prompt step layout hung
	// that way three times in five CPU runs. Sequential operations never
	// wait for a slot from inside the pool, so they cannot hang; they cost
	// some speed where a program has many small independent operations.
	CPUSequentialOps bool
}

// OptionsFromEnv returns Options filled from $MMFT_DEVICE, $MMFT_PJRT_PLUGIN
// and $MMFT_CPU_PARALLELISM, with the defaults where they are unset.
func OptionsFromEnv() (Options, error) {
	o := Options{Device: os.Getenv(EnvDevice), PluginPath: os.Getenv(EnvPlugin)}
	if o.Device != "" {
		d, err := parseDevice(o.Device)
		if err != nil {
			return o, fmt.Errorf("compute: $%s: %w", EnvDevice, err)
		}
		o.Device = d
	}
	if s := os.Getenv(EnvCPUParallelism); s != "" {
		n, err := parseParallelism(s)
		if err != nil {
			return o, fmt.Errorf("compute: $%s: %w", EnvCPUParallelism, err)
		}
		o.CPUParallelism = n
	}
	return o, nil
}

// Backend is an opened GoMLX backend with what mmft knows about it.
type Backend struct {
	// Backend is the GoMLX backend to build and run graphs on.
	backends.Backend
	// Device is CPU or GPU.
	Device string
	// PluginPath is the PJRT plugin in use (GPU only).
	PluginPath string
	// PluginSource says how the plugin was found (GPU only).
	PluginSource string
	// CPUParallelism is the pure-Go backend's worker count (CPU only).
	CPUParallelism int
	// CPUSequentialOps reports that the pure-Go backend runs each program's
	// operations one at a time (Options.CPUSequentialOps; CPU only).
	CPUSequentialOps bool
	// AutotuneCache is XLA's persistent autotune cache folder (GPU only;
	// "" when off; see PrepareXLA).
	AutotuneCache string
}

// New opens the backend that o selects.
func New(o Options) (*Backend, error) {
	device, err := parseDevice(o.Device)
	if err != nil {
		return nil, fmt.Errorf("compute: %w", err)
	}
	if o.CPUParallelism != 0 {
		if err := checkParallelism(o.CPUParallelism); err != nil {
			return nil, fmt.Errorf("compute: %w", err)
		}
	}
	switch device {
	case GPU:
		return newGPU(o.PluginPath)
	case Auto:
		if _, err := FindCUDAPlugin(o.PluginPath); err == nil {
			return newGPU(o.PluginPath)
		}
	}
	return newCPU(o.CPUParallelism, o.CPUSequentialOps)
}

// parseDevice returns CPU, GPU or Auto for a device name (empty means CPU;
// "cuda" is taken for GPU).
func parseDevice(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", CPU:
		return CPU, nil
	case GPU, "cuda":
		return GPU, nil
	case Auto:
		return Auto, nil
	}
	return "", fmt.Errorf("unknown device %q: use cpu, gpu or auto", s)
}

// parseParallelism reads a CPU worker count: 0 (automatic) or at least MinCPUParallelism.
func parseParallelism(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("CPU parallelism %q is not a whole number: use 0 (automatic) or a worker count of at least %d", s, MinCPUParallelism)
	}
	if n != 0 {
		if err := checkParallelism(n); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// NewCPU opens the pure-Go CPU backend with the default worker count.
func NewCPU() (*Backend, error) { return newCPU(0, false) }

func newCPU(parallelism int, sequentialOps bool) (*Backend, error) {
	if parallelism == 0 {
		parallelism = max(runtime.NumCPU(), MinCPUParallelism)
	}
	if err := checkParallelism(parallelism); err != nil {
		return nil, fmt.Errorf("compute: %w", err)
	}
	// simplego.New("parallelism=N") prints a line to the process's standard
	// output, which would corrupt the JSON of commands and protocols that own
	// stdout; the pool size is set on the new backend instead (see workers.go).
	config := ""
	if sequentialOps {
		config = "ops_sequential" // prints nothing, unlike "parallelism=N"
	}
	b, err := simplego.New(config)
	if err != nil {
		return nil, fmt.Errorf("compute: opening GoMLX's pure-Go CPU backend: %w", err)
	}
	if err := setWorkers(b, parallelism); err != nil {
		b.Finalize()
		return nil, err
	}
	return &Backend{Backend: b, Device: CPU, CPUParallelism: parallelism, CPUSequentialOps: sequentialOps}, nil
}

// checkParallelism refuses a worker count the pure-Go backend cannot run safely.
func checkParallelism(n int) error {
	if n < MinCPUParallelism {
		return fmt.Errorf("CPU parallelism %d: the minimum is %d workers (the pure-Go backend's pool can deadlock below it); use 0 for automatic", n, MinCPUParallelism)
	}
	return nil
}

func newGPU(explicit string) (*Backend, error) {
	found, err := FindCUDAPlugin(explicit)
	if err != nil {
		return nil, err
	}
	// Never download plugins at run time.
	xla.EnableAutoInstall(false)
	if os.Getenv("GOPJRT_CUDA_CHECKS") == "" && found.Source == SourcePython {
		// The check looks for NVIDIA libraries in go-xla's own install folders;
		// a JAX plugin brings its own through its Python packages.
		os.Setenv("GOPJRT_CUDA_CHECKS", "0")
	}
	cache, err := PrepareXLA()
	if err != nil {
		return nil, err
	}
	if _, err := ConfigureDispatch(); err != nil {
		return nil, err
	}
	if _, err := ConfigureDots(); err != nil {
		return nil, err
	}
	b, err := xla.New(found.Path)
	if err != nil {
		return nil, fmt.Errorf("loading the PJRT CUDA plugin %s (found via %s): %w\n"+
			"Check that an NVIDIA driver is installed (nvidia-smi works) and that the plugin matches its CUDA version; "+
			"or point $%s at another plugin", found.Path, found.Source, err, EnvPlugin)
	}
	if b.NumDevices() == 0 {
		b.Finalize()
		return nil, fmt.Errorf("the PJRT CUDA plugin %s sees no GPU", found.Path)
	}
	return &Backend{Backend: b, Device: GPU, PluginPath: found.Path, PluginSource: found.Source, AutotuneCache: cache}, nil
}

// ErrNoPlugin is returned (wrapped) when no PJRT CUDA plugin is found.
var ErrNoPlugin = errors.New("no PJRT CUDA plugin found")
