package engine

import (
	"errors"
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified

	"github.com/mmft-go/mmft/engine/sample"
)

// Sampling are a request's sampling parameters.
type Sampling struct {
	// Temperature divides the logits; 0 means greedy (argmax).
	Temperature float32
	// TopP keeps the smallest set of tokens whose probability reaches TopP
	// (0 or 1: off). TopK keeps the K most likely tokens (0: off).
	TopP float32
	TopK int
	// MinP drops tokens whose probability is below MinP times the largest
	// (0: off).
	MinP float32
	// RepetitionPenalty divides positive and multiplies negative logits of
	// tokens already in the sequence, prompt included (transformers' rule;
	// 0 or 1: off).
	RepetitionPenalty float32
	// MaxNewTokens bounds each completion (required, > 0).
	MaxNewTokens int
	// StopIDs end a completion (finish reason stop) when generated; the
	// model's EOS ids (Options.EOSIDs) end it with reason eos. Both are kept
	// in the completion's ids.
	StopIDs []int32
	// StopStrings end a completion when its decoded text contains one (needs
	// Options.Decode); the ids up to and including the token that completed
	// it are kept.
	StopStrings []string
	// IgnoreEOS keeps generating past EOS ids (a benchmark forcing a length).
	IgnoreEOS bool
	// Seed makes sampling deterministic: each completion draws from its own
	// stream, keyed by Seed, its request's place in the Generate call and its
	// index, so the same requests and seeds give the same completions
	// whatever the engine's StepsPerCall or admission order (and Slots, up to
	// floating-point differences between batch shapes on some backends).
	Seed uint64
}

// Validate checks the parameters.
func (s Sampling) Validate() error {
	var errs []error
	if s.Temperature < 0 || math.IsNaN(float64(s.Temperature)) || math.IsInf(float64(s.Temperature), 0) {
		errs = append(errs, fmt.Errorf("temperature %g: want ≥ 0 (0 = greedy)", s.Temperature))
	}
	if s.TopP < 0 || s.TopP > 1 {
		errs = append(errs, fmt.Errorf("top_p %g: want in [0, 1]", s.TopP))
	}
	if s.TopK < 0 {
		errs = append(errs, fmt.Errorf("top_k %d: want ≥ 0", s.TopK))
	}
	if s.MinP < 0 || s.MinP > 1 {
		errs = append(errs, fmt.Errorf("min_p %g: want in [0, 1]", s.MinP))
	}
	if s.RepetitionPenalty < 0 {
		errs = append(errs, fmt.Errorf("repetition_penalty %g: want > 0 (1 = off)", s.RepetitionPenalty))
	}
	if s.MaxNewTokens <= 0 {
		errs = append(errs, fmt.Errorf("max_new_tokens %d: want > 0", s.MaxNewTokens))
	}
	if len(errs) == 0 {
		if err := s.settings().Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// settings converts to the sampler's per-row settings (0 means off for
// top-p and the repetition penalty).
func (s Sampling) settings() sample.Settings {
	st := sample.Settings{Temperature: s.Temperature, TopK: s.TopK, TopP: s.TopP, MinP: s.MinP, RepetitionPenalty: s.RepetitionPenalty}
	if st.TopP == 0 {
		st.TopP = 1
	}
	if st.RepetitionPenalty == 0 {
		st.RepetitionPenalty = 1
	}
	return st
}

// sampleTokens is the engine's seam to the sampler (engine/sample): from
// float32 logits [S, V], per-row parameters, presence [S, V] (tokens in the
// sequence so far) and uniforms [S, V] (each row's own stream, see
// sample.KeyedUniform) it returns the chosen ids [S] int32, the sampler's
// log-prob of each (the distribution it drew from; 0 for a greedy row) and
// the policy's temperature-1 log-prob of each.
func sampleTokens(logits *Node, p sample.Params, presence, u *Node) (ids, lpSampler, lpPolicy *Node) {
	r := sample.SampleUniform(logits, p, presence, u)
	return r.IDs, r.SamplerLogProb, r.PolicyLogProb
}
