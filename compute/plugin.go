package compute

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Where a plugin was found.
const (
	SourceExplicit = "explicit setting"
	SourceGoXLA    = "go-xla install folder"
	SourcePython   = "python site-packages (jax_plugins)"
)

// Plugin is a PJRT plugin file found on the machine.
type Plugin struct {
	Path   string
	Source string
}

// PluginSearch lists where FindCUDAPlugin looks, in order. It is exported so
// that error messages and `mmft env` can show it.
type PluginSearch struct {
	// Explicit is the flag value or $MMFT_PJRT_PLUGIN.
	Explicit string
	// GoXLADirs are go-xla's install folders and $PJRT_PLUGIN_LIBRARY_PATH.
	GoXLADirs []string
	// SitePackages are python3 site-packages folders.
	SitePackages []string
}

// goXLAPatterns match CUDA plugins as go-xla installs them.
var goXLAPatterns = []string{"pjrt_c_api_cuda*_plugin.so", "pjrt-plugin-cuda*.so", "pjrt_plugin_cuda*.so"}

// jaxPattern matches JAX's CUDA plugin inside a site-packages folder.
const jaxPattern = "jax_plugins/xla_cuda*/xla_cuda_plugin.so"

// DefaultPluginSearch returns the folders FindCUDAPlugin searches on this machine.
func DefaultPluginSearch(explicit string) PluginSearch {
	s := PluginSearch{Explicit: explicit}
	if s.Explicit == "" {
		s.Explicit = os.Getenv(EnvPlugin)
	}
	for _, d := range filepath.SplitList(os.Getenv("PJRT_PLUGIN_LIBRARY_PATH")) {
		if d != "" {
			s.GoXLADirs = append(s.GoXLADirs, d)
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		base := filepath.Join(home, ".local", "lib", "go-xla")
		s.GoXLADirs = append(s.GoXLADirs, base, filepath.Join(base, "nvidia"), filepath.Join(home, ".local", "lib", "gomlx", "pjrt"))
	}
	s.GoXLADirs = append(s.GoXLADirs, "/usr/local/lib/go-xla", "/usr/local/lib/go-xla/nvidia", "/usr/local/lib/gomlx/pjrt")
	s.SitePackages = sitePackages()
	return s
}

// FindCUDAPlugin finds a PJRT CUDA plugin: the explicit path (or
// $MMFT_PJRT_PLUGIN) first, then go-xla's install folders, then JAX's plugin
// (jax_plugins/xla_cuda*/xla_cuda_plugin.so) under a python3 site-packages.
// The error says everywhere it looked and how to fix it.
func FindCUDAPlugin(explicit string) (Plugin, error) {
	return DefaultPluginSearch(explicit).Find()
}

// Find runs the search.
func (s PluginSearch) Find() (Plugin, error) {
	if s.Explicit != "" {
		st, err := os.Stat(s.Explicit)
		if err != nil || st.IsDir() {
			return Plugin{}, fmt.Errorf("%w: the PJRT plugin given explicitly (--plugin or $%s) is not a file: %s", ErrNoPlugin, EnvPlugin, s.Explicit)
		}
		abs, _ := filepath.Abs(s.Explicit)
		return Plugin{Path: abs, Source: SourceExplicit}, nil
	}
	for _, d := range s.GoXLADirs {
		for _, pat := range goXLAPatterns {
			if m := glob(filepath.Join(d, pat)); m != "" {
				return Plugin{Path: m, Source: SourceGoXLA}, nil
			}
		}
	}
	for _, d := range s.SitePackages {
		if m := glob(filepath.Join(d, jaxPattern)); m != "" {
			return Plugin{Path: m, Source: SourcePython}, nil
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v. Looked in:\n", ErrNoPlugin)
	fmt.Fprintf(&b, "  1. an explicit setting: --plugin flag or $%s (unset)\n", EnvPlugin)
	fmt.Fprintf(&b, "  2. go-xla install folders: %s\n", strings.Join(s.GoXLADirs, ", "))
	if len(s.SitePackages) == 0 {
		fmt.Fprintf(&b, "  3. python3 site-packages: none found on this machine\n")
	} else {
		fmt.Fprintf(&b, "  3. %s under python3 site-packages: %s\n", jaxPattern, strings.Join(s.SitePackages, ", "))
	}
	fmt.Fprintf(&b, "Fix: `pip install \"jax[cuda13]\"` (or cuda12) in a python3 environment, or set $%s to a "+
		"pjrt_c_api_cuda_plugin.so / xla_cuda_plugin.so file, or run on the CPU with --device cpu.", EnvPlugin)
	return Plugin{}, fmt.Errorf("%s", b.String())
}

// glob returns the last match of pattern in lexical order (the newest CUDA
// version when several are installed), or "".
func glob(pattern string) string {
	m, _ := filepath.Glob(pattern)
	var files []string
	for _, f := range m {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return ""
	}
	sort.Strings(files)
	return files[len(files)-1]
}

// sitePackages lists python3 site-packages folders: the active virtualenv's,
// the ones python3 on PATH reports, and the usual install locations.
func sitePackages() []string {
	var cands []string
	if venv := os.Getenv("VIRTUAL_ENV"); venv != "" {
		cands = append(cands, globAll(filepath.Join(venv, "lib", "python3*", "site-packages"))...)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, py, "-c",
			"import site,sys\nfor p in site.getsitepackages()+[site.getusersitepackages()]: print(p)").Output()
		cancel()
		if err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					cands = append(cands, l)
				}
			}
		}
	}
	home, _ := os.UserHomeDir()
	for _, pat := range []string{
		"/opt/*/.venv/lib/python3*/site-packages",
		"/opt/*/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages",
		"/usr/local/lib/python3*/dist-packages",
		"/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3/dist-packages",
		"/usr/lib/python3*/site-packages",
		filepath.Join(home, ".local", "lib", "python3*", "site-packages"),
	} {
		cands = append(cands, globAll(pat)...)
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range cands {
		if seen[c] {
			continue
		}
		seen[c] = true
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			out = append(out, c)
		}
	}
	return out
}

func globAll(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	sort.Strings(m)
	return m
}
