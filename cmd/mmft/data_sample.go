package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/internal/atomicfile"
)

// sampleRecord is one shown row in --json output.
type sampleRecord struct {
	DocID     string        `json:"doc_id"`
	Width     int           `json:"width"`
	Height    int           `json:"height"`
	Format    string        `json:"format"`
	SavedTo   string        `json:"saved_to,omitempty"`
	PairIndex int           `json:"pair_index,omitempty"`
	QA        []data.QAPair `json:"qa"`
}

// runDataSample implements `mmft data sample`: show a few rows and save their images.
func runDataSample(c *cli, args []string) error {
	fs := c.newFlags("data sample", "PATH|REPO [--split train] [--n 3] [--out DIR] [--random --seed S] [--json]", `
Shows the first N good rows of a split (or, with --random, N rows drawn by the
training sampler: one random QA pair per image) with their questions and answers,
and saves their images to DIR as <doc_id>.<format>. Rows the trainer would skip
are skipped here too and summarised on stderr.`)
	split := fs.String("split", "train", "split to read")
	n := fs.Int("n", 3, "number of rows to show")
	out := fs.String("out", "", "folder to save the images to (created if missing; default: do not save)")
	random := fs.Bool("random", false, "draw rows with the training sampler instead of taking the first ones")
	seed := fs.Uint64("seed", 0, "sampler seed for --random")
	asJSON := fs.Bool("json", false, "print the rows as JSON")
	dopts := dataSourceFlags(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) != 1 {
		fmt.Fprintf(c.stderr, "mmft data sample: want one dataset (a folder, a .parquet file or a Hub id ORG/NAME), got %d arguments\n", len(pos))
		return errUsage
	}
	if *n < 1 {
		fmt.Fprintf(c.stderr, "mmft data sample: --n must be at least 1, got %d\n", *n)
		return errUsage
	}
	if err := dopts.check(); err != nil {
		fmt.Fprintf(c.stderr, "mmft data sample: %v\n", err)
		return errUsage
	}
	ds, err := data.Open(c.ctx, pos[0], dopts.options(c))
	if err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return fmt.Errorf("creating --out folder: %w", err)
		}
	}
	var rep data.Report
	var records []sampleRecord
	show := func(rec sampleRecord, image []byte) error {
		if *out != "" {
			p := filepath.Join(*out, safeFileName(rec.DocID)+"."+extension(rec.Format))
			if err := atomicfile.WriteBytes(p, image); err != nil {
				return fmt.Errorf("saving the image of %s: %w", rec.DocID, err)
			}
			rec.SavedTo = p
		}
		records = append(records, rec)
		return nil
	}
	if *random {
		s, err := data.NewSampler(ds, *split, data.SamplerOptions{Seed: *seed})
		if err != nil {
			return err
		}
		for smp, err := range s.Epoch(c.ctx, 0, &rep) {
			if err != nil {
				return err
			}
			rec := sampleRecord{DocID: smp.DocID, Width: smp.Width, Height: smp.Height, Format: smp.Format,
				PairIndex: smp.PairIndex, QA: []data.QAPair{{Question: smp.Question, Answer: smp.Answer}}}
			if err := show(rec, smp.Image); err != nil {
				return err
			}
			if len(records) == *n {
				break
			}
		}
	} else {
		for row, err := range ds.Rows(c.ctx, *split, &rep) {
			if err != nil {
				return err
			}
			rec := sampleRecord{DocID: row.DocID, Width: row.Width, Height: row.Height, Format: row.Format, QA: row.QA}
			if err := show(rec, row.Image); err != nil {
				return err
			}
			if len(records) == *n {
				break
			}
		}
	}
	if len(records) < *n {
		fmt.Fprintf(c.stderr, "split %s has only %d good rows\n", *split, len(records))
	}
	if rep.BadRows() > 0 {
		fmt.Fprintf(c.stderr, "skipped on the way: %s", rep.String())
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(records)
	}
	for i, rec := range records {
		if i > 0 {
			fmt.Fprintln(c.stdout)
		}
		fmt.Fprintf(c.stdout, "%s  %dx%d %s", rec.DocID, rec.Width, rec.Height, rec.Format)
		if rec.SavedTo != "" {
			fmt.Fprintf(c.stdout, "  saved to %s", rec.SavedTo)
		}
		fmt.Fprintln(c.stdout)
		for j, p := range rec.QA {
			k := j
			if *random {
				k = rec.PairIndex
			}
			fmt.Fprintf(c.stdout, "  Q%d: %s\n  A%d: %s\n", k+1, p.Question, k+1, p.Answer)
		}
	}
	return nil
}

func extension(format string) string {
	if format == "jpeg" {
		return "jpg"
	}
	if format == "" {
		return "bin"
	}
	return format
}

// safeFileName turns a doc_id into a file name without path separators.
func safeFileName(id string) string {
	s := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, id)
	s = strings.TrimLeft(s, ".")
	if s == "" {
		return "image"
	}
	return s
}
