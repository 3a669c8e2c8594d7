// Package synth generates a synthetic dataset of financial documents —
// bar and line charts, tables of figures, income statements and invoices —
// rendered as PNG images with question/answer pairs whose answers are exact,
// computed from the figures drawn. Generation is deterministic from a seed
// and offline; the result is written as parquet in the layout of
// Sujet-Finance-QA-Vision-100k (see WriteParquet), or used in memory
// (see Default) as the built-in training set.
package synth

import (
	"bytes"
	"fmt"
	"image/png"
	"math/rand/v2"
)

// Level is the difficulty of generated documents.
type Level int

const (
	// Normal documents: every kind, 3–8 figures, several question types.
	Normal Level = iota
	// Easy documents: bar charts of 2–4 small whole numbers with large
	// labels and only look-up and largest-bar questions, for tiny models on CPU.
	Easy
)

// String returns "normal" or "easy".
func (l Level) String() string {
	if l == Easy {
		return "easy"
	}
	return "normal"
}

// Options says what to generate. The zero value gives normal documents of
// the default size from seed 0.
type Options struct {
	// Seed makes the output reproducible: the same seed, index and options
	// give the same document.
	Seed uint64
	// Width and Height of the images in pixels; 0 means DefaultWidth ×
	// DefaultHeight (EasyWidth × EasyHeight for Easy). At least 160×120
	// (112×112 for Easy).
	Width, Height int
	// Level of difficulty.
	Level Level
	// Split names the stream ("train", "test", ...): documents of different
	// splits come from independent random streams, so they differ.
	Split string
}

// Default image sizes.
const (
	DefaultWidth  = 640
	DefaultHeight = 480
	EasyWidth     = 224
	EasyHeight    = 224
	minWidth      = 160
	minHeight     = 120
	minEasySide   = 112
)

func (o Options) size() (int, int) {
	w, h := o.Width, o.Height
	if w == 0 && h == 0 {
		if o.Level == Easy {
			return EasyWidth, EasyHeight
		}
		return DefaultWidth, DefaultHeight
	}
	return w, h
}

func (o Options) check() error {
	w, h := o.size()
	mw, mh := minWidth, minHeight
	if o.Level == Easy {
		mw, mh = minEasySide, minEasySide
	}
	if w < mw || h < mh {
		return fmt.Errorf("synth: image size %d×%d is too small to be legible at level %s; use at least %d×%d", w, h, o.Level, mw, mh)
	}
	if w > 4096 || h > 4096 {
		return fmt.Errorf("synth: image size %d×%d is over 4096 pixels a side; use a smaller --width/--height", w, h)
	}
	if o.Level != Normal && o.Level != Easy {
		return fmt.Errorf("synth: unknown level %d", o.Level)
	}
	return nil
}

// QA is one question about a document with its exact answer.
type QA struct {
	Question string
	Answer   string
	// Op and Args say how the answer follows from Doc.Table, so that it can
	// be checked: "value" [row col], "max"/"min" [row] (the column label of
	// the row's largest/smallest cell), "diff" [row colA colB] (B − A),
	// "change" [row colA colB] (percent change from A to B, one decimal),
	// "total" [row] (sum of the row), "coltotal" [col] (sum of the column),
	// "ratio" [rowA rowB col] (A/B in percent, one decimal), "count" []
	// (number of columns), "text" [] (a fact of the document's text, in
	// Doc.Content).
	Op   string
	Args []int
}

// Table holds the figures a document shows: Cells[r][c] is the value of
// row r and column c as an integer count of 10^-Unit.Dec units.
type Table struct {
	RowLabels []string
	ColLabels []string
	Cells     [][]int64
	Unit      Unit
	// ColUnits, when not nil, gives each column its own unit (invoices).
	ColUnits []Unit
}

// UnitOf returns the unit of column c.
func (t *Table) UnitOf(c int) Unit {
	if t.ColUnits != nil {
		return t.ColUnits[c]
	}
	return t.Unit
}

// Doc is one generated document.
type Doc struct {
	ID string
	// Kind is "bar", "hbar", "line", "table", "income" or "invoice".
	Kind string
	// PNG is the rendered image.
	PNG []byte
	// Width and Height of the image.
	Width, Height int
	// Content is the document's text, as an OCR of it would read.
	Content string
	QA      []QA
	// Table holds the figures drawn, from which the answers are computed.
	Table Table
}

// Generator makes documents. It caches fonts, so reuse one for many
// documents; it is not safe for concurrent use.
type Generator struct {
	opts  Options
	fonts *fonts
}

// NewGenerator checks opts and returns a generator.
func NewGenerator(opts Options) (*Generator, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	f, err := newFonts()
	if err != nil {
		return nil, err
	}
	return &Generator{opts: opts, fonts: f}, nil
}

// Doc returns document number i of the generator's seed and split. It
// depends only on the options and i, not on which documents were made before.
func (g *Generator) Doc(i int) (Doc, error) {
	if i < 0 {
		return Doc{}, fmt.Errorf("synth: negative document index %d", i)
	}
	rng := rand.New(rand.NewPCG(g.opts.Seed, streamOf(g.opts.Split, g.opts.Level, i)))
	w, h := g.opts.size()
	b := &builder{rng: rng, w: w, h: h, fonts: g.fonts, easy: g.opts.Level == Easy}
	var d Doc
	if b.easy {
		d = b.easyBar()
	} else {
		switch k := rng.IntN(10); {
		case k < 3:
			d = b.barChart()
		case k < 5:
			d = b.lineChart()
		case k < 7:
			d = b.figureTable()
		case k < 9:
			d = b.incomeStatement()
		default:
			d = b.invoice()
		}
	}
	split := g.opts.Split
	if split == "" {
		split = "doc"
	}
	d.ID = fmt.Sprintf("synth-%s-%s-%d-%05d", g.opts.Level, split, g.opts.Seed, i)
	d.Width, d.Height = w, h
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, b.canvas.img); err != nil {
		return Doc{}, fmt.Errorf("synth: encoding the image of %s: %w", d.ID, err)
	}
	d.PNG = buf.Bytes()
	return d, nil
}

// streamOf mixes the split name, level and index into a PCG stream number.
func streamOf(split string, level Level, i int) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range []byte(split) {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= uint64(level) << 56
	return h ^ (uint64(i) * 0x9E3779B97F4A7C15)
}

// Generate returns documents 0..n-1 of opts.
func Generate(opts Options, n int) ([]Doc, error) {
	if n < 0 {
		return nil, fmt.Errorf("synth: negative document count %d", n)
	}
	g, err := NewGenerator(opts)
	if err != nil {
		return nil, err
	}
	docs := make([]Doc, 0, n)
	for i := range n {
		d, err := g.Doc(i)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// DefaultTrainSize and DefaultTestSize are the sizes of the built-in set.
const (
	DefaultTrainSize = 64
	DefaultTestSize  = 16
)

// Default returns the built-in dataset made in memory (no files needed):
// DefaultTrainSize training and DefaultTestSize test documents of the given
// level, from seed 0, at the level's default image size.
func Default(level Level) (train, test []Doc, err error) {
	train, err = Generate(Options{Level: level, Split: "train"}, DefaultTrainSize)
	if err != nil {
		return nil, nil, err
	}
	test, err = Generate(Options{Level: level, Split: "test"}, DefaultTestSize)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}
