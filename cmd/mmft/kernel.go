package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/cudainfo"
	"github.com/mmft-go/mmft/kernel"
)

// runKernel dispatches `mmft kernel install|doctor|run`.
func runKernel(c *cli, args []string) error {
	const usage = "Usage: mmft kernel install|doctor|run [flags]\n\n" +
		"  install  install the Jupyter kernelspec \"Go (mmft)\" (--user, the default, or --prefix P)\n" +
		"  doctor   check each piece the kernel needs and say how to fix what is missing\n" +
		"  run      serve the kernel on a Jupyter connection file (Jupyter runs this)\n"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "install":
		return runKernelInstall(c, args[1:])
	case "doctor":
		return runKernelDoctor(c, args[1:])
	case "run":
		return runKernelRun(c, args[1:])
	}
	fmt.Fprintf(c.stderr, "mmft kernel: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

func runKernelInstall(c *cli, args []string) error {
	fs := c.newFlags("kernel install", "[--user | --prefix P] [--source DIR]", `
Installs the Jupyter kernelspec "Go (mmft)" (kernels/mmft/kernel.json) and builds goimports
beside it from the version mmft's go.mod pins. Cells import the packages of the mmft source
(--source, default: the checkout holding the current folder) and GoNB's gonbui, with no
network look-up. --user (the default) installs for this user; --prefix P under
P/share/jupyter/kernels (for a virtual environment or a system-wide Jupyter).`)
	user := fs.Bool("user", false, "install for the current user ($JUPYTER_DATA_DIR or ~/.local/share/jupyter); the default")
	prefix := fs.String("prefix", "", "install under `P`/share/jupyter/kernels")
	source := fs.String("source", "", "mmft source folder (its go.mod); default: found from the current folder")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft kernel install: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *user && *prefix != "" {
		fmt.Fprintf(c.stderr, "mmft kernel install: --user and --prefix exclude each other\n")
		return errUsage
	}
	src := *source
	if src == "" {
		var err error
		if src, err = kernel.FindSource("."); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the mmft program to record in the kernelspec: %w", err)
	}
	dir, err := kernel.KernelsDir(*prefix)
	if err != nil {
		return err
	}
	specDir, err := kernel.Install(dir, kernel.Spec{Executable: exe, Source: src})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "installed kernelspec %q in %s\ncells import mmft from %s\n", kernel.SpecName, specDir, src)
	return nil
}

func runKernelDoctor(c *cli, args []string) error {
	fs := c.newFlags("kernel doctor", "[--source DIR]", `
Checks each piece the kernel needs: Go, the mmft source, GoNB's gonbui at the version go.mod
pins, goimports, gopls (optional), Jupyter, the installed kernelspec, the worker (mmft worker)
the GPU (optional: cells run on the CPU without one) and, in a binary built with -tags cuda, the
CUDA driver's GPUs with their memory (optional). Prints how to fix each missing piece;
exits 1 when a piece that is not optional is missing.`)
	source := fs.String("source", "", "mmft source folder; default: the installed kernelspec's, else the checkout holding the current folder")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	src := *source
	if src == "" {
		if spec, ok := kernel.FindInstalled(kernel.JupyterKernelDirs()); !ok || len(spec.Argv) == 0 {
			src, _ = kernel.FindSource(".")
		}
	}
	checks := kernel.Doctor(src)
	checks = append(checks, checkWorker(), checkGPU(), checkCUDA())
	missing := 0
	for _, ch := range checks {
		fmt.Fprintln(c.stdout, ch)
		if !ch.OK && !ch.Optional {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d piece(s) missing; see the fixes above", missing)
	}
	return nil
}

// checkWorker reports whether this mmft has the worker the notebook package starts.
func checkWorker() kernel.Check {
	for _, cmd := range commands() {
		if cmd.name != "worker" {
			continue
		}
		if cmd.run == nil {
			return kernel.Check{Name: "worker", Detail: "not built (`mmft worker` comes with " + cmd.planned + ")",
				Fix: "update mmft to a version with `mmft worker` and rerun `mmft kernel install`"}
		}
		exe, err := os.Executable()
		if err != nil {
			return kernel.Check{Name: "worker", Detail: err.Error(), Fix: "run mmft from a file on disk"}
		}
		if out, err := exec.Command(exe, "worker", "--help").CombinedOutput(); err != nil {
			return kernel.Check{Name: "worker", Detail: "`mmft worker --help` failed: " + strings.TrimSpace(string(out)), Fix: "rebuild mmft (go build ./cmd/mmft)"}
		}
		return kernel.Check{Name: "worker", OK: true, Detail: exe + " worker"}
	}
	return kernel.Check{Name: "worker", Detail: "not built", Fix: "update mmft to a version with `mmft worker`"}
}

// checkGPU opens the GPU backend the way training would.
func checkGPU() kernel.Check {
	o, err := compute.OptionsFromEnv()
	if err != nil {
		return kernel.Check{Name: "gpu", Optional: true, Detail: err.Error(), Fix: "correct the $MMFT_* variable named above"}
	}
	o.Device = compute.GPU
	b, err := compute.New(o)
	if err != nil {
		first, _, _ := strings.Cut(err.Error(), "\n")
		first = strings.TrimSuffix(strings.TrimSpace(first), " Looked in:")
		return kernel.Check{Name: "gpu", Optional: true, Detail: "none usable (cells run on the CPU): " + first,
			Fix: "on a CUDA machine, install a PJRT CUDA plugin and set $" + compute.EnvPlugin + "; `mmft env --device gpu` lists where it looks"}
	}
	defer b.Finalize()
	info := b.Info()
	names := make([]string, 0, len(info.Devices))
	for _, d := range info.Devices {
		names = append(names, d.Name)
	}
	return kernel.Check{Name: "gpu", OK: true, Optional: true, Detail: strings.Join(names, ", ")}
}

// checkCUDA asks the CUDA driver for the GPUs (a binary built with -tags cuda).
func checkCUDA() kernel.Check {
	rep, err := cudainfo.Query()
	switch {
	case errors.Is(err, cudainfo.ErrNotBuilt):
		return kernel.Check{Name: "cuda", Optional: true, Detail: "GPU memory figures come from PJRT and nvidia-smi (mmft built without -tags cuda)",
			Fix: "for the CUDA driver's figures, build mmft with -tags cuda where cuda.h is installed (README: GPU status)"}
	case err != nil:
		return kernel.Check{Name: "cuda", Optional: true, Detail: err.Error() + " (GPU status falls back to PJRT and nvidia-smi)",
			Fix: "on a GPU machine, install the NVIDIA driver (nvidia-smi must list the GPUs); without a GPU, cells run on the CPU"}
	}
	lines := make([]string, 0, len(rep.Devices))
	for _, d := range rep.Devices {
		lines = append(lines, fmt.Sprintf("gpu %d %s", d.Index, d.MemoryLine()))
	}
	return kernel.Check{Name: "cuda", OK: true, Optional: true, Detail: "driver " + rep.DriverVersion + ": " + strings.Join(lines, "; ")}
}

func runKernelRun(c *cli, args []string) error {
	fs := c.newFlags("kernel run", "--connection-file FILE [--source DIR] [--goimports PATH]", `
Serves the kernel on the Jupyter connection file FILE until a shutdown request. Jupyter runs
this with the arguments the kernelspec records; people run `+"`mmft kernel install`"+` instead.`)
	connFile := fs.String("connection-file", "", "Jupyter connection `FILE`")
	fs.StringVar(connFile, "f", "", "short for --connection-file")
	source := fs.String("source", "", "mmft source folder (its go.mod); default: found from the current folder")
	goimports := fs.String("goimports", "", "goimports program; default: the one on $PATH")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if *connFile == "" {
		fmt.Fprintf(c.stderr, "mmft kernel run: --connection-file is required (Jupyter passes it)\n")
		return errUsage
	}
	conn, err := kernel.ReadConnection(*connFile)
	if err != nil {
		return err
	}
	src := *source
	if src == "" {
		if src, err = kernel.FindSource("."); err != nil {
			return err
		}
	}
	// SIGINT interrupts the running cell, not the kernel: Jupyter's shutdown_request ends it.
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	defer signal.Stop(interrupts)
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the mmft program to give cells: %w", err)
	}
	return kernel.Run(context.Background(), conn, kernel.Options{Source: src, Goimports: *goimports, Executable: exe,
		Log: c.stderr, Interrupt: interrupts})
}
