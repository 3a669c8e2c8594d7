package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/hub"
)

// runDataInspect implements `mmft data inspect`: splits, files, rows, QA
// pairs, image statistics, image-token counts and the bad-row report.
func runDataInspect(c *cli, args []string) error {
	fs := c.newFlags("data inspect", "PATH|REPO [--json] [--split S] [--min-pixels N --max-pixels N] [--full-decode]", `
Reads every row of a dataset in the Sujet-Finance-QA-Vision-100k layout (parquet
shards data/<split>-*.parquet: doc_id, image, content, qa_pairs) and reports its
splits, files, rows, QA pairs, image sizes and formats, how many image tokens the
images take under the given min/max pixels (Qwen2-VL smart_resize, (h/28)·(w/28)),
and the rows that would be skipped, with their reason and example doc_ids.

PATH is a dataset folder, a Hugging Face cache folder or a .parquet file; REPO is a
Hub dataset id (ORG/NAME), downloaded into the Hugging Face cache first.`)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	split := fs.String("split", "", "inspect only this split (default: all)")
	minPixels := fs.Int("min-pixels", data.DefaultMinPixels, "image processor min_pixels for the token counts")
	maxPixels := fs.Int("max-pixels", data.DefaultMaxPixels, "image processor max_pixels for the token counts")
	dopts := dataSourceFlags(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) != 1 {
		fmt.Fprintf(c.stderr, "mmft data inspect: want one dataset (a folder, a .parquet file or a Hub id ORG/NAME), got %d arguments\n", len(pos))
		return errUsage
	}
	if err := dopts.check(); err != nil {
		fmt.Fprintf(c.stderr, "mmft data inspect: %v\n", err)
		return errUsage
	}
	ds, err := data.Open(c.ctx, pos[0], dopts.options(c))
	if err != nil {
		return err
	}
	iopts := data.InspectOptions{MinPixels: *minPixels, MaxPixels: *maxPixels}
	if *split != "" {
		iopts.Splits = []string{*split}
	}
	sum, err := data.Inspect(c.ctx, ds, iopts)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	printSummary(c.stdout, sum)
	return nil
}

// dataSource holds the flags that say how a dataset is read.
type dataSource struct {
	fullDecode *bool
	pixelLimit *int
	offline    *bool
	revision   *string
	quiet      *bool
}

func dataSourceFlags(fs *flag.FlagSet) *dataSource {
	return &dataSource{
		fullDecode: fs.Bool("full-decode", false, "decode every image fully to check it (default: header only)"),
		pixelLimit: fs.Int("pixel-limit", data.DefaultPixelLimit, "skip images with more pixels than this (a positive count, or -1 for no limit)"),
		offline:    fs.Bool("offline", false, "for a Hub id: use the Hugging Face cache only"),
		revision:   fs.String("revision", "main", "for a Hub id: branch, tag or commit"),
		quiet:      fs.Bool("quiet", false, "no download progress on stderr"),
	}
}

// check refuses flag values that cannot be right.
func (d *dataSource) check() error {
	if *d.pixelLimit == 0 || *d.pixelLimit < -1 {
		return fmt.Errorf("--pixel-limit %d: give a positive pixel count, or -1 for no limit", *d.pixelLimit)
	}
	return nil
}

// options builds data.Options, with a resolver that downloads Hub dataset ids
// (their parquet files only) through the hub package.
func (d *dataSource) options(c *cli) data.Options {
	return data.Options{
		FullDecode: *d.fullDecode,
		PixelLimit: *d.pixelLimit,
		Resolve: func(ctx context.Context, repoID string) (string, error) {
			opts := hub.Options{RepoType: hub.Dataset, Revision: *d.revision, Offline: *d.offline,
				Include: []string{"*.parquet"}}
			if !*d.quiet {
				opts.Progress = c.stderr
			}
			return hub.Resolve(ctx, repoID, opts)
		},
	}
}

func printSummary(w io.Writer, sum *data.Summary) {
	fmt.Fprintf(w, "dataset %s\n", sum.Root)
	for _, sp := range sum.Splits {
		r := sp.Report
		var size int64
		for _, f := range sp.Files {
			size += f.Bytes
		}
		fmt.Fprintf(w, "\nsplit %s: %s (%s), %d rows: %d good with %d QA pairs, %d skipped\n",
			sp.Name, plural(len(sp.Files), "file"), byteSize(size), r.Rows, r.Good, r.Pairs, r.BadRows())
		for _, f := range sp.Files {
			fmt.Fprintf(w, "  %s  %d rows in %s, %s\n", f.Path, f.Rows, plural(f.RowGroups, "row group"), byteSize(f.Bytes))
		}
		if r.Good > 0 {
			fmt.Fprintf(w, "  QA pairs per image: %s\n", statLine(sp.PairsPerImage, 1))
			fmt.Fprintf(w, "  image width:  %s\n", statLine(sp.Width, 0))
			fmt.Fprintf(w, "  image height: %s\n", statLine(sp.Height, 0))
			fmt.Fprintf(w, "  image bytes:  %s\n", statLine(sp.ImageBytes, 0))
			var formats []string
			for _, f := range slices.Sorted(maps.Keys(sp.Formats)) {
				formats = append(formats, fmt.Sprintf("%s %d", f, sp.Formats[f]))
			}
			fmt.Fprintf(w, "  image formats: %s\n", strings.Join(formats, ", "))
			fmt.Fprintf(w, "  image tokens (min_pixels %d, max_pixels %d): %s, total %.0f\n",
				sum.MinPixels, sum.MaxPixels, statLine(sp.ImageTokens, 0), sp.ImageTokens.Sum)
			fmt.Fprintf(w, "  question length (chars): %s\n", statLine(sp.QuestionChars, 0))
			fmt.Fprintf(w, "  answer length (chars):   %s\n", statLine(sp.AnswerChars, 0))
		}
		if r.DroppedPairs > 0 {
			fmt.Fprintf(w, "  %d QA entries without a question or answer were left out of good rows\n", r.DroppedPairs)
		}
		if len(r.Bad) > 0 {
			fmt.Fprintf(w, "  skipped rows:\n")
			bad := append([]data.ReasonCount(nil), r.Bad...)
			sort.SliceStable(bad, func(i, j int) bool { return bad[i].Count > bad[j].Count })
			for _, b := range bad {
				fmt.Fprintf(w, "    %-16s %d\n", b.Reason, b.Count)
				for _, ex := range b.Examples {
					fmt.Fprintf(w, "      %s (%s row %d): %s\n", ex.DocID, ex.File, ex.Row, ex.Detail)
				}
			}
		}
	}
}

func statLine(s data.Stats, decimals int) string {
	f := func(x float64) string { return fmt.Sprintf("%.*f", decimals, x) }
	return fmt.Sprintf("min %s, median %s, mean %.1f, p90 %s, max %s", f(s.Min), f(s.P50), s.Mean, f(s.P90), f(s.Max))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
