package data

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/mmft-go/mmft/imageproc"
)

// Qwen2-VL-2B-Instruct's image-processor bounds (preprocessor_config.json),
// the defaults for counting image tokens.
const (
	DefaultMinPixels = 56 * 56
	DefaultMaxPixels = 28 * 28 * 16384
)

// InspectOptions configures Inspect.
type InspectOptions struct {
	// Splits limits the pass to these splits; empty means all.
	Splits []string
	// MinPixels and MaxPixels are the image processor's bounds used to count
	// image tokens; defaults DefaultMinPixels and DefaultMaxPixels.
	MinPixels, MaxPixels int
}

// Stats summarises a set of numbers.
type Stats struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Sum   float64 `json:"sum"`
}

// statsOf computes Stats of xs (which it sorts).
func statsOf(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	sort.Float64s(xs)
	s := Stats{Count: int64(len(xs)), Min: xs[0], Max: xs[len(xs)-1]}
	for _, x := range xs {
		s.Sum += x
	}
	s.Mean = s.Sum / float64(len(xs))
	q := func(p float64) float64 { // nearest-rank percentile
		i := int(math.Ceil(p*float64(len(xs)))) - 1
		return xs[max(0, min(i, len(xs)-1))]
	}
	s.P50, s.P90, s.P99 = q(0.5), q(0.9), q(0.99)
	return s
}

// FileSummary describes one shard.
type FileSummary struct {
	Path      string `json:"path"`
	Bytes     int64  `json:"bytes"`
	Rows      int64  `json:"rows"`
	RowGroups int    `json:"row_groups"`
}

// SplitSummary describes one split: its files, its good and bad rows, and
// statistics over the good rows.
type SplitSummary struct {
	Name   string        `json:"name"`
	Files  []FileSummary `json:"files"`
	Report Report        `json:"report"`
	// PairsPerImage counts usable QA pairs per good row.
	PairsPerImage Stats `json:"pairs_per_image"`
	// Width and Height are the images' sizes in pixels; ImageBytes their encoded size.
	Width      Stats            `json:"width"`
	Height     Stats            `json:"height"`
	ImageBytes Stats            `json:"image_bytes"`
	Formats    map[string]int64 `json:"formats"`
	// ImageTokens counts the <|image_pad|> tokens each image takes after
	// smart_resize under MinPixels/MaxPixels: (h/28)·(w/28).
	ImageTokens Stats `json:"image_tokens"`
	// QuestionChars and AnswerChars are the lengths (in characters) of the pairs.
	QuestionChars Stats `json:"question_chars"`
	AnswerChars   Stats `json:"answer_chars"`
}

// Summary is what Inspect reports about a dataset.
type Summary struct {
	Root      string         `json:"root"`
	MinPixels int            `json:"min_pixels"`
	MaxPixels int            `json:"max_pixels"`
	Splits    []SplitSummary `json:"splits"`
}

// Inspect reads every row of the chosen splits (streaming) and summarises them.
func Inspect(ctx context.Context, ds *Dataset, opts InspectOptions) (*Summary, error) {
	if opts.MinPixels == 0 {
		opts.MinPixels = DefaultMinPixels
	}
	if opts.MaxPixels == 0 {
		opts.MaxPixels = DefaultMaxPixels
	}
	if opts.MinPixels < 0 || opts.MaxPixels < opts.MinPixels {
		return nil, fmt.Errorf("data: min_pixels %d and max_pixels %d must satisfy 0 < min_pixels <= max_pixels", opts.MinPixels, opts.MaxPixels)
	}
	if opts.MaxPixels > imageproc.DefaultMaxDecodePixels {
		return nil, fmt.Errorf("data: max_pixels %d is over %d, the largest image the image processor resizes to (Qwen2-VL's configs use at most %d)",
			opts.MaxPixels, imageproc.DefaultMaxDecodePixels, DefaultMaxPixels)
	}
	splits := opts.Splits
	if len(splits) == 0 {
		splits = ds.Splits()
	}
	sum := &Summary{Root: ds.Root, MinPixels: opts.MinPixels, MaxPixels: opts.MaxPixels}
	for _, name := range splits {
		if err := ds.checkSplit(name); err != nil {
			return nil, err
		}
		sp := SplitSummary{Name: name, Formats: map[string]int64{}}
		for _, f := range ds.Files(name) {
			fs := FileSummary{Path: f}
			if rel, err := filepath.Rel(ds.Root, f); err == nil && filepath.IsLocal(rel) {
				fs.Path = rel
			}
			if st, err := os.Stat(f); err == nil {
				fs.Bytes = st.Size()
			}
			sh, err := openShard(f)
			if err != nil {
				return nil, err
			}
			fs.Rows, fs.RowGroups = sh.pf.NumRows(), len(sh.pf.RowGroups())
			sh.Close()
			sp.Files = append(sp.Files, fs)
		}
		var pairs, widths, heights, sizes, tokens, qLen, aLen []float64
		for row, err := range ds.Rows(ctx, name, &sp.Report) {
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, float64(len(row.QA)))
			widths = append(widths, float64(row.Width))
			heights = append(heights, float64(row.Height))
			sizes = append(sizes, float64(len(row.Image)))
			sp.Formats[row.Format]++
			n, err := ImageTokens(row.Height, row.Width, opts.MinPixels, opts.MaxPixels)
			if err != nil {
				return nil, fmt.Errorf("data: %s: %w", row.DocID, err)
			}
			tokens = append(tokens, float64(n))
			for _, p := range row.QA {
				qLen = append(qLen, float64(len([]rune(p.Question))))
				aLen = append(aLen, float64(len([]rune(p.Answer))))
			}
		}
		sp.PairsPerImage, sp.Width, sp.Height, sp.ImageBytes = statsOf(pairs), statsOf(widths), statsOf(heights), statsOf(sizes)
		sp.ImageTokens, sp.QuestionChars, sp.AnswerChars = statsOf(tokens), statsOf(qLen), statsOf(aLen)
		sum.Splits = append(sum.Splits, sp)
	}
	return sum, nil
}

// ImageTokens returns how many <|image_pad|> tokens Qwen2-VL gives an image of
// height×width pixels under the processor bounds: imageproc.SmartResize to
// multiples of 28 (patch 14 × merge 2), then (h/28)·(w/28).
func ImageTokens(height, width, minPixels, maxPixels int) (int, error) {
	h, w, err := imageproc.SmartResize(height, width, 28, minPixels, maxPixels)
	if err != nil {
		return 0, err
	}
	return (h / 28) * (w / 28), nil
}
