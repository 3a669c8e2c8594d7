package grpo

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TrainBatch is one rollout batch laid out for the policy's forward pass: N
// = prompts × group rows, each its prompt (left-padded to P tokens) followed
// by one completion (right-padded to C tokens). Token ids are the engine's,
// never re-tokenized text.
type TrainBatch struct {
	N, P, C int
	// Text is the host preparation of the N full sequences (M-RoPE positions,
	// valid positions); its image tokens point into the features of the
	// batch's distinct images, so each image runs through the vision tower
	// once per batch however many completions share it.
	Text *qwen2vl.TextBatch
	// Features are the vision tower's features of the prompts' images, in
	// prompt order ([tokens, hidden]; nil for text-only prompts).
	Features *tensors.Tensor
	// Targets [N·C] are the completion ids (0 in padding), Mask [N·C] 1 on
	// completion tokens.
	Targets []int32
	Mask    []float32
	// EngineLogps [N·C] are the policy's temperature-1 log-probs the engine
	// computed while sampling.
	EngineLogps []float32
	// Truncated [N] is 1 for completions cut at the length limit.
	Truncated []float32
	// Lengths are the completions' token counts.
	Lengths []int
}

// BuildTrainBatch lays out the completions of prompts (group completions
// ordered by prompt, then index, as engine.Generate returns them) for
// training. features are the prompts' image features in prompt order
// (engine.ImageFeatures of all their images), nil when no prompt has an
// image. padID fills padding. The completion length is padded to a shape
// bucket (multiples of 8) so that few programs are compiled.
func BuildTrainBatch(cfg qwen2vl.Config, prompts []engine.Prompt, group int, comps []engine.Completion, features *tensors.Tensor, padID int32) (*TrainBatch, error) {
	n := len(prompts) * group
	if len(comps) != n {
		return nil, fmt.Errorf("grpo: %d completions for %d prompts × %d", len(comps), len(prompts), group)
	}
	p, c := 0, 1
	for _, pr := range prompts {
		p = max(p, len(pr.IDs))
	}
	for i, cp := range comps {
		if cp.Request != i/group || cp.Index != i%group {
			return nil, fmt.Errorf("grpo: completion %d is (request %d, index %d); want them ordered by prompt then index", i, cp.Request, cp.Index)
		}
		if len(cp.PolicyLogProbs) != len(cp.IDs) {
			return nil, fmt.Errorf("grpo: completion %d has %d ids but %d log-probs", i, len(cp.IDs), len(cp.PolicyLogProbs))
		}
		c = max(c, len(cp.IDs))
	}
	c = execution.Bucket(c, 8, 8)
	p = execution.Bucket(p, 16, 8)
	l := p + c
	tb := &TrainBatch{N: n, P: p, C: c, Features: features, Targets: make([]int32, n*c), Mask: make([]float32, n*c),
		EngineLogps: make([]float32, n*c), Truncated: make([]float32, n), Lengths: make([]int, n)}
	ids := make([][]int32, n)
	mask := make([][]int32, n)
	var grids []qwen2vl.Grid
	for r := range n {
		pr := prompts[r/group]
		cp := comps[r]
		row := make([]int32, l)
		mrow := make([]int32, l)
		for j := range row {
			row[j] = padID
		}
		off := p - len(pr.IDs)
		copy(row[off:], pr.IDs)
		copy(row[p:], cp.IDs)
		for j := off; j < p+len(cp.IDs); j++ {
			mrow[j] = 1
		}
		ids[r], mask[r] = row, mrow
		for _, im := range pr.Images {
			grids = append(grids, im.Grid)
		}
		copy(tb.Targets[r*c:], cp.IDs)
		copy(tb.EngineLogps[r*c:], cp.PolicyLogProbs)
		for j := range cp.IDs {
			tb.Mask[r*c+j] = 1
		}
		if cp.Finish == engine.FinishLength {
			tb.Truncated[r] = 1
		}
		tb.Lengths[r] = len(cp.IDs)
	}
	text, err := qwen2vl.PrepareText(cfg, ids, mask, grids)
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	// Image tokens of row r take prompt r/group's features: rows of the
	// distinct images, not one copy per completion.
	offset := make([]int32, len(prompts)+1)
	for i, pr := range prompts {
		k := int32(0)
		for _, id := range pr.IDs {
			if id == int32(cfg.ImageTokenID) {
				k++
			}
		}
		offset[i+1] = offset[i] + k
	}
	if features == nil && offset[len(prompts)] > 0 {
		return nil, fmt.Errorf("grpo: the prompts hold %d image tokens but no image features were given", offset[len(prompts)])
	}
	if features != nil {
		if rows := features.Shape().Dimensions[0]; rows < int(offset[len(prompts)]) {
			return nil, fmt.Errorf("grpo: %d image feature rows for %d image tokens", rows, offset[len(prompts)])
		}
	}
	for r := range n {
		k := offset[r/group]
		for j := range l {
			if text.IsImage[r*l+j] {
				text.ImageIndex[r*l+j] = k
				k++
			}
		}
	}
	tb.Text = text
	return tb, nil
}

// MeanLength is the mean completion length.
func (b *TrainBatch) MeanLength() float64 {
	s := 0
	for _, n := range b.Lengths {
		s += n
	}
	return float64(s) / float64(max(len(b.Lengths), 1))
}
