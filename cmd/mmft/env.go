package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/cudainfo"
)

func runEnv(c *cli, args []string) error {
	fs := c.newFlags("env", "[--device cpu|gpu|auto] [--plugin FILE] [--cpu-parallelism N] [--json]", `
Prints the compute backend mmft would use, its devices (name, memory), the PJRT plugin path,
and the versions of Go, GoMLX and go-xla. With --device gpu it fails with the list of places
searched for a CUDA plugin when none is found. A binary built with -tags cuda also prints what
the CUDA driver reports, on any device: its CUDA version and each GPU's name and memory used,
free and total (or why the driver gave nothing).`)
	var dev compute.Flags
	dev.Register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	b, err := dev.Backend()
	if err != nil {
		return err
	}
	defer b.Finalize()
	info := b.Info()
	cuda, cudaErr := cudainfo.Query()
	if *asJSON {
		out := struct {
			compute.Info
			CUDA      *cudainfo.Report `json:"cuda,omitempty"`
			CUDAError string           `json:"cuda_error,omitempty"`
		}{Info: info}
		if cudaErr == nil {
			out.CUDA = &cuda
		} else {
			out.CUDAError = cudaErr.Error()
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(c.stdout, "device:       %s\n", info.Device)
	fmt.Fprintf(c.stdout, "backend:      %s\n", info.Description)
	if info.PluginPath != "" {
		fmt.Fprintf(c.stdout, "plugin:       %s (%s)\n", info.PluginPath, info.PluginSource)
	}
	if info.CPUParallelism > 0 {
		fmt.Fprintf(c.stdout, "cpu workers:  %d\n", info.CPUParallelism)
	}
	for _, d := range info.Devices {
		fmt.Fprintf(c.stdout, "device %d:     %s, %s", d.Index, d.Name, gib(d.MemoryBytes))
		if d.Description != "" {
			fmt.Fprintf(c.stdout, " [%s]", strings.TrimSpace(d.Description))
		}
		fmt.Fprintln(c.stdout)
	}
	if info.GPUSource != "" {
		fmt.Fprintf(c.stdout, "gpu figures:  %s\n", info.GPUSource)
	}
	for _, k := range slices.Sorted(maps.Keys(info.Versions)) {
		fmt.Fprintf(c.stdout, "%-13s %s\n", k+":", info.Versions[k])
	}
	switch {
	case cudaErr == nil:
		fmt.Fprintf(c.stdout, "cuda driver:  %s (gorgonia.org/cu), %d GPU(s)\n", cuda.DriverVersion, len(cuda.Devices))
		for _, d := range cuda.Devices {
			fmt.Fprintf(c.stdout, "cuda gpu %d:   %s\n", d.Index, d.MemoryLine())
		}
	case errors.Is(cudaErr, cudainfo.ErrNotBuilt):
		fmt.Fprintln(c.stdout, "cuda driver:  not asked (this mmft was built without -tags cuda)")
	default:
		fmt.Fprintf(c.stdout, "cuda driver:  unavailable: %v\n", cudaErr)
	}
	return nil
}

func gib(n int64) string {
	if n <= 0 {
		return "memory unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func runBench(c *cli, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(c.stdout, "Usage: mmft bench matmul [flags]\n\n  matmul  dense matrix-product throughput (TFLOP/s) on the chosen device\n")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "matmul":
		return runBenchMatmul(c, args[1:])
	}
	fmt.Fprintf(c.stderr, "mmft bench: unknown benchmark %q (have: matmul)\n", args[0])
	return errUsage
}

func runBenchMatmul(c *cli, args []string) error {
	fs := c.newFlags("bench matmul", "[--device cpu|gpu|auto] [--plugin FILE] [--cpu-parallelism N] [--n 8192] [--chain 8] [--iters 10] [--dtype bf16]", `
Times a chain of N×N×N matrix products on the device and prints TFLOP/s as JSON.`)
	var dev compute.Flags
	dev.Register(fs)
	n := fs.Int("n", 0, "matrix size (default 8192 on the GPU, 512 on the CPU)")
	chain := fs.Int("chain", 0, "matrix products per run (default 8 on the GPU, 1 on the CPU)")
	iters := fs.Int("iters", 0, "timed runs after the warm-up (default 10 on the GPU, 3 on the CPU)")
	dt := fs.String("dtype", "", "bf16, f16 or f32 (default bf16 on the GPU, f32 on the CPU)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	b, err := dev.Backend()
	if err != nil {
		return err
	}
	defer b.Finalize()
	gpu := b.Device == compute.GPU
	pick := func(v *int, onGPU, onCPU int) {
		if *v == 0 {
			*v = onCPU
			if gpu {
				*v = onGPU
			}
		}
	}
	pick(n, 8192, 512)
	pick(chain, 8, 1)
	pick(iters, 10, 3)
	if *dt == "" {
		*dt = "f32"
		if gpu {
			*dt = "bf16"
		}
	}
	var dtype dtypes.DType
	switch strings.ToLower(*dt) {
	case "bf16", "bfloat16":
		dtype = dtypes.BFloat16
	case "f16", "float16":
		dtype = dtypes.Float16
	case "f32", "float32":
		dtype = dtypes.Float32
	default:
		return fmt.Errorf("--dtype %q: use bf16, f16 or f32", *dt)
	}
	res, err := compute.BenchMatmul(b, *n, *chain, *iters, dtype)
	if err != nil {
		return err
	}
	info := b.Info()
	out := map[string]any{
		"benchmark": "matmul", "date": time.Now().UTC().Format(time.RFC3339), "device": info.Device,
		"card": info.Devices[0].Name, "n": res.N, "dtype": res.DType, "chain": res.Chain, "iterations": res.Iterations,
		"seconds_per_iteration": res.PerIter.Seconds(), "tflops": res.TFLOPs,
		"compile_and_first_run_seconds": res.Compile.Seconds(), "versions": info.Versions,
	}
	enc := json.NewEncoder(c.stdout)
	return enc.Encode(out)
}
