package kernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Check is one piece the kernel needs, as Doctor found it.
type Check struct {
	Name string
	// OK: the piece works. Optional pieces may be missing without harm.
	OK       bool
	Optional bool
	// Detail says what was found; Fix how to get it right when it is not OK.
	Detail string
	Fix    string
}

// Doctor checks the pieces the kernel needs itself: Go, the mmft source, GoNB's
// pinned display package, goimports, gopls (optional), Jupyter and the installed
// kernelspec. source may be empty (the installed kernelspec's is used).
func Doctor(source string) []Check {
	var checks []Check
	add := func(c Check) { checks = append(checks, c) }

	goVersion, err := exec.Command("go", "version").Output()
	if err != nil {
		add(Check{Name: "go", Detail: "the go command is not on $PATH", Fix: "install Go 1.26 (https://go.dev/dl) and put it on $PATH"})
	} else {
		add(Check{Name: "go", OK: true, Detail: strings.TrimSpace(string(goVersion))})
	}

	dirs := JupyterKernelDirs()
	spec, installed := FindInstalled(dirs)
	if source == "" && installed {
		source = argAfter(spec.Argv, "--source")
	}
	if source == "" {
		add(Check{Name: "mmft source", Detail: "no mmft checkout found", Fix: "run from the mmft checkout or pass --source DIR"})
	} else if _, err := moduleGoVersion(filepath.Join(source, "go.mod")); err != nil {
		add(Check{Name: "mmft source", Detail: err.Error(), Fix: "pass --source with the folder of mmft's go.mod"})
	} else {
		add(Check{Name: "mmft source", OK: true, Detail: source})
		add(checkGonb(source))
	}

	gi := ""
	if installed {
		gi = argAfter(spec.Argv, "--goimports")
	}
	if gi == "" {
		gi, _ = exec.LookPath("goimports")
	}
	if _, err := os.Stat(gi); gi == "" || err != nil {
		add(Check{Name: "goimports", Detail: "not built", Fix: "`mmft kernel install --user` builds it from the version go.mod pins"})
	} else {
		add(Check{Name: "goimports", OK: true, Detail: gi})
	}

	if p, err := exec.LookPath("gopls"); err != nil {
		add(Check{Name: "gopls", Optional: true, Detail: "not on $PATH (the kernel does not need it; editors do)", Fix: "go install golang.org/x/tools/gopls@latest"})
	} else {
		add(Check{Name: "gopls", OK: true, Optional: true, Detail: p})
	}

	if out, err := exec.Command("jupyter", "--version").Output(); err != nil {
		add(Check{Name: "jupyter", Detail: "the jupyter command is not on $PATH", Fix: "apt-get install jupyter-notebook jupyter-nbconvert python3-nbclient (or pip install jupyterlab)"})
	} else {
		detail, _ := exec.LookPath("jupyter")
		for _, l := range strings.Split(string(out), "\n") {
			if name, version, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(name) == "jupyter_client" {
				detail += " (jupyter_client " + strings.TrimSpace(version) + ")"
			}
		}
		add(Check{Name: "jupyter", OK: true, Detail: detail})
	}

	switch {
	case !installed:
		add(Check{Name: "kernelspec", Detail: "no mmft kernelspec in " + strings.Join(dirs, ", "), Fix: "mmft kernel install --user"})
	case len(spec.Argv) == 0 || !fileExists(spec.Argv[0]):
		add(Check{Name: "kernelspec", Detail: spec.Dir + " runs a missing program", Fix: "mmft kernel install --user (again, with the mmft you use)"})
	default:
		add(Check{Name: "kernelspec", OK: true, Detail: spec.Dir})
	}
	return checks
}

// checkGonb checks that GoNB's display package resolves from mmft's go.mod offline.
func checkGonb(source string) Check {
	cmd := exec.Command("go", "list", "-f", "{{.Module.Path}}@{{.Module.Version}}", "github.com/janpfeifer/gonb/gonbui")
	cmd.Dir = source
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Check{Name: "gonb", Detail: "gonbui does not resolve offline: " + strings.TrimSpace(stderr.String()),
			Fix: "run `go mod download` in " + source + " once with network"}
	}
	return Check{Name: "gonb", OK: true, Detail: strings.TrimSpace(string(out)) + " (pinned by go.mod)"}
}

// JupyterKernelDirs lists the folders Jupyter reads kernelspecs from: `jupyter --paths`
// when Jupyter is there, else the usual ones.
func JupyterKernelDirs() []string {
	var dirs []string
	if out, err := exec.Command("jupyter", "--paths", "--json").Output(); err == nil {
		var paths struct {
			Data []string `json:"data"`
		}
		if json.Unmarshal(out, &paths) == nil {
			for _, d := range paths.Data {
				dirs = append(dirs, filepath.Join(d, "kernels"))
			}
		}
	}
	if len(dirs) == 0 {
		if d, err := KernelsDir(""); err == nil {
			dirs = append(dirs, d)
		}
		dirs = append(dirs, "/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels")
	}
	return dirs
}

func argAfter(argv []string, flag string) string {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag {
			return argv[i+1]
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// String formats a check as one line and, when it is not OK, its fix.
func (c Check) String() string {
	mark := "ok     "
	switch {
	case !c.OK && c.Optional:
		mark = "absent "
	case !c.OK:
		mark = "MISSING"
	}
	s := fmt.Sprintf("%s %-12s %s", mark, c.Name, c.Detail)
	if !c.OK && c.Fix != "" {
		s += "\n        fix: " + c.Fix
	}
	return s
}
