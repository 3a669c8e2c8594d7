package engine

import (
	"fmt"

	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/qwen2vl"
)

// Image is one preprocessed image: the processor's patches [T·H·W,
// PatchDim] row-major and its grid.
type Image struct {
	Pixels []float32
	Grid   qwen2vl.Grid
}

// Prompt is one prompt: its token ids (each image's <|image_pad|> run
// expanded) and its images in order. Completions continue these ids.
type Prompt struct {
	IDs    []int32
	Images []Image
}

// FromPrompt converts a built prompt (prompt.Builder.Build).
func FromPrompt(p *prompt.Prompt) (Prompt, error) {
	if p == nil {
		return Prompt{}, fmt.Errorf("engine: nil prompt")
	}
	return fromParts(p.IDs, p.PixelValues, p.PatchDim, p.Grids)
}

// FromEncoding converts one processor encoding.
func FromEncoding(e *processor.Encoding) (Prompt, error) {
	if e == nil {
		return Prompt{}, fmt.Errorf("engine: nil encoding")
	}
	return fromParts(e.InputIDs, e.PixelValues, e.PatchDim, e.Grids)
}

// fromParts splits concatenated patches into images by their grids.
func fromParts(ids []int32, pixels []float32, patchDim int, grids [][3]int) (Prompt, error) {
	p := Prompt{IDs: append([]int32(nil), ids...)}
	off := 0
	for i, g := range grids {
		n := g[0] * g[1] * g[2] * patchDim
		if n <= 0 || off+n > len(pixels) {
			return Prompt{}, fmt.Errorf("engine: image %d (grid %v) needs %d pixel values, %d remain", i, g, n, len(pixels)-off)
		}
		p.Images = append(p.Images, Image{Pixels: pixels[off : off+n], Grid: qwen2vl.Grid{T: g[0], H: g[1], W: g[2]}})
		off += n
	}
	if off != len(pixels) {
		return Prompt{}, fmt.Errorf("engine: %d pixel values left over after %d images", len(pixels)-off, len(grids))
	}
	return p, nil
}

// PromptsFromBatch converts a processor batch into one Prompt per row (its
// padding dropped; ids are never re-tokenized).
func PromptsFromBatch(b *processor.Batch) ([]Prompt, error) {
	if b == nil {
		return nil, fmt.Errorf("engine: nil batch")
	}
	out := make([]Prompt, len(b.Encodings))
	for i, enc := range b.Encodings {
		p, err := FromEncoding(enc)
		if err != nil {
			return nil, fmt.Errorf("engine: batch row %d: %w", i, err)
		}
		out[i] = p
	}
	return out, nil
}

// Batch is the one place a processor batch becomes model inputs: ids and
// mask as given, except that padding positions hold id 0 (a pad id may lie
// outside a small model's vocabulary; padding is masked out anyway), the
// images' patches and grids.
func Batch(b *processor.Batch) (qwen2vl.Batch, error) {
	if b == nil {
		return qwen2vl.Batch{}, fmt.Errorf("engine: nil batch")
	}
	out := qwen2vl.Batch{PixelValues: b.PixelValues, AttentionMask: b.AttentionMask}
	for i, row := range b.InputIDs {
		if len(b.AttentionMask) != len(b.InputIDs) || len(b.AttentionMask[i]) != len(row) {
			return qwen2vl.Batch{}, fmt.Errorf("engine: batch row %d: attention mask does not match the ids", i)
		}
		ids := append([]int32(nil), row...)
		for j, m := range b.AttentionMask[i] {
			if m == 0 {
				ids[j] = 0
			}
		}
		out.InputIDs = append(out.InputIDs, ids)
	}
	for _, g := range b.Grids {
		out.Grids = append(out.Grids, qwen2vl.Grid{T: g[0], H: g[1], W: g[2]})
	}
	return out, nil
}

// batchOf left-pads prompts into a model batch of length l (≥ every prompt)
// and rows rows (≥ len(ps); extra rows are all padding), padding with id 0.
func batchOf(ps []Prompt, l, rows int) qwen2vl.Batch {
	var b qwen2vl.Batch
	b.PixelValues = make([]float32, 0, pixelCount(ps)) // one copy of the pixels, no regrowth
	for i := range rows {
		ids, mask := make([]int32, l), make([]int32, l)
		if i < len(ps) {
			p := ps[i]
			copy(ids[l-len(p.IDs):], p.IDs)
			for j := l - len(p.IDs); j < l; j++ {
				mask[j] = 1
			}
			for _, im := range p.Images {
				b.PixelValues = append(b.PixelValues, im.Pixels...)
				b.Grids = append(b.Grids, im.Grid)
			}
		}
		b.InputIDs = append(b.InputIDs, ids)
		b.AttentionMask = append(b.AttentionMask, mask)
	}
	return b
}

// Prompts splits a left-padded model batch (as read by qwen2vl.ReadBatch)
// into one Prompt per row: padding dropped, each row taking the next images
// (in batch order) whose merged token counts cover its image tokens.
func Prompts(cfg qwen2vl.Config, b qwen2vl.Batch) ([]Prompt, error) {
	pd, win := cfg.Vision.PatchDim(), cfg.Vision.SpatialMergeSize*cfg.Vision.SpatialMergeSize
	if b.AttentionMask != nil && len(b.AttentionMask) != len(b.InputIDs) {
		return nil, fmt.Errorf("engine: attention mask has %d rows, input ids %d", len(b.AttentionMask), len(b.InputIDs))
	}
	var out []Prompt
	img, off := 0, 0
	for i, row := range b.InputIDs {
		var p Prompt
		tokens := 0
		for j, id := range row {
			if b.AttentionMask == nil || (j < len(b.AttentionMask[i]) && b.AttentionMask[i][j] != 0) {
				p.IDs = append(p.IDs, id)
				if id == int32(cfg.ImageTokenID) {
					tokens++
				}
			}
		}
		for tokens > 0 {
			if img >= len(b.Grids) {
				return nil, fmt.Errorf("engine: row %d holds image tokens beyond the %d images given", i, len(b.Grids))
			}
			g := b.Grids[img]
			n := g.T * g.H * g.W
			if n <= 0 || off+n*pd > len(b.PixelValues) {
				return nil, fmt.Errorf("engine: image %d (grid %v) lacks pixel values", img, g)
			}
			p.Images = append(p.Images, Image{Pixels: b.PixelValues[off : off+n*pd], Grid: g})
			off += n * pd
			tokens -= n / win
			img++
		}
		if tokens < 0 {
			return nil, fmt.Errorf("engine: row %d: its image tokens do not match its images' grids", i)
		}
		out = append(out, p)
	}
	if img != len(b.Grids) {
		return nil, fmt.Errorf("engine: %d images given, the rows' image tokens use %d", len(b.Grids), img)
	}
	return out, nil
}

// pixelCount is the number of pixel values of the prompts' images.
func pixelCount(ps []Prompt) int {
	n := 0
	for _, p := range ps {
		for _, im := range p.Images {
			n += len(im.Pixels)
		}
	}
	return n
}
