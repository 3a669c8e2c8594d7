package qwen2vl

import (
	"fmt"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Batch is one batch of model inputs as the processor and tokenizer give them.
type Batch struct {
	InputIDs      [][]int32 // [B][L], left-padded
	AttentionMask [][]int32 // [B][L] 1 = token, 0 = padding; nil = all tokens
	// PixelValues holds the flattened patches of every image of the batch in
	// order, [patches × C·T·p·p] row-major (float32, as the image processor gives).
	PixelValues []float32
	Grids       []Grid // image_grid_thw, one per image in order
}

// ForwardOutput is the result of a full forward pass.
type ForwardOutput struct {
	Logits      *tensors.Tensor // [B, L, vocab] float32
	ImageEmbeds *tensors.Tensor // [merged patches, hidden] float32 (nil without images)
	PositionIDs [3][][]int64    // M-RoPE positions [3][B][L]
	RopeDeltas  []int64         // [B]
}

// TextBatch is the host-side preparation of a left-padded batch of token
// sequences for the text graph (TextInputs): ids, where each image token
// takes its image feature from, M-RoPE positions (RopeIndex) and which
// positions hold tokens. Build it with PrepareText; pass Tensors(features) as
// graph inputs and read them in the graph with ReadTextInputs.
type TextBatch struct {
	B, L        int
	IDs         []int32 // [B·L]
	ImageIndex  []int32 // [B·L]: row of the image features for an image token (0 elsewhere)
	IsImage     []bool  // [B·L]
	Positions   []int32 // [3·B·L] M-RoPE positions
	Valid       []bool  // [B·L]: the position holds a token (attention mask ≠ 0)
	PositionIDs [3][][]int64
	RopeDeltas  []int64 // [B]: a token after the row's n real tokens sits at position n + delta
	// ImageTokens is the number of image tokens, which must equal the rows
	// of image features the images give.
	ImageTokens int
	hidden      int
}

// NumTextInputs is the number of graph inputs TextBatch.Tensors gives and
// ReadTextInputs reads.
const NumTextInputs = 6

// PrepareText checks ids (left-padded [B][L]) and mask ([B][L], nil = all
// tokens) against the config and builds the text graph's host inputs; grids
// are the batch's images in order (used for the M-RoPE positions).
func PrepareText(cfg Config, ids, mask [][]int32, grids []Grid) (*TextBatch, error) {
	b := len(ids)
	if b == 0 || len(ids[0]) == 0 {
		return nil, fmt.Errorf("qwen2vl: input_ids is empty")
	}
	l := len(ids[0])
	if mask == nil {
		mask = make([][]int32, b)
		for i := range mask {
			mask[i] = make([]int32, l)
			for j := range mask[i] {
				mask[i][j] = 1
			}
		}
	}
	if len(mask) != b {
		return nil, fmt.Errorf("qwen2vl: attention_mask has %d rows, input_ids has %d", len(mask), b)
	}
	t := &TextBatch{B: b, L: l, IDs: make([]int32, 0, b*l), ImageIndex: make([]int32, b*l), IsImage: make([]bool, b*l),
		Valid: make([]bool, 0, b*l), hidden: cfg.Text.HiddenSize}
	for i, row := range ids {
		if len(row) != l || len(mask[i]) != l {
			return nil, fmt.Errorf("qwen2vl: input_ids row %d has %d tokens and mask %d, row 0 has %d (pad the batch)", i, len(row), len(mask[i]), l)
		}
		for j, id := range row {
			if id < 0 || int(id) >= cfg.Text.VocabSize {
				return nil, fmt.Errorf("qwen2vl: input_ids[%d][%d] = %d is outside the vocabulary [0, %d)", i, j, id, cfg.Text.VocabSize)
			}
			t.Valid = append(t.Valid, mask[i][j] != 0)
		}
		t.IDs = append(t.IDs, row...)
	}
	// Image features replace the image tokens in order (row-major).
	for k, id := range t.IDs {
		if id == int32(cfg.ImageTokenID) {
			t.ImageIndex[k], t.IsImage[k] = int32(t.ImageTokens), true
			t.ImageTokens++
		}
	}
	var err error
	t.PositionIDs, t.RopeDeltas, err = RopeIndex(cfg, ids, mask, grids)
	if err != nil {
		return nil, fmt.Errorf("qwen2vl: %w", err)
	}
	for i, row := range mask {
		n := int64(0)
		for _, v := range row {
			if v != 0 {
				n++
			}
		}
		if top := n + t.RopeDeltas[i]; cfg.Text.MaxPositions > 0 && top > int64(cfg.Text.MaxPositions) {
			return nil, fmt.Errorf("qwen2vl: row %d reaches position %d, beyond max_position_embeddings %d", i, top, cfg.Text.MaxPositions)
		}
	}
	t.Positions = make([]int32, 0, 3*b*l)
	for a := range 3 {
		for _, row := range t.PositionIDs[a] {
			for _, v := range row {
				t.Positions = append(t.Positions, int32(v))
			}
		}
	}
	return t, nil
}

// Tensors returns the text graph's inputs in ReadTextInputs order: ids [B,
// L], image index [B, L], is-image [B, L], positions [3, B, L], valid [B,
// L] and the image features [N, hidden] (float32; N ≥ ImageTokens rows, e.g.
// from the vision tower, padded rows unused). features nil (text only) gives
// a one-row zero tensor.
func (t *TextBatch) Tensors(features *tensors.Tensor) []*tensors.Tensor {
	if features == nil {
		features = tensors.FromShape(shapes.Make(dtypes.Float32, 1, t.hidden))
	}
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(t.IDs, t.B, t.L),
		tensors.FromFlatDataAndDimensions(t.ImageIndex, t.B, t.L),
		tensors.FromFlatDataAndDimensions(t.IsImage, t.B, t.L),
		tensors.FromFlatDataAndDimensions(t.Positions, 3, t.B, t.L),
		tensors.FromFlatDataAndDimensions(t.Valid, t.B, t.L),
		features,
	}
}

// VisionCall is one call of the vision tower over frames that share a padded
// patch count: Frames × Patches patches (both padded to buckets), the 2-D
// rotary tables per frame, which patches are real, and where each merged
// output row goes in the image features (padding rows go to row Trash).
type VisionCall struct {
	Frames, Patches int
	Pixels          []float32 // [Frames·Patches·PatchDim]
	Cos, Sin        []float32 // [Frames·Patches·head_dim]
	Valid           []bool    // [Frames·Patches]
	Dest            []int32   // [Frames·Patches/merge²]: output row of each merged patch
}

// VisionPlan is how a batch's images run through the vision tower: calls
// whose outputs are scattered into one features buffer of Rows rows; the
// first Tokens rows are the merged patches of every image in order (what the
// image tokens take), the rest padding (Trash among them).
type VisionPlan struct {
	Calls        []VisionCall
	Rows, Tokens int
	Trash        int
}

// PlanVision checks images (pixels: the processor's patches of every image
// in order; grids: their image_grid_thw) and plans them as PlanImages does.
func PlanVision(cfg VisionConfig, pixels []float32, grids []Grid, patches, frames, rows func(n int) int) (*VisionPlan, error) {
	images, err := SplitPixels(cfg, pixels, grids)
	if err != nil {
		return nil, err
	}
	return PlanImages(cfg, images, grids, patches, frames, rows)
}

// SplitPixels checks pixel_values against image_grid_thw and returns each
// image's patches (slices of pixels, not copies).
func SplitPixels(cfg VisionConfig, pixels []float32, grids []Grid) ([][]float32, error) {
	pd := cfg.PatchDim()
	total := 0
	for _, g := range grids {
		total += max(g.T*g.H*g.W, 0)
	}
	if len(pixels) != total*pd {
		return nil, fmt.Errorf("qwen2vl: pixel_values has %d values; image_grid_thw needs %d patches × %d = %d", len(pixels), total, pd, total*pd)
	}
	images := make([][]float32, len(grids))
	off := 0
	for i, g := range grids {
		n := max(g.T*g.H*g.W, 0) * pd
		images[i] = pixels[off : off+n : off+n]
		off += n
	}
	return images, nil
}

// PlanImages checks images (each image's patches, as the processor makes
// them; grids: their image_grid_thw) and groups their frames by padded
// patch count: patches(n) gives the padded patch count (≥ n, a multiple of
// merge²); frames(n) the frames per call for the n frames of one patch
// bucket (≥ n: one call, padded; fewer: calls of that many frames, the last
// one padded, so that few distinct call shapes exist); rows(n) the padded row count of the
// features buffer. Padded patches are masked out of attention, so each
// frame's features equal those of an unpadded run.
func PlanImages(cfg VisionConfig, images [][]float32, grids []Grid, patches, frames, rows func(n int) int) (*VisionPlan, error) {
	return PlanImagesWith(nil, cfg, images, grids, patches, frames, rows)
}

// PlanScratch lends host buffers to vision plans for reuse: the pixel
// buffer of each call of a plan made by PlanImagesWith comes from the
// scratch, and VisionPlan.Release gives them back once the calls' inputs
// are on the device. A trainer step plans tens of megabytes of pixels, and
// a fresh allocation of that size is zeroed page by page (on an H200 host
// about 50 ms of a GRPO step of 8 images of 504×504, before the GPU had
// any work); it also keeps the rotary tables of the image sizes it has
// seen, so one scratch serves one vision configuration. It keeps at most
// maxFreeBuffers buffers (the largest). Safe for concurrent use; the zero
// value is ready.
type PlanScratch struct {
	mu   sync.Mutex
	free [][]float32
	// rope holds the rotary tables of the grids planned so far (cos, sin
	// by height and width): about a megabyte of sines and cosines per
	// 504×504 image otherwise computed again on every plan.
	rope map[[2]int][2][]float32
}

// ropeTables returns visionRopeTables(cfg, h, w), kept for reuse. The
// tables are read only.
func (s *PlanScratch) ropeTables(cfg VisionConfig, h, w int) (cos, sin []float32) {
	if s == nil {
		return visionRopeTables(cfg, h, w)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.rope[[2]int{h, w}]; ok {
		return t[0], t[1]
	}
	cos, sin = visionRopeTables(cfg, h, w)
	if s.rope == nil {
		s.rope = map[[2]int][2][]float32{}
	}
	if len(s.rope) >= maxRopeTables {
		clear(s.rope) // bounded: a dataset of many image sizes keeps the recent ones
	}
	s.rope[[2]int{h, w}] = [2][]float32{cos, sin}
	return cos, sin
}

// maxRopeTables bounds the rotary tables a PlanScratch keeps, and
// maxFreeBuffers the pixel buffers.
const (
	maxRopeTables  = 64
	maxFreeBuffers = 8
)

// take returns a buffer of n values with unspecified contents.
func (s *PlanScratch) take(n int) []float32 {
	if s == nil {
		return make([]float32, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for i, b := range s.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(s.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]float32, n)
	}
	b := s.free[best]
	s.free = append(s.free[:best], s.free[best+1:]...)
	return b[:n]
}

// Release gives the plan's pixel buffers back to s (the scratch the plan
// was made with); the plan's calls must not be used afterwards. A nil s
// does nothing.
func (p *VisionPlan) Release(s *PlanScratch) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range p.Calls {
		s.free = append(s.free, p.Calls[i].Pixels)
		p.Calls[i].Pixels = nil
	}
	if len(s.free) > maxFreeBuffers {
		// Keep the largest: a smaller plan fits in them, a larger one would
		// allocate anyway.
		slices.SortFunc(s.free, func(a, b []float32) int { return cap(b) - cap(a) })
		clear(s.free[maxFreeBuffers:])
		s.free = s.free[:maxFreeBuffers]
	}
}

// PlanImagesWith is PlanImages with the calls' pixel buffers taken from
// scratch (nil: allocated).
func PlanImagesWith(scratch *PlanScratch, cfg VisionConfig, images [][]float32, grids []Grid, patches, frames, rows func(n int) int) (*VisionPlan, error) {
	pd, win, d := cfg.PatchDim(), cfg.SpatialMergeSize*cfg.SpatialMergeSize, cfg.HeadDim()
	if len(images) != len(grids) {
		return nil, fmt.Errorf("qwen2vl: %d images for %d grids", len(images), len(grids))
	}
	total := 0
	for i, g := range grids {
		if g.T <= 0 || g.H <= 0 || g.W <= 0 || g.H%cfg.SpatialMergeSize != 0 || g.W%cfg.SpatialMergeSize != 0 {
			return nil, fmt.Errorf("qwen2vl: image %d has grid %v: each of t, h, w must be positive and h, w multiples of %d", i, g, cfg.SpatialMergeSize)
		}
		if n := g.T * g.H * g.W * pd; len(images[i]) != n {
			return nil, fmt.Errorf("qwen2vl: image %d has %d pixel values; its grid %v needs %d", i, len(images[i]), g, n)
		}
		total += g.T * g.H * g.W
	}
	plan := &VisionPlan{Tokens: total / win}
	plan.Rows = max(rows(plan.Tokens+1), plan.Tokens+1)
	plan.Trash = plan.Rows - 1
	type frame struct {
		g   Grid
		px  []float32 // its patches
		out int       // its first output row
	}
	byBucket := map[int][]frame{}
	var order []int
	row := 0
	for i, g := range grids {
		p := g.H * g.W
		pb := patches(p)
		if pb < p || pb%win != 0 {
			return nil, fmt.Errorf("qwen2vl: patch bucket %d for %d patches is smaller or not a multiple of %d", pb, p, win)
		}
		if _, ok := byBucket[pb]; !ok {
			order = append(order, pb)
		}
		for k := range g.T {
			byBucket[pb] = append(byBucket[pb], frame{g: g, px: images[i][k*p*pd : (k+1)*p*pd], out: row / win})
			row += p
		}
	}
	for _, pb := range order {
		all := byBucket[pb]
		fb := max(frames(len(all)), 1)
		for len(all) > 0 {
			fs := all[:min(fb, len(all))]
			all = all[len(fs):]
			c := VisionCall{Frames: fb, Patches: pb, Pixels: scratch.take(fb * pb * pd), Cos: make([]float32, fb*pb*d),
				Sin: make([]float32, fb*pb*d), Valid: make([]bool, fb*pb), Dest: make([]int32, fb*pb/win)}
			for i := range c.Dest {
				c.Dest[i] = int32(plan.Trash)
			}
			for f, fr := range fs {
				p := fr.g.H * fr.g.W
				copy(c.Pixels[f*pb*pd:], fr.px)
				clear(c.Pixels[f*pb*pd+p*pd : (f+1)*pb*pd]) // padded patches
				cos, sin := scratch.ropeTables(cfg, fr.g.H, fr.g.W)
				copy(c.Cos[f*pb*d:], cos)
				copy(c.Sin[f*pb*d:], sin)
				for k := range p {
					c.Valid[f*pb+k] = true
				}
				for k := range p / win {
					c.Dest[f*pb/win+k] = int32(fr.out + k)
				}
			}
			clear(c.Pixels[len(fs)*pb*pd:]) // padded frames
			plan.Calls = append(plan.Calls, c)
		}
	}
	return plan, nil
}
