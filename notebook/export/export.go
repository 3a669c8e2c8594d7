package export

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// ModulePath is the module path of mmft, which the export's go.mod requires.
const ModulePath = "github.com/mmft-go/mmft"

// markerFile marks a folder written by Export, so that a later export may
// replace its files without --force.
const markerFile = ".mmft-export"

// Options configure Export.
type Options struct {
	// MMFTDir is the mmft source checkout (the folder of its go.mod) that the
	// export's go.mod points at with a replace directive. Empty means
	// ModuleRoot().
	MMFTDir string
	// Force lets Export write into a non-empty folder that no export wrote.
	Force bool
}

// Files is an export in memory: file name in the output folder → content.
type Files map[string][]byte

// Names of the files of an export.
const (
	MainFile  = "main.go"
	GoModFile = "go.mod"
	GoSumFile = "go.sum"
	SetupFile = "setup.sh"
	RunFile   = "run.sh"
)

// Build assembles the export of nb in memory, with a go.mod that requires
// mmft from mmftDir (a checkout holding mmft's go.mod and go.sum).
func Build(nb *Notebook, mmftDir string) (Files, error) {
	p, err := assemble(nb)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %w", nb.Name, err)
	}
	name := filepath.Base(nb.Name)
	mainGo, err := renderMain(p, name)
	if err != nil {
		return nil, err
	}
	goMod, goSum, err := moduleFiles(mmftDir)
	if err != nil {
		return nil, err
	}
	return Files{
		MainFile:  mainGo,
		GoModFile: goMod,
		GoSumFile: goSum,
		SetupFile: renderSetup(p, name),
		RunFile:   renderRun(p, name),
	}, nil
}

// Export reads the notebook at notebookPath and writes its batch version into
// dir: main.go, go.mod, go.sum, setup.sh and run.sh. A new dir appears
// whole (written beside it and renamed); in an existing one each file is
// replaced atomically. Nothing is written when the notebook cannot be
// exported. A non-empty dir that no export wrote is refused unless
// opt.Force. It returns the names of the files written.
func Export(notebookPath, dir string, opt Options) ([]string, error) {
	data, err := os.ReadFile(notebookPath)
	if err != nil {
		return nil, fmt.Errorf("export: reading the notebook: %w", err)
	}
	nb, err := ParseNotebook(data, notebookPath)
	if err != nil {
		return nil, err
	}
	mmftDir := opt.MMFTDir
	if mmftDir == "" {
		if mmftDir, err = ModuleRoot(); err != nil {
			return nil, err
		}
	}
	files, err := Build(nb, mmftDir)
	if err != nil {
		return nil, err
	}
	if err := checkDir(dir, opt.Force); err != nil {
		return nil, err
	}
	names := []string{MainFile, GoModFile, GoSumFile, SetupFile, RunFile}
	marker := fmt.Sprintf("Written by `mmft export` from %s; a later export may replace the files here.\n", notebookPath)
	files[markerFile] = []byte(marker)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return names, writeNewDir(dir, files)
	}
	// An existing folder: each file is replaced atomically, the marker first
	// so that an interrupted export can be redone without --force.
	if err := writeFiles(dir, files); err != nil {
		return nil, err
	}
	return names, nil
}

// writeNewDir makes a new folder appear whole: the files are written into a
// temporary folder beside it, which is then renamed.
func writeNewDir(dir string, files Files) error {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("export: creating %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export: creating %s: %w", dir, err)
	}
	if err := writeFiles(tmp, files); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("export: moving the export into %s: %w", dir, err)
	}
	return nil
}

// writeFiles writes files into dir atomically one by one, the marker first;
// the scripts are made executable.
func writeFiles(dir string, files Files) error {
	names := sortedKeys(files) // the marker (a dot file) sorts first
	for _, n := range names {
		path := filepath.Join(dir, n)
		if err := atomicfile.WriteBytes(path, files[n]); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if strings.HasSuffix(n, ".sh") {
			if err := os.Chmod(path, 0o755); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
	}
	return nil
}

// checkDir refuses a non-empty folder that no export wrote, unless force.
func checkDir(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: output folder %s: %w", dir, err)
	}
	if len(entries) == 0 || force {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err == nil {
		return nil
	}
	return fmt.Errorf("export: output folder %s is not empty and was not written by mmft export; choose a new or empty folder, or pass --force to write into it", dir)
}

// ModuleRoot finds the mmft source checkout: the module that this code was
// compiled from (its source path is recorded in the binary unless it was
// built with -trimpath), else the module holding the working directory.
func ModuleRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, start := range starts {
		for d := start; ; d = filepath.Dir(d) {
			if isMMFTRoot(d) {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("export: cannot find the mmft source checkout (the folder with mmft's go.mod, module %s); pass --mmft DIR", ModulePath)
}

func isMMFTRoot(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && modfile.ModulePath(data) == ModulePath
}

// moduleFiles writes the export's go.mod and go.sum: module "notebook",
// requiring mmft (replaced by mmftDir) and, as indirect requirements, what
// mmft's go.mod requires, with mmft's go.sum, so that it builds offline from
// the module cache that built mmft.
func moduleFiles(mmftDir string) (goMod, goSum []byte, err error) {
	abs, err := filepath.Abs(mmftDir)
	if err != nil {
		return nil, nil, fmt.Errorf("export: --mmft %s: %w", mmftDir, err)
	}
	modPath := filepath.Join(abs, "go.mod")
	data, err := os.ReadFile(modPath)
	if err != nil {
		return nil, nil, fmt.Errorf("export: reading mmft's go.mod (pass --mmft DIR, the mmft source checkout): %w", err)
	}
	src, err := modfile.Parse(modPath, data, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("export: %w", err)
	}
	if src.Module == nil || src.Module.Mod.Path != ModulePath {
		return nil, nil, fmt.Errorf("export: %s is not mmft's go.mod (module %s); pass --mmft DIR, the mmft source checkout", modPath, ModulePath)
	}
	goSum, err = os.ReadFile(filepath.Join(abs, "go.sum"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("export: reading mmft's go.sum: %w", err)
	}

	out := &modfile.File{}
	steps := []error{
		out.AddModuleStmt("notebook"),
		out.AddRequire(ModulePath, "v0.0.0-00010101000000-000000000000"),
		out.AddReplace(ModulePath, "", abs, ""),
	}
	if src.Go != nil {
		steps = append(steps, out.AddGoStmt(src.Go.Version))
	}
	if src.Toolchain != nil {
		steps = append(steps, out.AddToolchainStmt(src.Toolchain.Name))
	}
	for _, r := range src.Require {
		out.AddNewRequire(r.Mod.Path, r.Mod.Version, true)
	}
	for _, r := range src.Replace {
		np := r.New.Path
		if modfile.IsDirectoryPath(np) && !filepath.IsAbs(np) {
			np = filepath.Join(abs, np)
		}
		steps = append(steps, out.AddReplace(r.Old.Path, r.Old.Version, np, r.New.Version))
	}
	if err := errors.Join(steps...); err != nil {
		return nil, nil, fmt.Errorf("export: writing go.mod: %w", err)
	}
	out.Cleanup()
	goMod, err = out.Format()
	if err != nil {
		return nil, nil, fmt.Errorf("export: writing go.mod: %w", err)
	}
	return goMod, goSum, nil
}
