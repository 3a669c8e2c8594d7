package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmft-go/mmft/data/synth"
)

// runDataSynth writes the synthetic financial-document dataset as parquet.
func runDataSynth(c *cli, args []string) error {
	fs := c.newFlags("data synth", "--out DIR --n N [--test M] [--seed S] [--level normal|easy] [--width W --height H]", `
Writes synthetic financial documents (bar and line charts, tables of figures, income statements,
invoices) rendered as PNG images, with question/answer pairs whose answers are exact, as parquet in
the Sujet-Finance-QA-Vision-100k layout:
  DIR/data/train-00000-of-00001.parquet   (N documents)
  DIR/data/test-00000-of-00001.parquet    (M documents)
The output is the same for the same flags. --level easy makes small bar charts of 2-4 whole numbers
that a tiny model can learn from on CPU.`)
	out := fs.String("out", "", "output folder (required)")
	n := fs.Int("n", 0, "number of training documents (required, > 0)")
	nTest := fs.Int("test", -1, "number of test documents (default: N/10, at least 1)")
	seed := fs.Uint64("seed", 0, "random seed")
	level := fs.String("level", "normal", "difficulty: normal or easy")
	width := fs.Int("width", 0, fmt.Sprintf("image width in pixels (default %d, easy %d)", synth.DefaultWidth, synth.EasyWidth))
	height := fs.Int("height", 0, fmt.Sprintf("image height in pixels (default %d, easy %d)", synth.DefaultHeight, synth.EasyHeight))
	rowGroup := fs.Int("row-group", synth.DefaultRowGroupSize, "rows per parquet row group")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(c.stderr, "mmft data synth: "+format+"\n", a...)
		return errUsage
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if *out == "" {
		return usageErr("--out is required: the folder to write data/*.parquet into")
	}
	if *n <= 0 {
		return usageErr("--n must be a positive number of training documents (got %d)", *n)
	}
	if *nTest < 0 {
		*nTest = max(1, *n/10)
	}
	if (*width == 0) != (*height == 0) {
		return usageErr("give both --width and --height, or neither")
	}
	if *rowGroup <= 0 {
		return usageErr("--row-group must be positive (got %d)", *rowGroup)
	}
	opts := synth.Options{Seed: *seed, Width: *width, Height: *height}
	switch strings.ToLower(*level) {
	case "normal":
		opts.Level = synth.Normal
	case "easy":
		opts.Level = synth.Easy
	default:
		return usageErr("--level %q: use normal or easy", *level)
	}
	start := time.Now()
	last := start
	progress := func(split string, done, total int) {
		if err := c.ctx.Err(); err != nil {
			return
		}
		if time.Since(last) > 2*time.Second || done == total {
			fmt.Fprintf(c.stderr, "%s: %d/%d documents\n", split, done, total)
			last = time.Now()
		}
	}
	if err := synth.WriteDataset(c.ctx, *out, *n, *nTest, *rowGroup, opts, progress); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %d training and %d test documents (%s, seed %d) in %s:\n  %s\n  %s\n",
		*n, *nTest, opts.Level, *seed, time.Since(start).Round(time.Millisecond),
		filepath.Join(*out, synth.TrainFile), filepath.Join(*out, synth.TestFile))
	return nil
}
