package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"slices"
	"sort"
	"strings"

	// Image formats the dataset may hold, registered for image.Decode.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/mmft-go/mmft/data/pylit"
	"github.com/mmft-go/mmft/imageproc"
)

// DefaultPixelLimit is the default limit on an image's width·height, the value
// at which Pillow refuses an image as a possible decompression bomb.
const DefaultPixelLimit = 2 * 89_478_485

// MaxAspectRatio is the largest long-side/short-side ratio Qwen2-VL's
// smart_resize accepts; images beyond it are reported and skipped.
const MaxAspectRatio = imageproc.MaxAspectRatio

// Options configures how rows are read and checked. The zero value is usable.
type Options struct {
	// FullDecode decodes every image completely to check it, not only its
	// header (image.DecodeConfig). Slower; catches truncated image data.
	FullDecode bool
	// PixelLimit is the largest width·height accepted; default
	// DefaultPixelLimit. Negative means no limit.
	PixelLimit int
	// KeepImageTag keeps a literal "<image>" in questions; by default it is
	// removed (as the seed does) and the question trimmed.
	KeepImageTag bool
	// Examples is how many example rows to keep per bad-row reason; default 5.
	Examples int
	// Resolve downloads a Hub dataset id; nil means only local sources are accepted.
	Resolve Resolver
}

func (o Options) withDefaults() Options {
	if o.PixelLimit == 0 {
		o.PixelLimit = DefaultPixelLimit
	}
	if o.Examples == 0 {
		o.Examples = 5
	}
	return o
}

// Reason says why a row was skipped.
type Reason string

// The reasons a row is skipped.
const (
	// NullImage: the image is null, or has neither bytes nor a readable path.
	NullImage Reason = "null_image"
	// BadImage: the image bytes do not decode as PNG, JPEG, GIF, WebP, BMP or TIFF.
	BadImage Reason = "bad_image"
	// ImageTooLarge: width·height is over Options.PixelLimit.
	ImageTooLarge Reason = "image_too_large"
	// BadAspectRatio: the long side is over MaxAspectRatio times the short side
	// (or a side is zero); Qwen2-VL's image processor refuses such images.
	BadAspectRatio Reason = "bad_aspect_ratio"
	// BadQA: the QA field could not be parsed as a list of question/answer pairs.
	BadQA Reason = "bad_qa"
	// EmptyQA: the QA list holds no usable pair.
	EmptyQA Reason = "empty_qa"
)

// BadRow is one skipped row.
type BadRow struct {
	DocID  string `json:"doc_id"`
	File   string `json:"file"`
	Row    int64  `json:"row"` // index of the row in its file
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
}

// ReasonCount is how many rows were skipped for one reason, with a few examples.
type ReasonCount struct {
	Reason   Reason   `json:"reason"`
	Count    int64    `json:"count"`
	Examples []BadRow `json:"examples"`
}

// Report counts what a pass over rows saw. It is filled by Dataset.Rows; it is
// not safe for concurrent use.
type Report struct {
	// Rows is every row read, good or bad.
	Rows int64 `json:"rows"`
	// Good is the rows yielded.
	Good int64 `json:"good"`
	// Pairs is the QA pairs in good rows.
	Pairs int64 `json:"pairs"`
	// DroppedPairs counts pairs left out of otherwise good rows (an empty
	// question or answer, or an entry that is not a question/answer pair).
	DroppedPairs int64 `json:"dropped_pairs"`
	// Bad lists the skipped rows per reason, most frequent first.
	Bad []ReasonCount `json:"bad"`

	examples int
}

// BadRows is the number of rows skipped.
func (r *Report) BadRows() int64 {
	var n int64
	for _, b := range r.Bad {
		n += b.Count
	}
	return n
}

// Count returns how many rows were skipped for reason.
func (r *Report) Count(reason Reason) int64 {
	for _, b := range r.Bad {
		if b.Reason == reason {
			return b.Count
		}
	}
	return 0
}

func (r *Report) addBad(b BadRow) {
	limit := r.examples
	if limit == 0 {
		limit = 5
	}
	for i := range r.Bad {
		if r.Bad[i].Reason == b.Reason {
			r.Bad[i].Count++
			if len(r.Bad[i].Examples) < limit {
				r.Bad[i].Examples = append(r.Bad[i].Examples, b)
			}
			r.sort()
			return
		}
	}
	r.Bad = append(r.Bad, ReasonCount{Reason: b.Reason, Count: 1, Examples: []BadRow{b}})
	r.sort()
}

func (r *Report) sort() {
	sort.SliceStable(r.Bad, func(i, j int) bool {
		if r.Bad[i].Count != r.Bad[j].Count {
			return r.Bad[i].Count > r.Bad[j].Count
		}
		return r.Bad[i].Reason < r.Bad[j].Reason
	})
}

// Merge adds the counts of other into r (examples are kept up to r's limit).
func (r *Report) Merge(other *Report) {
	r.Rows += other.Rows
	r.Good += other.Good
	r.Pairs += other.Pairs
	r.DroppedPairs += other.DroppedPairs
	limit := r.examples
	if limit == 0 {
		limit = 5
	}
	for _, b := range other.Bad {
		i := slices.IndexFunc(r.Bad, func(c ReasonCount) bool { return c.Reason == b.Reason })
		if i < 0 {
			r.Bad = append(r.Bad, ReasonCount{Reason: b.Reason})
			i = len(r.Bad) - 1
		}
		r.Bad[i].Count += b.Count
		for _, ex := range b.Examples {
			if len(r.Bad[i].Examples) < limit {
				r.Bad[i].Examples = append(r.Bad[i].Examples, ex)
			}
		}
	}
	r.sort()
}

// String renders the report for people.
func (r *Report) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d rows: %d good (%d QA pairs), %d skipped", r.Rows, r.Good, r.Pairs, r.BadRows())
	if r.DroppedPairs > 0 {
		fmt.Fprintf(&sb, "; %d unusable QA pairs left out of good rows", r.DroppedPairs)
	}
	sb.WriteString("\n")
	for _, b := range r.Bad {
		ids := make([]string, len(b.Examples))
		for i, e := range b.Examples {
			ids[i] = e.DocID
		}
		fmt.Fprintf(&sb, "  %-17s %6d  e.g. %s", b.Reason, b.Count, strings.Join(ids, ", "))
		if len(b.Examples) > 0 {
			fmt.Fprintf(&sb, " (%s)", b.Examples[0].Detail)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// checkImage validates the image bytes of a row, returning its size and format.
func checkImage(b []byte, opts Options) (w, h int, format string, reason Reason, detail string) {
	if len(b) == 0 {
		return 0, 0, "", NullImage, "image has no bytes"
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return 0, 0, "", BadImage, fmt.Sprintf("cannot read the image header (%d bytes): %v", len(b), err)
	}
	w, h = cfg.Width, cfg.Height
	if w <= 0 || h <= 0 {
		return w, h, format, BadAspectRatio, fmt.Sprintf("image is %dx%d", w, h)
	}
	if opts.PixelLimit > 0 && int64(w)*int64(h) > int64(opts.PixelLimit) {
		return w, h, format, ImageTooLarge, fmt.Sprintf("image is %dx%d = %d pixels, over the limit of %d", w, h, w*h, opts.PixelLimit)
	}
	if max(w, h) > MaxAspectRatio*min(w, h) {
		return w, h, format, BadAspectRatio, fmt.Sprintf("image is %dx%d, aspect ratio over %d", w, h, MaxAspectRatio)
	}
	if opts.FullDecode {
		if _, _, err := image.Decode(bytes.NewReader(b)); err != nil {
			return w, h, format, BadImage, fmt.Sprintf("%s image %dx%d does not decode: %v", format, w, h, err)
		}
	}
	return w, h, format, "", ""
}

// parseQALiteral parses the qa_pairs text: a Python literal (what the dataset
// holds) or, failing that, JSON.
func parseQALiteral(text string) ([]QAPair, int, error) {
	v, err := pylit.Parse(text)
	if err != nil {
		var j any
		if jerr := json.Unmarshal([]byte(text), &j); jerr == nil {
			return qaFromValue(j)
		}
		return nil, 0, err
	}
	return qaFromValue(v)
}

// qaFromValue turns a parsed list of {'question': q, 'answer': a} entries into
// pairs. Entries that are not such pairs, or whose question or answer is empty,
// are counted as dropped. A value that is not a list is an error.
func qaFromValue(v any) (pairs []QAPair, dropped int, err error) {
	var items []any
	switch v := v.(type) {
	case []any:
		items = v
	case pylit.Tuple:
		items = v
	case *pylit.Dict, map[string]any:
		items = []any{v} // a single pair not wrapped in a list
	default:
		return nil, 0, fmt.Errorf("expected a list of {'question': ..., 'answer': ...}, got %s", pyType(v))
	}
	for _, it := range items {
		var q, a any
		var okQ, okA bool
		switch d := it.(type) {
		case *pylit.Dict:
			q, okQ = d.Get("question")
			a, okA = d.Get("answer")
		case map[string]any:
			q, okQ = d["question"]
			a, okA = d["answer"]
		case pylit.Tuple:
			if len(d) == 2 {
				q, a, okQ, okA = d[0], d[1], true, true
			}
		case []any:
			if len(d) == 2 {
				q, a, okQ, okA = d[0], d[1], true, true
			}
		}
		qs, qok := scalarText(q)
		as, aok := scalarText(a)
		if !okQ || !okA || !qok || !aok {
			dropped++
			continue
		}
		pairs = append(pairs, QAPair{Question: qs, Answer: as})
	}
	return pairs, dropped, nil
}

// scalarText renders a string or number answer as text.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case nil:
		return "", false
	case bool, int64, float64:
		s, err := pylit.Format(v)
		return s, err == nil
	case json.Number:
		return v.String(), true
	}
	if s, err := pylit.Format(v); err == nil {
		switch v.(type) {
		case []any, pylit.Tuple, *pylit.Dict, pylit.Set:
			return "", false
		}
		return s, true
	}
	return "", false
}

func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case string:
		return "a str"
	case pylit.Bytes:
		return "bytes"
	case bool:
		return "a bool"
	case int64:
		return "an int"
	case float64:
		return "a float"
	case *pylit.Dict, map[string]any:
		return "a dict"
	case pylit.Set:
		return "a set"
	}
	return fmt.Sprintf("%T", v)
}

// cleanPairs strips "<image>" from questions (unless kept) and trims both
// sides, dropping pairs left with an empty question or answer.
func cleanPairs(pairs []QAPair, keepTag bool) (out []QAPair, dropped int) {
	out = pairs[:0]
	for _, p := range pairs {
		if !keepTag {
			p.Question = strings.ReplaceAll(p.Question, "<image>", "")
		}
		p.Question = strings.TrimSpace(p.Question)
		p.Answer = strings.TrimSpace(p.Answer)
		if p.Question == "" || p.Answer == "" {
			dropped++
			continue
		}
		out = append(out, p)
	}
	return out, dropped
}

var errNoQA = errors.New("no QA column")
