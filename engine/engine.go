// Package engine generates completions from a Qwen2-VL model: token ids and
// images in, completions (ids, sampler and policy log-probs, finish reason,
// timings) out. It plays vLLM's role for GRPO rollouts: each image runs
// through the vision tower once, each prompt is prefilled once (in batches of
// prompts), a fixed set of KV-cache slots decodes with per-row write
// positions (a scatter, so a step writes one entry per row), a finished slot
// takes the next waiting sequence (continuous batching), and sampling runs
// on the device (engine/sample). A prompt's KV is copied on the device into
// each of its completions' slots, or, with Options.SharedPrefix, held once
// for a group of slots that decodes all its completions.
//
// The engine is also the front door of the model: Batch / PromptsFromBatch
// turn the processor's batches into model inputs, and Forward, LogProbs and
// ImageFeatures run the model's graphs through the execution layer.
package engine

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// Options configure an engine.
type Options struct {
	// Placement is where the programs run; its zero value means the
	// model's device (qwen2vl.Options.Device).
	Placement execution.Placement
	// Slots is the number of sequences decoded together (KV-cache rows);
	// 0 means 8. It is rounded up to a shape bucket.
	Slots int
	// PrefillBatch is the number of prompts prefilled per call; 0 means 8.
	PrefillBatch int
	// StepsPerCall is the number of decode steps one device call runs (the
	// steps unrolled in one program, each feeding its sampled tokens to the
	// next): fewer host round-trips, at the cost of a larger program (longer
	// to compile) and of up to StepsPerCall−1 wasted steps per finished
	// sequence (finishing and refilling slots happen between calls). The
	// completions do not depend on it. 0 means AutoStepsPerCall.
	StepsPerCall int
	// SharedPrefix groups the slots by prompt: when every request of a
	// Generate call asks for the same N > 1, each group of N slots decodes
	// one prompt's N completions and holds the prompt's KV once (not N
	// times), read once per group at every step; a group takes the next
	// prompt when all its completions finished (continuous batching per
	// prompt). Otherwise (the default, or mixed N) every slot holds its
	// prompt's KV and takes the next sequence as soon as it finishes.
	SharedPrefix bool
	// DTypeLogits computes the decode step's logits as a product in the
	// model dtype (qwen2vl.Weights.LogitsInDType) instead of a float32
	// product: for a bf16 model no float32 copy of the head weight is made at
	// every step, but the sampler's and policy's log-probs carry bf16
	// rounding. Off by default.
	DTypeLogits bool
	// CompileWorkers is how many programs a Generate call compiles at once
	// when it starts: the vision tower for every image shape bucket, each
	// prefill batch's shapes and the decode step are known from the requests
	// and compiled concurrently (PJRT compiles are independent) before any
	// runs. 0 means min(8, number of CPUs); 1 compiles each program at its
	// first use, one at a time.
	CompileWorkers int
	// EOSIDs end a completion with finish reason eos; nil means the model
	// config's eos_token_id.
	EOSIDs []int32
	// Decode turns ids into text, for stop strings (e.g. a tokenizer's
	// Decode); nil refuses requests with stop strings.
	Decode func(ids []int32) string
	// MemoryBytes is the device memory the KV cache may take; 0 = unchecked.
	// A Generate call whose cache would not fit is refused before any
	// memory is taken.
	MemoryBytes int64
}

// Engine generates completions and runs the model's graphs. Methods are safe
// for concurrent use, but Generate calls run one at a time.
type Engine struct {
	m      *qwen2vl.Model
	opts   Options
	run    *execution.Runner
	models *models
	progs  programs

	mu      sync.Mutex
	adapter *qwen2vl.LoRA
	gen     sync.Mutex // one Generate at a time
	// pixels lends the vision calls' pixel buffers, reused from call to call.
	pixels qwen2vl.PlanScratch
}

// New returns an engine over m.
func New(m *qwen2vl.Model, opts Options) (*Engine, error) {
	if m == nil {
		return nil, errors.New("engine: New needs a model")
	}
	if opts.Slots < 0 || opts.PrefillBatch < 0 || opts.MemoryBytes < 0 || opts.StepsPerCall < 0 || opts.CompileWorkers < 0 {
		return nil, fmt.Errorf("engine: negative option (slots %d, prefill batch %d, memory %d, steps per call %d, compile workers %d)",
			opts.Slots, opts.PrefillBatch, opts.MemoryBytes, opts.StepsPerCall, opts.CompileWorkers)
	}
	if opts.CompileWorkers == 0 {
		opts.CompileWorkers = min(8, runtime.NumCPU())
	}
	if v := m.Config.Text.VocabSize; v > maxVocab {
		return nil, fmt.Errorf("engine: vocabulary of %d ids: the decode step returns ids as float32, exact up to %d ids", v, maxVocab)
	}
	if opts.Slots == 0 {
		opts.Slots = 8
	}
	if opts.PrefillBatch == 0 {
		opts.PrefillBatch = 8
	}
	if opts.EOSIDs == nil {
		opts.EOSIDs = []int32{int32(m.Config.EOSTokenID)}
	}
	if opts.Placement == (execution.Placement{}) {
		opts.Placement.Device = m.Device
	}
	run := execution.New(m.Backend, opts.Placement)
	ms := &models{m: m, run: run, bindings: map[string]*qwen2vl.Binding{}}
	return &Engine{m: m, opts: opts, run: run, models: ms, progs: definePrograms(ms, canUpdateSlice(m.Backend))}, nil
}

// maxVocab is the largest vocabulary whose ids float32 holds exactly.
const maxVocab = 1 << 24

// AutoStepsPerCall is the decode steps per device call used when
// Options.StepsPerCall is 0, for a Generate call over slots sequences of up
// to maxNew new tokens: 8 from 32 slots and 4 from 8 slots, where a call's
// fixed host cost (about 3 ms on an H200 host: arguments, launch, transfers)
// would otherwise rival the step itself; one call per step below 8 slots
// (a small program, slots refilled at once); never more than maxNew.
func AutoStepsPerCall(slots, maxNew int) int {
	k := 1
	switch {
	case slots >= 32:
		k = 8
	case slots >= 8:
		k = 4
	}
	return max(1, min(k, maxNew))
}

// Model returns the engine's model.
func (e *Engine) Model() *qwen2vl.Model { return e.m }

// Runner returns the engine's execution runner (its Stats report programs
// compiled and compile time).
func (e *Engine) Runner() *execution.Runner { return e.run }

// SetAdapter sets the LoRA adapter Generate uses from its next call on
// (nil = the base model, e.g. the reference policy). The adapter's tensors
// are graph inputs: nothing is copied, and updating them in place (a trainer
// step) is seen by the next call.
func (e *Engine) SetAdapter(l *qwen2vl.LoRA) error {
	if err := l.Validate(e.m.Config); err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.adapter = l
	return nil
}

// currentAdapter returns the adapter set by SetAdapter.
func (e *Engine) currentAdapter() *qwen2vl.LoRA {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.adapter
}
