package engine

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/qwen2vl"
)

// TrainBatch is a batch of full sequences (prompt + completion), one row per
// completion, laid out for qwen2vl.Weights.TokenLogProbs: prompts
// left-padded to a common length Lp, completions right-padded to T, so the
// completion of every row occupies the last T positions and Targets are its
// ids. Image tokens point into the features of Images/Grids, which hold each
// distinct prompt's images once (run them once through
// ImageFeatures and pass the result to Text.Tensors).
type TrainBatch struct {
	Text *qwen2vl.TextBatch
	// T is the completion length; Targets [B·T] are the completion ids (0 on
	// padding) and Mask [B·T] is 1 on completion tokens, 0 on padding.
	T       int
	Targets []int32
	Mask    []float32
	// Images (each image's patches: the prompts' own slices, not copies) and
	// Grids are the distinct prompts' images in order of first use.
	Images [][]float32
	Grids  []qwen2vl.Grid
}

// ImageFeatures runs the batch's images through the vision tower once (as
// DeviceImageFeatures does) and returns the features for Text.Tensors (nil
// for a batch without images).
func (b *TrainBatch) ImageFeatures(e *Engine) (*tensors.Tensor, error) {
	if len(b.Grids) == 0 {
		return nil, nil
	}
	feats, _, err := e.imageFeatures(b.Images, b.Grids, rowBucket)
	return feats, err
}

// NewTrainBatch lays out completions (from Generate) with their prompts
// (prompts[c.Request]). pad, when not nil, gives the padded prompt and
// completion lengths (e.g. a shape bucket, so that training steps compile a
// bounded number of programs): pad(n) ≥ n.
func NewTrainBatch(cfg qwen2vl.Config, prompts []Prompt, comps []Completion, pad func(n int) int) (*TrainBatch, error) {
	if len(comps) == 0 {
		return nil, fmt.Errorf("engine: NewTrainBatch needs completions")
	}
	if pad == nil {
		pad = func(n int) int { return n }
	}
	lp, t := 0, 0
	for i, c := range comps {
		if c.Request < 0 || c.Request >= len(prompts) {
			return nil, fmt.Errorf("engine: completion %d names prompt %d of %d", i, c.Request, len(prompts))
		}
		if len(c.IDs) == 0 {
			return nil, fmt.Errorf("engine: completion %d (prompt %d) has no tokens", i, c.Request)
		}
		lp, t = max(lp, len(prompts[c.Request].IDs)), max(t, len(c.IDs))
	}
	lp, t = max(pad(lp), lp), max(pad(t), t)
	b := &TrainBatch{T: t, Targets: make([]int32, len(comps)*t), Mask: make([]float32, len(comps)*t)}
	win := cfg.Vision.SpatialMergeSize * cfg.Vision.SpatialMergeSize
	offset := map[int]int{} // prompt → its first feature row
	rows := 0
	ids, mask := make([][]int32, len(comps)), make([][]int32, len(comps))
	var rowGrids []qwen2vl.Grid // each row's images, for the M-RoPE positions
	for i, c := range comps {
		p := prompts[c.Request]
		if _, ok := offset[c.Request]; !ok {
			offset[c.Request] = rows
			for _, im := range p.Images {
				b.Images = append(b.Images, im.Pixels)
				b.Grids = append(b.Grids, im.Grid)
				rows += im.Grid.T * im.Grid.H * im.Grid.W / win
			}
		}
		for _, im := range p.Images {
			rowGrids = append(rowGrids, im.Grid)
		}
		ids[i], mask[i] = make([]int32, lp+t), make([]int32, lp+t)
		copy(ids[i][lp-len(p.IDs):], p.IDs)
		copy(ids[i][lp:], c.IDs)
		for j := lp - len(p.IDs); j < lp+len(c.IDs); j++ {
			mask[i][j] = 1
		}
		copy(b.Targets[i*t:], c.IDs)
		for j := range c.IDs {
			b.Mask[i*t+j] = 1
		}
	}
	// A sampled image-pad id is text to the decoder (embedded as a token, at
	// the next text position), so it must not read as an image placeholder
	// here: lay the rows out with it hidden, then put the id back.
	hidden := int32(cfg.VisionEndTokenID)
	var sampledImage []int // flat positions (row·(lp+t) + column) of completion image ids
	for i, c := range comps {
		for j, id := range c.IDs {
			if id == int32(cfg.ImageTokenID) {
				ids[i][lp+j] = hidden
				sampledImage = append(sampledImage, i*(lp+t)+lp+j)
			}
		}
	}
	text, err := qwen2vl.PrepareText(cfg, ids, mask, rowGrids)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	for _, k := range sampledImage {
		text.IDs[k] = int32(cfg.ImageTokenID)
	}
	// Point every row's image tokens at its prompt's features (shared by the
	// prompt's completions) instead of a per-row copy.
	for i, c := range comps {
		next := offset[c.Request]
		for j := range lp {
			if k := i*(lp+t) + j; text.IsImage[k] {
				text.ImageIndex[k] = int32(next)
				next++
			}
		}
	}
	b.Text = text
	return b, nil
}

// SequenceLogProbs returns the log-probs [B][T] of a TrainBatch's
// completion tokens under the model with adapter l (nil = the reference),
// computing each distinct image's features once; padding entries are 0.
func (e *Engine) SequenceLogProbs(b *TrainBatch, l *qwen2vl.LoRA, vocabChunk int) ([][]float32, error) {
	feats, err := b.ImageFeatures(e)
	if err != nil {
		return nil, err
	}
	if feats != nil {
		defer feats.FinalizeAll()
	}
	if vocabChunk <= 0 {
		vocabChunk = 8192
	}
	var args []any
	for _, x := range b.Text.Tensors(feats) {
		args = append(args, x)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(b.Targets, b.Text.B, b.T))
	outs, err := e.models.call(e.progs.tokenLogProbs, l, vocabChunk, args...)
	if err != nil {
		return nil, fmt.Errorf("engine: sequence log-probs: %w", err)
	}
	flat, err := tensors.CopyFlatData[float32](outs[0])
	if err != nil {
		return nil, err
	}
	out := make([][]float32, b.Text.B)
	for i := range out {
		out[i] = make([]float32, b.T)
		for j := range b.T {
			if b.Mask[i*b.T+j] != 0 {
				out[i][j] = flat[i*b.T+j]
			}
		}
	}
	return out, nil
}
