package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/engine/sample"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// Request asks for N completions of one prompt.
type Request struct {
	Prompt   Prompt
	N        int
	Sampling Sampling
}

// FinishReason says why a completion ended.
type FinishReason string

// The finish reasons.
const (
	FinishEOS    FinishReason = "eos"    // an EOS id (Options.EOSIDs) was generated
	FinishStop   FinishReason = "stop"   // a stop id or stop string
	FinishLength FinishReason = "length" // MaxNewTokens reached
)

// Timings are where a completion's time went.
type Timings struct {
	// Queue is from the Generate call to the completion taking a slot.
	Queue time.Duration `json:"queue_ns"`
	// Prefill is the prefill call of its prompt's group (vision tower included).
	Prefill time.Duration `json:"prefill_ns"`
	// Decode is from taking a slot to finishing.
	Decode time.Duration `json:"decode_ns"`
}

// Completion is one generated continuation.
type Completion struct {
	// Request is the index of the request, Index the completion's number
	// within it (0 … N−1).
	Request, Index int
	// IDs are the generated token ids (the prompt's ids not included; a
	// final EOS or stop id included).
	IDs []int32
	// SamplerLogProbs are the log-probs of each id under the distribution it
	// was drawn from (after penalty, temperature and filters; 0 for greedy);
	// PolicyLogProbs under the model at temperature 1 (with the adapter set
	// when Generate was called).
	SamplerLogProbs, PolicyLogProbs []float32
	Finish                          FinishReason
	Timings                         Timings
}

// Progress is reported after every decode call.
type Progress struct {
	Done, Total int // completions finished / asked for
	NewTokens   int // tokens generated so far
	Elapsed     time.Duration
	// Finished are the completions that finished in this call (for a
	// caller that streams them; Generate returns them all at the end too).
	Finished []Completion
}

// slot is one KV-cache row's sequence.
type slot struct {
	active     bool
	req, index int
	cur        int32    // the token fed at the next step
	write      int      // cache slot it goes to
	start      int      // first valid cache slot
	real       int      // real tokens before cur
	delta      int64    // M-RoPE delta
	key        [2]int32 // its sampling stream (sample.StreamKey)
	admitted   time.Time
	prefill    time.Duration
	comp       *Completion
}

// group is a batch of prompts prefilled together; its KV stays on the device
// until every completion of its prompts took a slot.
type group struct {
	kv       []*tensors.Tensor // per layer K, V [rows, KVH, L, D]
	presence *tensors.Tensor   // [rows, V] bool: each prompt's ids (made at the first admission)
	l        int
	pending  int
	took     time.Duration
}

// prefilled is where a request's prompt KV lives.
type prefilled struct {
	g        *group
	row      int
	real     int // prefix tokens (the prompt but its last token)
	delta    int64
	presence []bool
}

// zeroSpec is the variant of the program that makes an empty KV cache.
type zeroSpec struct {
	n, slots, capacity, kvh, d, vocab int
	dt                                dtypes.DType
}

// Generate runs the requests to completion and returns their completions,
// ordered by request then index. The adapter set by SetAdapter when the call
// starts is used throughout. Cancelling ctx stops between steps with an
// error. progress (may be nil) is called after each decode call. Each
// completion samples from its own stream (see Sampling.Seed).
func (e *Engine) Generate(ctx context.Context, reqs []Request, progress func(Progress)) (out []Completion, err error) {
	return e.GenerateWithFeatures(ctx, reqs, nil, progress)
}

// GenerateWithFeatures is Generate with the requests' image features
// already on the device (from PromptFeatures over the requests' prompts, in
// order; nil: computed here), so that a caller that also trains on the
// prompts runs each image through the vision tower once.
func (e *Engine) GenerateWithFeatures(ctx context.Context, reqs []Request, feats *ImageFeatures, progress func(Progress)) (out []Completion, err error) {
	if feats != nil && (feats.T == nil || len(feats.From) != len(reqs)+1) {
		return nil, fmt.Errorf("engine: image features for %d prompts given with %d requests", max(len(feats.From)-1, 0), len(reqs))
	}
	e.gen.Lock()
	defer e.gen.Unlock()
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("engine: generate: %v", r)
		}
	}()
	g, err := e.newGeneration(reqs)
	if err != nil {
		return nil, err
	}
	g.feats = feats
	defer g.release()
	if err := g.precompile(); err != nil {
		return nil, err
	}
	return g.run(ctx, progress)
}

// generation is the state of one Generate call.
type generation struct {
	e      *Engine
	reqs   []Request
	feats  *ImageFeatures // the requests' image features (nil: computed at prefill)
	lora   *qwen2vl.LoRA
	bind   *qwen2vl.Binding
	t0     time.Time
	layers int

	// shared: slots form groups of n consecutive slots, one prompt per group,
	// whose KV is held once in prefix (see Options.SharedPrefix); otherwise
	// every slot holds its prompt's KV in caches.
	shared     bool
	n          int
	prefix     []*tensors.Tensor // shared: per layer K, V [groups, KVH, prefixLen, D]
	prefixLen  int
	groupStart []int32           // shared: first valid prefix slot per group
	caches     []*tensors.Tensor // per layer K, V [slots, KVH, capacity, D]
	presence   *tensors.Tensor
	// steps is the number of decode steps per call (Options.StepsPerCall,
	// or the automatic choice for the slot count).
	steps int
	// capacity is the cache positions per slot.
	capacity int
	// cols are the decode call's per-slot inputs and its results buffer,
	// kept on the device between calls (see step).
	cols deviceColumns

	slots       []slot
	pre         []*prefilled
	nextPrefill int
	total       int
}

// newGeneration checks the requests and sizes, then allocates the cache.
func (e *Engine) newGeneration(reqs []Request) (*generation, error) {
	cfg := e.m.Config
	if len(reqs) == 0 {
		return nil, fmt.Errorf("engine: Generate needs at least one request")
	}
	g := &generation{e: e, reqs: reqs, t0: time.Now(), layers: cfg.Text.NumLayers, pre: make([]*prefilled, len(reqs))}
	maxPrefix, maxNew := 1, 0
	sameN := true
	for i, r := range reqs {
		if err := e.checkRequest(r); err != nil {
			return nil, fmt.Errorf("engine: request %d: %w", i, err)
		}
		g.total += r.N
		maxPrefix = max(maxPrefix, len(r.Prompt.IDs)-1)
		maxNew = max(maxNew, r.Sampling.MaxNewTokens)
		sameN = sameN && r.N == reqs[0].N
	}
	g.shared = e.opts.SharedPrefix && sameN && reqs[0].N > 1
	nSlots := execution.Bucket(min(e.opts.Slots, g.total), 1, 1)
	if g.shared {
		nSlots = max(1, min(e.opts.Slots, g.total)/reqs[0].N) * reqs[0].N
	}
	g.steps = e.opts.StepsPerCall
	if g.steps == 0 {
		g.steps = AutoStepsPerCall(nSlots, maxNew)
	}
	k := g.steps
	g.prefixLen = execution.Bucket(maxPrefix, 16, 1)
	// A slot may run up to StepsPerCall−1 steps past its end within a call.
	capacity := execution.Bucket(g.prefixLen+maxNew+k-1, 16, 1)
	groups := 0
	if g.shared {
		g.n = reqs[0].N
		groups = max(1, min(e.opts.Slots, g.total)/g.n)
		nSlots = groups * g.n
		capacity = execution.Bucket(maxNew+k-1, 16, 1)
		g.groupStart = make([]int32, groups)
	}
	tc := cfg.Text
	entry := int64(2*tc.NumLayers) * int64(tc.NumKVHeads*tc.HeadDim()) * int64(e.m.DType.Size())
	kvBytes := entry * (int64(nSlots)*int64(capacity) + int64(groups)*int64(g.prefixLen))
	if e.opts.MemoryBytes > 0 && kvBytes > e.opts.MemoryBytes {
		return nil, fmt.Errorf("engine: the KV cache needs %d MiB (%d slots × %d positions × %d layers), more than the %d MiB allowed: lower Slots or max_new_tokens",
			kvBytes>>20, nSlots, capacity, tc.NumLayers, e.opts.MemoryBytes>>20)
	}
	g.lora = e.currentAdapter()
	var err error
	if g.bind, err = e.m.Bind(g.lora); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	// The empty caches and presence mask, made on the device.
	zeros := func(slots, capacity int) ([]*tensors.Tensor, *tensors.Tensor, error) {
		st, err := e.run.Run(e.progs.zeros, zeroSpec{n: 2 * tc.NumLayers, slots: slots, capacity: capacity, kvh: tc.NumKVHeads,
			d: tc.HeadDim(), vocab: tc.VocabSize, dt: e.m.DType}, tensors.FromScalar(int32(0)))
		if err != nil {
			return nil, nil, fmt.Errorf("engine: allocating the KV cache: %w", err)
		}
		return st[:2*tc.NumLayers], st[2*tc.NumLayers], nil
	}
	if g.caches, g.presence, err = zeros(nSlots, capacity); err != nil {
		return nil, err
	}
	if g.shared {
		var unused *tensors.Tensor
		if g.prefix, unused, err = zeros(groups, g.prefixLen); err != nil {
			g.release()
			return nil, err
		}
		unused.FinalizeAll()
	}
	g.slots = make([]slot, nSlots)
	g.capacity = capacity
	return g, nil
}

// release frees the generation's device state.
func (g *generation) release() {
	for _, t := range append(append(g.caches, g.prefix...), g.presence, g.cols.ints, g.cols.floats, g.cols.results) {
		if t != nil {
			t.FinalizeAll()
		}
	}
}

// run decodes until every completion finished.
func (g *generation) run(ctx context.Context, progress func(Progress)) ([]Completion, error) {
	type seqRef struct{ req, index int }
	var queue []seqRef
	for i, r := range g.reqs {
		for j := range r.N {
			queue = append(queue, seqRef{i, j})
		}
	}
	done := make([][]Completion, len(g.reqs))
	for i, r := range g.reqs {
		done[i] = make([]Completion, r.N)
	}
	finished, newTokens := 0, 0
	k := g.steps
	for finished < g.total {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("engine: generation cancelled after %d of %d completions: %w", finished, g.total, err)
		}
		// Continuous batching: every free slot (every free group of slots
		// with SharedPrefix) takes the next waiting sequence (prompt).
		var adm []admission
		for s := 0; s < len(g.slots) && len(queue) > 0; s++ {
			if g.shared {
				if s%g.n != 0 || slices.ContainsFunc(g.slots[s:s+g.n], func(sl slot) bool { return sl.active }) {
					continue
				}
				if err := g.admitGroup(s/g.n, queue[0].req); err != nil {
					return nil, err
				}
				queue = queue[g.n:]
				continue
			}
			if g.slots[s].active {
				continue
			}
			adm = append(adm, admission{slot: s, req: queue[0].req, index: queue[0].index})
			queue = queue[1:]
		}
		if err := g.admit(adm); err != nil {
			return nil, err
		}
		next, lpS, lpP, err := g.step()
		if err != nil {
			return nil, err
		}
		var finishedNow []Completion
		for s := range g.slots {
			sl := &g.slots[s]
			r := g.reqs[sl.req]
			for j := 0; j < k && sl.active; j++ {
				tok := next[s*k+j]
				c := sl.comp
				c.IDs = append(c.IDs, tok)
				c.SamplerLogProbs = append(c.SamplerLogProbs, lpS[s*k+j])
				c.PolicyLogProbs = append(c.PolicyLogProbs, lpP[s*k+j])
				newTokens++
				if c.Finish = g.e.finish(r.Sampling, c.IDs); c.Finish == "" {
					sl.cur, sl.write, sl.real = tok, sl.write+1, sl.real+1
					continue
				}
				c.Timings.Prefill = sl.prefill
				c.Timings.Decode = time.Since(sl.admitted)
				done[sl.req][sl.index] = *c
				finishedNow = append(finishedNow, *c)
				finished++
				*sl = slot{}
			}
		}
		if progress != nil {
			progress(Progress{Done: finished, Total: g.total, NewTokens: newTokens, Elapsed: time.Since(g.t0), Finished: finishedNow})
		}
	}
	var out []Completion
	for _, d := range done {
		out = append(out, d...)
	}
	return out, nil
}

// prefillOf returns request r's prompt KV, prefilling the next group of
// prompts when it is not there yet.
func (g *generation) prefillOf(r int) (*prefilled, error) {
	for g.pre[r] == nil {
		end := min(g.nextPrefill+g.e.opts.PrefillBatch, len(g.reqs))
		if err := g.e.prefillGroup(g.reqs, g.nextPrefill, end, g.lora, g.feats, g.pre); err != nil {
			return nil, err
		}
		g.nextPrefill = end
	}
	return g.pre[r], nil
}

// used notes that n completions of a prefilled prompt took their slots,
// freeing its group's prompt KV once every completion of the group did.
func (p *prefilled) used(n int) {
	if p.g.pending -= n; p.g.pending == 0 {
		for _, t := range p.g.kv {
			t.FinalizeAll()
		}
		if p.g.presence != nil {
			p.g.presence.FinalizeAll()
		}
	}
}

// admission is a waiting completion (index of request req) taking slot.
type admission struct{ slot, req, index int }

// admit puts waiting completions into their slots: each one's prompt KV is
// copied into its slot's cache row. One device call admits every completion
// whose prompt is in the same prefill group (usually all of them), instead
// of one call per slot.
func (g *generation) admit(adm []admission) error {
	for len(adm) > 0 {
		p0, err := g.prefillOf(adm[0].req)
		if err != nil {
			return err
		}
		// The run of admissions whose prompts share p0's prefill group.
		k := 1
		for ; k < len(adm); k++ {
			p, err := g.prefillOf(adm[k].req)
			if err != nil {
				return err
			}
			if p.g != p0.g {
				break
			}
		}
		if err := g.admitFrom(p0.g, adm[:k]); err != nil {
			return err
		}
		adm = adm[k:]
	}
	return nil
}

// admitFrom admits completions whose prompts are all in prefill group gr.
func (g *generation) admitFrom(gr *group, adm []admission) error {
	n := len(g.slots)
	src, on := make([]int32, n), make([]bool, n)
	for _, a := range adm {
		src[a.slot], on[a.slot] = int32(g.pre[a.req].row), true
	}
	if gr.presence == nil {
		gr.presence = g.groupPresence(gr)
	}
	args := make([]any, 0, 4*g.layers+4)
	for _, c := range g.caches {
		args = append(args, execution.Donate(c))
	}
	args = append(args, execution.Donate(g.presence))
	for _, t := range gr.kv {
		args = append(args, t)
	}
	args = append(args, gr.presence, tensors.FromFlatDataAndDimensions(src, n), tensors.FromFlatDataAndDimensions(on, n))
	outs, err := g.e.run.Run(g.e.progs.admit, len(g.caches), args...)
	if err != nil {
		return fmt.Errorf("engine: admitting %d completions (request %d completion %d first): %w", len(adm), adm[0].req, adm[0].index, err)
	}
	copy(g.caches, outs[:len(g.caches)])
	g.presence = outs[len(g.caches)]
	for _, a := range adm {
		p := g.pre[a.req]
		g.slots[a.slot] = g.newSlot(a.req, a.index, p, p.g.l, p.g.l-p.real)
		p.used(1)
	}
	return nil
}

// groupPresence is prefill group gr's presence rows [rows, V]: row i marks
// the ids of the prompt prefilled in row i.
func (g *generation) groupPresence(gr *group) *tensors.Tensor {
	rows, v := gr.kv[0].Shape().Dimensions[0], g.e.m.Config.Text.VocabSize
	flat := make([]bool, rows*v)
	for _, p := range g.pre {
		if p != nil && p.g == gr {
			copy(flat[p.row*v:], p.presence)
		}
	}
	return tensors.FromFlatDataAndDimensions(flat, rows, v)
}

// admitGroup puts every completion of request r into the slots of group
// gi: the prompt's KV is copied once into the group's prefix row (right
// aligned), and the group's own caches are cleared.
func (g *generation) admitGroup(gi, r int) error {
	p, err := g.prefillOf(r)
	if err != nil {
		return err
	}
	args := make([]any, 0, 6*g.layers+4)
	for _, c := range g.prefix {
		args = append(args, execution.Donate(c))
	}
	for _, c := range g.caches {
		args = append(args, execution.Donate(c))
	}
	args = append(args, execution.Donate(g.presence))
	for _, t := range p.g.kv {
		args = append(args, t)
	}
	args = append(args, tensors.FromScalar(int32(p.row)), tensors.FromScalar(int32(gi)),
		tensors.FromFlatDataAndDimensions(p.presence, len(p.presence)))
	outs, err := g.e.run.Run(g.e.progs.admitGroup, admitGroupSpec{layers: g.layers, n: g.n}, args...)
	if err != nil {
		return fmt.Errorf("engine: admitting request %d: %w", r, err)
	}
	n := 2 * g.layers
	copy(g.prefix, outs[:n])
	copy(g.caches, outs[n:2*n])
	g.presence = outs[2*n]
	g.groupStart[gi] = int32(g.prefixLen - p.real)
	for j := range g.n {
		g.slots[gi*g.n+j] = g.newSlot(r, j, p, 0, 0)
	}
	p.used(g.n)
	return nil
}

// newSlot is the state of a sequence taking a slot: it feeds the prompt's
// last token first, at cache slot write.
func (g *generation) newSlot(r, index int, p *prefilled, write, start int) slot {
	ids := g.reqs[r].Prompt.IDs
	sl := slot{active: true, req: r, index: index, cur: ids[len(ids)-1], write: write, start: start, real: p.real,
		delta: p.delta, admitted: time.Now(), prefill: p.g.took, comp: &Completion{Request: r, Index: index},
		key: sample.StreamKey(g.reqs[r].Sampling.Seed, uint64(r)<<32|uint64(index))}
	sl.comp.Timings.Queue = time.Since(g.t0)
	return sl
}

// checkRequest validates one request against the model.
func (e *Engine) checkRequest(r Request) error {
	cfg := e.m.Config
	if r.N <= 0 {
		return fmt.Errorf("n = %d: want ≥ 1 completion", r.N)
	}
	if err := r.Sampling.Validate(); err != nil {
		return err
	}
	if len(r.Sampling.StopStrings) > 0 && e.opts.Decode == nil {
		return fmt.Errorf("stop strings need Options.Decode (a tokenizer)")
	}
	ids := r.Prompt.IDs
	if len(ids) == 0 {
		return fmt.Errorf("the prompt has no tokens")
	}
	// Checked before the cache is sized from it (the exact bound, with the
	// prompt's positions, is checked at prefill).
	if top := cfg.Text.MaxPositions; top > 0 && r.Sampling.MaxNewTokens > top {
		return fmt.Errorf("max_new_tokens %d is beyond max_position_embeddings %d: lower it", r.Sampling.MaxNewTokens, top)
	}
	for j, id := range ids {
		if id < 0 || int(id) >= cfg.Text.VocabSize {
			return fmt.Errorf("prompt id %d at %d is outside the vocabulary [0, %d)", id, j, cfg.Text.VocabSize)
		}
	}
	if ids[len(ids)-1] == int32(cfg.ImageTokenID) {
		return fmt.Errorf("the prompt ends inside an image; it must end with text (e.g. the assistant turn's start)")
	}
	for i, im := range r.Prompt.Images {
		g := im.Grid
		if len(im.Pixels) != g.T*g.H*g.W*cfg.Vision.PatchDim() {
			return fmt.Errorf("image %d: %d pixel values for grid %v (want %d)", i, len(im.Pixels), g, g.T*g.H*g.W*cfg.Vision.PatchDim())
		}
	}
	return nil
}

// finish returns why a completion with these ids ends now ("" = it goes on).
func (e *Engine) finish(s Sampling, ids []int32) FinishReason {
	last := ids[len(ids)-1]
	if !s.IgnoreEOS && slices.Contains(e.opts.EOSIDs, last) {
		return FinishEOS
	}
	if slices.Contains(s.StopIDs, last) {
		return FinishStop
	}
	if len(s.StopStrings) > 0 {
		text := e.opts.Decode(ids)
		for _, stop := range s.StopStrings {
			if stop != "" && strings.Contains(text, stop) {
				return FinishStop
			}
		}
	}
	if len(ids) >= s.MaxNewTokens {
		return FinishLength
	}
	return ""
}

// prefillGroup prefills the prompts of requests [from, to) (all but each
// prompt's last token, which the first decode step feeds) in one call, each
// image through the vision tower once.
func (e *Engine) prefillGroup(reqs []Request, from, to int, l *qwen2vl.LoRA, given *ImageFeatures, pre []*prefilled) error {
	t0 := time.Now()
	cfg := e.m.Config
	prefixes, b := prefillBatch(reqs[from:to], given == nil)
	var tb *qwen2vl.TextBatch
	var args []any
	var feats *tensors.Tensor
	var err error
	if given == nil {
		tb, args, feats, _, err = e.textInputs(b, prefillRows(b))
	} else {
		tb, args, feats, err = e.givenTextInputs(b, given, from, to)
	}
	if err != nil {
		return fmt.Errorf("engine: prefilling requests %d–%d: %w", from, to-1, err)
	}
	kv, err := e.models.call(e.progs.prefill, l, nil, args...)
	if feats != nil {
		feats.FinalizeAll()
	}
	if err != nil {
		return fmt.Errorf("engine: prefilling requests %d–%d: %w", from, to-1, err)
	}
	g := &group{kv: kv, l: tb.L, took: time.Since(t0)}
	for i, r := range reqs[from:to] {
		real := len(prefixes[i].IDs)
		delta := tb.RopeDeltas[i]
		if top := int64(real+r.Sampling.MaxNewTokens) + delta; cfg.Text.MaxPositions > 0 && top > int64(cfg.Text.MaxPositions) {
			return fmt.Errorf("engine: request %d: prompt and max_new_tokens reach position %d, beyond max_position_embeddings %d", from+i, top, cfg.Text.MaxPositions)
		}
		seen := make([]bool, cfg.Text.VocabSize)
		for _, id := range prefixes[i].IDs {
			seen[id] = true
		}
		pre[from+i] = &prefilled{g: g, row: i, real: real, delta: delta, presence: seen}
		g.pending += r.N
	}
	return nil
}

// givenTextInputs are the prefill inputs of batch b (requests from … to−1)
// with their image features taken from given.
func (e *Engine) givenTextInputs(b qwen2vl.Batch, given *ImageFeatures, from, to int) (*qwen2vl.TextBatch, []any, *tensors.Tensor, error) {
	tb, err := qwen2vl.PrepareText(e.m.Config, b.InputIDs, b.AttentionMask, b.Grids)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("engine: %w", err)
	}
	var feats *tensors.Tensor
	n := given.From[to] - given.From[from]
	if n > 0 {
		if feats, err = e.featureRows(given.T, given.From[from], n, prefillRows(b)(n+1)); err != nil {
			return nil, nil, nil, err
		}
	}
	args, err := e.textArgs(tb, feats, n)
	if err != nil {
		return nil, nil, nil, err
	}
	return tb, args, feats, nil
}

// prefillBatch returns the prefixes of reqs' prompts (all but each last
// token, which the first decode step feeds) and their prefill batch: rows
// left-padded to a length bucket, the row count padded to a batch bucket;
// the images' pixels are copied in when withPixels (else only their grids).
func prefillBatch(reqs []Request, withPixels bool) ([]Prompt, qwen2vl.Batch) {
	prefixes := make([]Prompt, 0, len(reqs))
	longest := 1
	for _, r := range reqs {
		p := Prompt{IDs: r.Prompt.IDs[:len(r.Prompt.IDs)-1], Images: r.Prompt.Images}
		if !withPixels {
			p.Images = make([]Image, len(r.Prompt.Images))
			for i, im := range r.Prompt.Images {
				p.Images[i].Grid = im.Grid
			}
		}
		prefixes = append(prefixes, p)
		longest = max(longest, len(p.IDs))
	}
	return prefixes, batchOf(prefixes, execution.Bucket(longest, 16, 1), execution.Bucket(len(prefixes), 1, 1))
}

// prefillRows gives the rows of a prefill batch's image features buffer:
// one per position of the batch and a trash row, whatever its images, so
// that the prefill program's shapes depend on the batch's rows and length
// only (not on how many image tokens it holds: one program fewer per
// distinct count bucket). The buffer is no larger than the prefill's own
// hidden states.
func prefillRows(b qwen2vl.Batch) func(int) int {
	return func(int) int { return len(b.InputIDs)*len(b.InputIDs[0]) + 1 }
}

// deviceColumns are the decode program's per-slot inputs (the ints and
// floats columns) and its results buffer, on the device between calls, with
// the host's copy of what the device holds.
//
// XLA re-records a CUDA graph whenever a buffer it uses moved, so a call
// whose inputs are new buffers re-records most of its graphs (several ms per
// 8-step call on an H200 host, with the device idle). So the program
// advances the ints itself (next token, write slot, position and draw
// number) into an output that takes the input's buffer (donated and
// aliased), the floats stay put, and the results are written into the
// previous call's results buffer. The host uploads new columns only when a
// slot changes (a sequence admitted, or a free slot that would run past its
// cache in the next call); a free slot otherwise keeps decoding unread
// tokens in its own row, which costs nothing more: the batch's shape is
// fixed.
type deviceColumns struct {
	ints, floats, results *tensors.Tensor
	intsHost              []int32   // what ints holds (nil: nothing on the device)
	floatsHost            []float32 // what floats holds
	uploads               int       // calls that uploaded new ints
}

// step runs one decode call (steps decode steps) for every slot and returns
// each slot's next tokens and their sampler and policy log-probs ([slot·steps
// + step]); the caches and presence are replaced by the call's outputs
// (their buffers donated). The per-slot columns and the results buffer stay
// on the device (deviceColumns): a call moves its results to the host, and
// columns up only when a slot changed.
func (g *generation) step() ([]int32, []float32, []float32, error) {
	n := len(g.slots)
	c := &g.cols
	ints, floats := make([]int32, n*decodeInts), make([]float32, n*decodeFloats)
	for s, sl := range g.slots {
		row := ints[s*decodeInts : (s+1)*decodeInts]
		f := floats[s*decodeFloats : (s+1)*decodeFloats]
		if !sl.active && c.intsHost != nil && int(c.intsHost[s*decodeInts+colWrite])+g.steps <= g.capacity {
			// A free slot keeps running in its own cache row (unread).
			copy(row, c.intsHost[s*decodeInts:(s+1)*decodeInts])
			copy(f, c.floatsHost[s*decodeFloats:(s+1)*decodeFloats])
			continue
		}
		sp := sample.Plain()
		if g.shared {
			// The group's start, for every slot of the group (finished ones too).
			row[colStart] = g.groupStart[s/g.n]
		}
		if sl.active {
			sp = g.reqs[sl.req].Sampling.settings()
			row[colID], row[colWrite] = sl.cur, int32(sl.write)
			if !g.shared {
				row[colStart] = int32(sl.start)
			}
			row[colPos] = int32(int64(sl.real) + sl.delta)
			row[colDrawn] = int32(len(sl.comp.IDs))
			row[colKeyA], row[colKeyB] = sl.key[0], sl.key[1]
		}
		row[colTopK] = int32(sp.TopK)
		f[colTemp], f[colTopP], f[colMinP], f[colPenalty] = sp.Temperature, sp.TopP, sp.MinP, sp.RepetitionPenalty
	}
	if c.intsHost == nil || !slices.Equal(ints, c.intsHost) {
		if c.ints != nil {
			c.ints.FinalizeAll()
		}
		c.ints, c.intsHost = tensors.FromFlatDataAndDimensions(ints, n, decodeInts), ints
		c.uploads++
	}
	if c.floatsHost == nil || !slices.Equal(floats, c.floatsHost) {
		if c.floats != nil {
			c.floats.FinalizeAll()
		}
		c.floats, c.floatsHost = tensors.FromFlatDataAndDimensions(floats, n, decodeFloats), floats
	}
	if c.results == nil {
		c.results = tensors.FromShape(shapes.Make(dtypes.Float32, n, g.steps, 3))
	}
	outs, err := g.e.models.callBound(g.e.progs.decode, g.bind, g.decodeSettings(), g.decodeArgs()...)
	// The donated inputs are gone, whatever happened.
	c.ints, c.results = nil, nil
	if err != nil {
		c.intsHost = nil
		return nil, nil, nil, fmt.Errorf("engine: decode step: %w", err)
	}
	c.results, c.ints, g.presence = outs[0], outs[1], outs[2]
	copy(g.caches, outs[3:])
	res, err := tensors.CopyFlatData[float32](c.results)
	if err != nil {
		return nil, nil, nil, err
	}
	m := n * g.steps
	next, lpS, lpP := make([]int32, m), make([]float32, m), make([]float32, m)
	for i := range m {
		next[i], lpS[i], lpP[i] = int32(res[3*i]), res[3*i+1], res[3*i+2]
	}
	c.intsHost = advanceColumns(c.intsHost, next, g.steps)
	return next, lpS, lpP, nil
}

// advanceColumns returns the ints columns after a decode call of steps steps
// that drew next ([slot·steps + step]), as the program advances them: the
// last token drawn is fed next, and the write slot, position and draw number
// move steps on.
func advanceColumns(ints, next []int32, steps int) []int32 {
	out := slices.Clone(ints)
	for s := range len(out) / decodeInts {
		row := out[s*decodeInts : (s+1)*decodeInts]
		row[colID] = next[s*steps+steps-1]
		row[colWrite] += int32(steps)
		row[colPos] += int32(steps)
		row[colDrawn] += int32(steps)
	}
	return out
}

// decodeArgs are the decode program's inputs after the weights: the per-slot
// columns (ints donated), the results buffer (donated), then the device
// state (presence, shared prefix, caches; the presence and caches donated).
func (g *generation) decodeArgs() []any {
	args := []any{execution.Donate(g.cols.ints), g.cols.floats, execution.Donate(g.cols.results), execution.Donate(g.presence)}
	for _, c := range g.prefix {
		args = append(args, c)
	}
	for _, c := range g.caches {
		args = append(args, execution.Donate(c))
	}
	return args
}

// decodeSettings are the decode program's static settings for this call's
// requests: only the sampling stages some request uses are in the graph.
func (g *generation) decodeSettings() decodeSettings {
	set := decodeSettings{layers: g.layers, steps: g.steps, bf16Logits: g.e.opts.DTypeLogits, shared: g.shared}
	for _, r := range g.reqs {
		st := r.Sampling.settings()
		set.topK = set.topK || st.TopK > 0
		set.topP = set.topP || st.TopP < 1
		set.minP = set.minP || st.MinP > 0
		set.penalty = set.penalty || st.RepetitionPenalty != 1
	}
	return set
}

// zerosProgram makes n caches [slots, kvh, capacity, d] and a presence mask
// [slots, vocab] (false) on the device (its one input, a scalar, only
// anchors the graph).
func zerosProgram() *execution.Program {
	return execution.NewProgram("engine.zeros", func(variant any, in []*Node) []*Node {
		z := variant.(zeroSpec)
		g := in[0].Graph()
		out := make([]*Node, 0, z.n+1)
		for range z.n {
			out = append(out, Zeros(g, shapes.Make(z.dt, z.slots, z.kvh, z.capacity, z.d)))
		}
		return append(out, Zeros(g, shapes.Make(dtypes.Bool, z.slots, z.vocab)))
	})
}
