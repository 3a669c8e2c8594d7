package compute

import (
	"flag"
	"fmt"
	"os"
)

// Flags are the device flags and environment variables shared by every mmft
// command that computes, so that they mean the same everywhere:
//
//	--device cpu|gpu|auto   default $MMFT_DEVICE, else cpu
//	--plugin FILE           default $MMFT_PJRT_PLUGIN, else a search (see FindCUDAPlugin)
//	--cpu-parallelism N     default $MMFT_CPU_PARALLELISM, else 0 (automatic); at least MinCPUParallelism
//
// A command adopts them with two lines:
//
//	var dev compute.Flags
//	dev.Register(fs)              // before fs.Parse
//	...
//	b, err := dev.Backend()       // after fs.Parse; b.Finalize() when done
//
// A malformed value, from a flag or a variable, is an error from Options and
// Backend (never silently replaced), and --device gpu (or $MMFT_DEVICE=gpu)
// without a CUDA plugin fails with where it looked and how to fix it.
type Flags struct {
	device, plugin, parallelism string
}

// Register adds --device, --plugin and --cpu-parallelism to fs, with their
// defaults read from the environment.
func (f *Flags) Register(fs *flag.FlagSet) {
	def := func(env, fallback string) string {
		if v := os.Getenv(env); v != "" {
			return v
		}
		return fallback
	}
	fs.StringVar(&f.device, "device", def(EnvDevice, CPU), "compute device: cpu, gpu or auto (default from $"+EnvDevice+", else cpu)")
	fs.StringVar(&f.plugin, "plugin", os.Getenv(EnvPlugin), "PJRT CUDA plugin file for the GPU (default $"+EnvPlugin+", else a search of go-xla's and JAX's install folders)")
	fs.StringVar(&f.parallelism, "cpu-parallelism", def(EnvCPUParallelism, "0"),
		fmt.Sprintf("workers of the pure-Go CPU backend: 0 for automatic, else at least %d (default from $%s)", MinCPUParallelism, EnvCPUParallelism))
}

// Options checks the flag values and returns the backend selection. Each
// error names the flag or variable the bad value came from.
func (f *Flags) Options() (Options, error) {
	device, err := parseDevice(f.device)
	if err != nil {
		return Options{}, fmt.Errorf("--device (or $%s): %w", EnvDevice, err)
	}
	n, err := parseParallelism(f.parallelism)
	if err != nil {
		return Options{}, fmt.Errorf("--cpu-parallelism (or $%s): %w", EnvCPUParallelism, err)
	}
	return Options{Device: device, PluginPath: f.plugin, CPUParallelism: n}, nil
}

// Backend checks the flag values and opens the backend they select.
func (f *Flags) Backend() (*Backend, error) {
	o, err := f.Options()
	if err != nil {
		return nil, err
	}
	return New(o)
}
