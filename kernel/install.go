package kernel

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SpecName is the name of the kernelspec Install writes.
const SpecName = "mmft"

// KernelsDir returns the folder of Jupyter kernelspecs to install into: under prefix
// when it is set ("PREFIX/share/jupyter/kernels"), else the user's
// ($JUPYTER_DATA_DIR/kernels or ~/.local/share/jupyter/kernels).
func KernelsDir(prefix string) (string, error) {
	if prefix != "" {
		return filepath.Join(prefix, "share", "jupyter", "kernels"), nil
	}
	if d := os.Getenv("JUPYTER_DATA_DIR"); d != "" {
		return filepath.Join(d, "kernels"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("kernel: no home folder for a --user install (%w); pass --prefix", err)
	}
	return filepath.Join(home, ".local", "share", "jupyter", "kernels"), nil
}

// Spec is what a kernelspec records: the mmft program that runs the kernel and the
// mmft source its cells import.
type Spec struct {
	// Executable is the mmft program (`mmft kernel run` serves the kernel).
	Executable string
	// Source is the folder of mmft's go.mod.
	Source string
}

// Install writes the kernelspec into kernelsDir/mmft: kernel.json, and goimports
// built from the version mmft's go.mod pins. It returns the kernelspec's folder.
func Install(kernelsDir string, s Spec) (string, error) {
	var err error
	if s.Executable, err = filepath.Abs(s.Executable); err != nil {
		return "", fmt.Errorf("kernel: install: %w", err)
	}
	if s.Source, err = filepath.Abs(s.Source); err != nil {
		return "", fmt.Errorf("kernel: install: %w", err)
	}
	if _, err := moduleGoVersion(filepath.Join(s.Source, "go.mod")); err != nil {
		return "", err
	}
	dir := filepath.Join(kernelsDir, SpecName)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return "", fmt.Errorf("kernel: install: %w", err)
	}
	goimports := filepath.Join(dir, "bin", "goimports")
	if err := BuildTool(s.Source, "golang.org/x/tools/cmd/goimports", goimports); err != nil {
		return "", err
	}
	spec := map[string]any{
		"argv": []string{s.Executable, "kernel", "run", "--source", s.Source, "--goimports", goimports,
			"--connection-file", "{connection_file}"},
		"display_name":   "Go (mmft)",
		"language":       "go",
		"interrupt_mode": "message",
		"metadata":       map[string]any{"debugger": false},
	}
	data, _ := json.MarshalIndent(spec, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "kernel.json"), append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("kernel: install: %w", err)
	}
	return dir, nil
}

// BuildTool builds a program of a module mmft's go.mod pins, with no network look-up.
func BuildTool(source, pkg, out string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = source
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local", "GOPROXY=off", "GOWORK=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kernel: build %s in %s: %v: %s (run `go mod download all` there once with network)", pkg, source, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// FindSource returns the folder of mmft's go.mod at or above dir.
func FindSource(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("kernel: mmft source: %w", err)
	}
	d := abs
	for {
		if _, err := moduleGoVersion(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("kernel: no mmft source (go.mod of github.com/mmft-go/mmft) at or above %s: run from the mmft checkout or pass --source DIR", abs)
		}
		d = parent
	}
}

// InstalledSpec is a kernelspec found on disk.
type InstalledSpec struct {
	// Dir is the kernelspec's folder; Argv the command line its kernel.json runs.
	Dir  string
	Argv []string
}

// FindInstalled looks for the mmft kernelspec in the given kernelspec folders.
func FindInstalled(kernelsDirs []string) (InstalledSpec, bool) {
	for _, d := range kernelsDirs {
		data, err := os.ReadFile(filepath.Join(d, SpecName, "kernel.json"))
		if err != nil {
			continue
		}
		var spec struct {
			Argv []string `json:"argv"`
		}
		if json.Unmarshal(data, &spec) == nil {
			return InstalledSpec{Dir: filepath.Join(d, SpecName), Argv: spec.Argv}, true
		}
	}
	return InstalledSpec{}, false
}
