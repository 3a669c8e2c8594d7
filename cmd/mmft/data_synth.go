package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/internal/atomicfile"
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
	if *n <= 0 || *n > maxSynthDocs {
		return usageErr("--n %d: give a number of training documents from 1 to %d", *n, maxSynthDocs)
	}
	if *nTest < 0 {
		*nTest = max(1, *n/10)
	}
	if *nTest > maxSynthDocs {
		return usageErr("--test %d: the most is %d documents", *nTest, maxSynthDocs)
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
	if err := opts.Check(); err != nil {
		return err
	}
	if err := synthFits(*out, *n, *nTest, *rowGroup, opts); err != nil {
		return err
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

// maxSynthDocs bounds --n and --test: a hundred times Sujet-Finance-QA-Vision's
// 100k documents, days of work on one machine.
const maxSynthDocs = 10_000_000

// synthFits checks, before any document is made, that one row group fits in
// memory and that the dataset fits on the disk holding out. A document is
// counted at width·height·3/8 bytes (its PNG and text; the charts and tables
// compress better than that) on disk and at width·height·3 bytes (an
// uncompressed image, an upper bound) in a row group.
func synthFits(out string, nTrain, nTest, rowGroup int, opts synth.Options) error {
	docs := nTrain + nTest
	w, h := opts.Size()
	img := compute.MulBytes(int64(w), int64(h), 3)
	rowGroup = min(rowGroup, max(nTrain, nTest))
	what := fmt.Sprintf("a row group of %d documents of %d×%d", rowGroup, w, h)
	if err := compute.CheckMemory(what, compute.MulBytes(int64(rowGroup), img), compute.HostAvailableMemory()); err != nil {
		return fmt.Errorf("%w; lower --row-group", err)
	}
	disk := compute.MulBytes(int64(docs), img/8)
	if free := atomicfile.FreeBytes(out); free > 0 && disk > free {
		return fmt.Errorf("%d documents of %d×%d would take about %s on disk, and %s is free under %s; lower --n/--test or the image size",
			docs, w, h, compute.FormatBytes(disk), compute.FormatBytes(free), out)
	}
	return nil
}
