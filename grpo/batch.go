package grpo

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/execution"
)

// TrainBatch is one rollout batch laid out for the policy's forward pass
// (engine.NewTrainBatch: each prompt left-padded, then one completion
// right-padded to C tokens, one row per completion; every distinct image
// once), with what the objective needs besides: the engine's log-probs,
// truncation flags and lengths. Token ids are the engine's, never
// re-tokenized text.
type TrainBatch struct {
	*engine.TrainBatch
	// N is the number of rows (prompts × group) and C the padded completion length.
	N, C int
	// Features are the vision tower's features of the batch's distinct images
	// (on the device; nil for text-only prompts), for Text.Tensors.
	Features *tensors.Tensor
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
// training, with lengths padded to shape buckets (multiples of 8) so that few
// programs are compiled, and runs each distinct image through the vision
// tower once (engine.TrainBatch.ImageFeatures; the features stay on the
// device).
func BuildTrainBatch(eng *engine.Engine, prompts []engine.Prompt, group int, comps []engine.Completion) (*TrainBatch, error) {
	return buildTrainBatch(eng, prompts, group, comps, nil)
}

// buildTrainBatch is BuildTrainBatch with the prompts' image features
// already on the device (features; nil: computed here).
func buildTrainBatch(eng *engine.Engine, prompts []engine.Prompt, group int, comps []engine.Completion, features *tensors.Tensor) (*TrainBatch, error) {
	n := len(prompts) * group
	if len(comps) != n {
		return nil, fmt.Errorf("grpo: %d completions for %d prompts × %d", len(comps), len(prompts), group)
	}
	for i, cp := range comps {
		if cp.Request != i/group || cp.Index != i%group {
			return nil, fmt.Errorf("grpo: completion %d is (request %d, index %d); want them ordered by prompt then index", i, cp.Request, cp.Index)
		}
		if len(cp.PolicyLogProbs) != len(cp.IDs) {
			return nil, fmt.Errorf("grpo: completion %d has %d ids but %d log-probs", i, len(cp.IDs), len(cp.PolicyLogProbs))
		}
	}
	eb, err := engine.NewTrainBatch(eng.Model().Config, prompts, comps, func(k int) int { return execution.Bucket(k, 8, 8) })
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	c := eb.T
	tb := &TrainBatch{TrainBatch: eb, N: n, C: c, EngineLogps: make([]float32, n*c), Truncated: make([]float32, n), Lengths: make([]int, n)}
	for r, cp := range comps {
		copy(tb.EngineLogps[r*c:], cp.PolicyLogProbs)
		if cp.Finish == engine.FinishLength {
			tb.Truncated[r] = 1
		}
		tb.Lengths[r] = len(cp.IDs)
	}
	tb.Features = features
	if features == nil {
		if tb.Features, err = eb.ImageFeatures(eng); err != nil {
			return nil, fmt.Errorf("grpo: image features: %w", err)
		}
	}
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

// promptBucket is the length of a shared-prompt layout's prompt part holding
// k prompt columns (qwen2vl.TextBatch.GroupedTo): the fine ladder in
// multiples of 8, so that at most about a fifth of the prompt's rows are
// padding (every layer pays for them forward and backward, and for those
// columns in each attention) and, with the completion length's multiple of
// 8, the grouped layers' token count is a multiple of 8, which XLA's GPU
// matrix products otherwise pad to (a copy of every activation that a
// product contracts over tokens: about 0.25 ms per layer gradient of a
// 64 × 683-token step on an H200).
func promptBucket(k int) int { return execution.BucketFine(k, 8, 8) }
