package qwen2vl

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// CheckBatch refuses a batch that cannot be right for cfg before any work is
// done on it: rows of unequal length, a sequence longer than the config's
// max_position_embeddings, attention-mask values other than 0 and 1, a row
// with no unmasked token, and NaN or Inf in pixel_values. Each error names the
// tensor, the row or index, and the limit. Token ids and image sizes are
// checked where the forward pass reads them.
func CheckBatch(cfg Config, b Batch) error {
	if len(b.InputIDs) == 0 || len(b.InputIDs[0]) == 0 {
		return fmt.Errorf("qwen2vl: input_ids is empty")
	}
	l := len(b.InputIDs[0])
	for i, row := range b.InputIDs {
		if len(row) != l {
			return fmt.Errorf("qwen2vl: input_ids row %d has %d tokens, row 0 has %d (pad the batch)", i, len(row), l)
		}
	}
	if max := cfg.Text.MaxPositions; max > 0 && l > max {
		return fmt.Errorf("qwen2vl: input_ids has %d tokens per row; the model's max_position_embeddings is %d", l, max)
	}
	if b.AttentionMask != nil {
		if len(b.AttentionMask) != len(b.InputIDs) {
			return fmt.Errorf("qwen2vl: attention_mask has %d rows, input_ids %d", len(b.AttentionMask), len(b.InputIDs))
		}
		for i, row := range b.AttentionMask {
			if len(row) != l {
				return fmt.Errorf("qwen2vl: attention_mask row %d has %d entries, input_ids rows have %d", i, len(row), l)
			}
			ones := 0
			for j, v := range row {
				if v != 0 && v != 1 {
					return fmt.Errorf("qwen2vl: attention_mask[%d][%d] = %d: the mask holds only 0 (padding) and 1 (token)", i, j, v)
				}
				ones += int(v)
			}
			if ones == 0 {
				return fmt.Errorf("qwen2vl: attention_mask row %d is all zeros: every row needs at least one token", i)
			}
		}
	}
	for k, v := range b.PixelValues {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			pd := max(cfg.Vision.PatchDim(), 1)
			return fmt.Errorf("qwen2vl: pixel_values[%d][%d] is %v: pixel values must be finite", k/pd, k%pd, v)
		}
	}
	return nil
}

// ForwardBytes estimates the peak memory, in bytes, of one full forward pass
// of b (Model.Forward) with weights in dtype: the weights, the vision tower's
// attention over each image's patches, the decoder's attention scores for
// one layer at a time, the hidden and MLP activations, and the float32 logits
// with their host copy. It is an estimate for refusing work that cannot fit,
// not an exact figure; -1 means it overflows int64.
func ForwardBytes(cfg Config, b Batch, dtype dtypes.DType) int64 {
	t, v := cfg.Text, cfg.Vision
	const f32 = 4
	weights := int64(0)
	for _, s := range cfg.ParamSpecs() {
		n := int64(dtype.Size())
		for _, d := range s.Shape {
			n = mulSat(n, int64(d))
		}
		weights = addSat(weights, n)
	}
	rows := int64(len(b.InputIDs))
	l := int64(0)
	if rows > 0 {
		l = int64(len(b.InputIDs[0]))
	}
	tokens := mulSat(rows, l)
	// Scores, their softmax and one more copy for one layer at a time.
	scores := mulSat(mulSat(mulSat(rows, int64(t.NumHeads)), mulSat(l, l)), 3*f32)
	act := mulSat(tokens, mulSat(int64(2*t.HiddenSize+3*t.IntermediateSize), f32))
	logits := mulSat(tokens, mulSat(int64(t.VocabSize), 2*f32))
	vision := int64(0)
	for _, g := range b.Grids {
		n := mulSat(mulSat(int64(g.T), int64(g.H)), int64(g.W))
		vision = addSat(vision, mulSat(mulSat(int64(v.NumHeads), mulSat(n, n)), 3*f32))
		vision = addSat(vision, mulSat(n, mulSat(int64(2*v.EmbedDim+v.EmbedDim*v.MLPRatio+v.PatchDim()), f32)))
	}
	total := addSat(addSat(weights, scores), addSat(addSat(act, logits), vision))
	if total == math.MaxInt64 {
		return -1
	}
	return total
}

func mulSat(a, b int64) int64 {
	if a < 0 || b < 0 {
		return math.MaxInt64
	}
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}

func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// problemsError summarizes a list of checkpoint problems: their count, then
// for each kind (missing, wrong shape, wrong dtype, unexpected, other) how
// many there are and the first few, one per line, so that a checkpoint of
// another size gives a readable message rather than one line of hundreds.
func problemsError(what string, problems []string) error {
	const show = 3
	kinds := map[string][]string{}
	kindOf := func(p string) string {
		switch {
		case strings.HasPrefix(p, "missing "):
			return "missing"
		case strings.HasPrefix(p, "unexpected "):
			return "unexpected"
		case strings.Contains(p, " has shape "):
			return "wrong shape"
		case strings.Contains(p, " has dtype "):
			return "unsupported dtype"
		}
		return "other"
	}
	for _, p := range problems {
		k := kindOf(p)
		kinds[k] = append(kinds[k], p)
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s (%d problems)", what, len(problems))
	for _, k := range names {
		ps := kinds[k]
		fmt.Fprintf(&sb, "\n  %s: %d", k, len(ps))
		for _, p := range ps[:min(show, len(ps))] {
			fmt.Fprintf(&sb, "\n    %s", p)
		}
		if len(ps) > show {
			fmt.Fprintf(&sb, "\n    … and %d more", len(ps)-show)
		}
	}
	return fmt.Errorf("%s", sb.String())
}
