// Package export turns a GoNB notebook (.ipynb) into a batch Go program: a
// main package assembled from the code cells by GoNB's rules, a setup script
// with the cells' shell commands, a run script that builds and runs it
// headless, and a go.mod that pins this module, so that what a notebook does
// step by step in Jupyter can run as one job with no Jupyter and no worker.
//
// The rules are GoNB v0.11.1's: every cell is compiled as `package main`;
// its declarations (imports, types, constants, variables, functions and
// methods) are remembered by name and replace earlier ones of the same name;
// a cell's `func main()`, or the lines after a `%%` (or `%main`) line, are that
// cell's program and are not remembered; `!` lines and `%%bash`, `%%sh`,
// `%%script` and `%%writefile` cells are shell; `%env`, `%cd`, `%args`,
// `%exec`, `%goflags`, `%reset` and `%rm` do what they do in GoNB. The export
// holds the declarations as GoNB holds them after running every cell in order,
// and its main runs each cell's program in order, each in its own function,
// after giving it the cell's arguments (os.Args, flags reset to their
// defaults) and replaying the cell's %env and %cd.
//
// Where the batch version differs from the notebook, by construction: every
// cell's program sees the declarations as they stand after the last cell (a
// variable or function redefined later is the later one everywhere, and a
// name a later cell removed or replaced must not be needed by an earlier
// cell's program); package variables are initialized and init functions run
// once, not once per cell; all shell commands run before the Go program; an
// os.Exit or a panic in a cell ends the whole run. Cells that need Jupyter or
// a person (%wasm, %test, %widgets, %with_inputs, %with_password, %capture)
// are refused with their cell and line.
package export

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Notebook is the part of a Jupyter notebook (nbformat 4) that export reads.
type Notebook struct {
	// Name is where the notebook came from, used in messages and comments.
	Name string
	// Cells are all the notebook's cells, in order.
	Cells []Cell
}

// Cell is one notebook cell.
type Cell struct {
	// Index is the cell's 1-based position among all the notebook's cells,
	// which is how messages name it ("cell 3").
	Index int
	// Type is "code", "markdown" or "raw".
	Type string
	// Source is the cell's text.
	Source string
}

// rawNotebook is the JSON shape of an .ipynb file.
type rawNotebook struct {
	NBFormat *int              `json:"nbformat"`
	Cells    []json.RawMessage `json:"cells"`
}

type rawCell struct {
	CellType string          `json:"cell_type"`
	Source   json.RawMessage `json:"source"`
}

// ParseNotebook reads the JSON of an .ipynb file; name is used in messages.
// It accepts nbformat 4, where a cell's source is a string or a list of
// strings.
func ParseNotebook(data []byte, name string) (*Notebook, error) {
	var raw rawNotebook
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("export: %s: not a Jupyter notebook (invalid JSON: %w)", name, err)
	}
	if raw.NBFormat == nil || raw.Cells == nil {
		return nil, fmt.Errorf("export: %s: not a Jupyter notebook (no \"nbformat\" or \"cells\"); save it from Jupyter as .ipynb", name)
	}
	if *raw.NBFormat != 4 {
		return nil, fmt.Errorf("export: %s: nbformat %d is not supported; save it with Jupyter 4 or later (nbformat 4)", name, *raw.NBFormat)
	}
	nb := &Notebook{Name: name}
	for i, rc := range raw.Cells {
		var c rawCell
		if err := json.Unmarshal(rc, &c); err != nil {
			return nil, fmt.Errorf("export: %s: cell %d: not a notebook cell: %w", name, i+1, err)
		}
		if c.CellType == "" {
			return nil, fmt.Errorf("export: %s: cell %d: no \"cell_type\"", name, i+1)
		}
		src, err := joinSource(c.Source)
		if err != nil {
			return nil, fmt.Errorf("export: %s: cell %d: %w", name, i+1, err)
		}
		nb.Cells = append(nb.Cells, Cell{Index: i + 1, Type: c.CellType, Source: src})
	}
	return nb, nil
}

// joinSource reads a cell's "source": a string, or a list of strings that
// are concatenated (each already ends with its newline).
func joinSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []string
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("\"source\" must be a string or a list of strings, not %.40s", raw)
	}
	return strings.Join(parts, ""), nil
}
