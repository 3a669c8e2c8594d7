package main

import (
	"fmt"
	"path/filepath"

	"github.com/mmft-go/mmft/notebook/export"
)

func runExport(c *cli, args []string) error {
	fs := c.newFlags("export", "NOTEBOOK.ipynb -o DIR [--mmft SRC] [--force]", `
Writes the batch version of a GoNB notebook into DIR: main.go (a Go main package
assembled from the code cells by GoNB's rules: the declarations as they stand after
the last cell, and a main that runs each cell's program in order), setup.sh (the
! lines, %%bash/%%sh/%%script/%%writefile cells, %env and %cd), run.sh (runs
setup.sh, builds and runs the program headless: no Jupyter, no worker) and a
go.mod/go.sum that pin this mmft checkout with a replace directive, so that it
builds offline. Run it with: (cd WHERE_THE_NOTEBOOK_RAN && DIR/run.sh).
Cells that need Jupyter or a person (%wasm, %test, %widgets, %with_inputs,
%with_password, %capture) are refused with the cell and line.`)
	out := fs.String("o", "", "output folder (required); created if missing")
	src := fs.String("mmft", "", "the mmft source checkout the export's go.mod points at (default: the one this binary was built from, else the one holding the working directory)")
	force := fs.Bool("force", false, "write into a non-empty folder that mmft export did not write (its other files are kept)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(c.stderr, "mmft export: give one notebook: mmft export NOTEBOOK.ipynb -o DIR")
		return errUsage
	}
	if *out == "" {
		fmt.Fprintln(c.stderr, "mmft export: -o DIR is required (the folder to write the batch version into)")
		return errUsage
	}
	names, err := export.Export(fs.Arg(0), *out, export.Options{MMFTDir: *src, Force: *force})
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Fprintln(c.stdout, filepath.Join(*out, n))
	}
	fmt.Fprintf(c.stdout, "Run it with: %s\n", filepath.Join(*out, export.RunFile))
	return nil
}
