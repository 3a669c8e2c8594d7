package engine

import (
	"fmt"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/engine/sample"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/qwen2vl"
)

// modelVariant is the variant of a program over the model's weights: the
// adapter layout it was built for and the program's own static settings.
type modelVariant struct {
	layout string
	extra  any
}

// modelBuilder builds a program's outputs from the model's weights, its
// static settings and its own inputs.
type modelBuilder func(w *qwen2vl.Weights, extra any, in []*Node) []*Node

// models runs programs over one model's weights (and an adapter): each
// program's first inputs are a qwen2vl.Binding's tensors.
type models struct {
	m   *qwen2vl.Model
	run *execution.Runner

	mu       sync.Mutex
	bindings map[string]*qwen2vl.Binding // one binding per adapter layout, for building graphs
}

// program defines a program over the model's weights.
func (ms *models) program(name string, build modelBuilder) *execution.Program {
	return execution.NewProgram(name, func(variant any, nodes []*Node) []*Node {
		v := variant.(modelVariant)
		ms.mu.Lock()
		b := ms.bindings[v.layout]
		ms.mu.Unlock()
		w, rest := b.Weights(nodes)
		return build(w, v.extra, rest)
	})
}

// call runs prog over the model bound with l (nil = base weights) and args.
func (ms *models) call(prog *execution.Program, l *qwen2vl.LoRA, extra any, args ...any) ([]*tensors.Tensor, error) {
	b, err := ms.m.Bind(l)
	if err != nil {
		return nil, err
	}
	return ms.callBound(prog, b, extra, args...)
}

// callBound runs prog over a binding made once (e.g. for every step of a
// Generate call) and args.
func (ms *models) callBound(prog *execution.Program, b *qwen2vl.Binding, extra any, args ...any) ([]*tensors.Tensor, error) {
	variant, all := ms.boundArgs(b, extra, args)
	return ms.run.Run(prog, variant, all...)
}

// compileBound compiles prog over binding b for the shapes of args (see
// execution.Runner.Compile) without running it.
func (ms *models) compileBound(prog *execution.Program, b *qwen2vl.Binding, extra any, args ...any) error {
	variant, all := ms.boundArgs(b, extra, args)
	return ms.run.Compile(prog, variant, all...)
}

// boundArgs registers binding b (the programs' builders look it up by its
// layout) and returns the variant and the arguments of a call over it: the
// bound weights, then args.
func (ms *models) boundArgs(b *qwen2vl.Binding, extra any, args []any) (modelVariant, []any) {
	ms.mu.Lock()
	if _, ok := ms.bindings[b.Layout()]; !ok {
		ms.bindings[b.Layout()] = b
	}
	ms.mu.Unlock()
	all := make([]any, 0, b.NumInputs()+len(args))
	for _, t := range b.Tensors() {
		all = append(all, t)
	}
	return modelVariant{layout: b.Layout(), extra: extra}, append(all, args...)
}

// programs are the engine's compiled computations.
type programs struct {
	vision, place, rows, logits, tokenLogProbs, prefill, admit, admitGroup, decode, zeros *execution.Program
}

// definePrograms defines the engine's programs over ms.
func definePrograms(ms *models, canUpdateSlice bool) programs {
	p := programs{zeros: zerosProgram()}
	// vision: patches [F, P, pd], cos, sin [F, P, d], valid [F, P] → the
	// frames' merged patches [F·P/m², hidden] (float32). Its shapes depend
	// on the image bucket only, so the expensive program compiles once per
	// (frames, patches) bucket.
	p.vision = ms.program("engine.vision", func(w *qwen2vl.Weights, _ any, in []*Node) []*Node {
		merged := w.VisionFrames(in[0], in[1], in[2], in[3])
		return []*Node{Reshape(merged, -1, merged.Shape().Dimensions[2])}
	})
	// place: features [R, hidden] (donated), rows [N, hidden], dest [N] →
	// features with each row added at its destination (a cheap program).
	p.place = execution.NewProgram("engine.place", func(_ any, in []*Node) []*Node {
		return []*Node{ScatterSum(in[0], InsertAxes(in[2], -1), in[1], false, false)}
	})
	// rows: features [R, hidden], index [N] → features [N, hidden] (rows
	// picked by index: a cheap program).
	p.rows = execution.NewProgram("engine.rows", func(_ any, in []*Node) []*Node {
		return []*Node{Gather(in[0], InsertAxes(in[1], -1))}
	})
	// logits: text inputs → float32 logits [B, L, V].
	p.logits = ms.program("engine.logits", func(w *qwen2vl.Weights, _ any, in []*Node) []*Node {
		ti, _ := qwen2vl.ReadTextInputs(in)
		h, _ := w.Decoder(w.Prompt(ti))
		return []*Node{w.Logits(h)}
	})
	// tokenLogProbs: text inputs, targets [B, T] → [B, T] (extra: vocab chunk).
	p.tokenLogProbs = ms.program("engine.logprobs", func(w *qwen2vl.Weights, extra any, in []*Node) []*Node {
		ti, rest := qwen2vl.ReadTextInputs(in)
		return []*Node{w.TokenLogProbs(ti, rest[0], extra.(int))}
	})
	// prefill: text inputs → per layer K, V [B, KVH, L, D] (the cache
	// layout: admission places them without a transpose).
	p.prefill = ms.program("engine.prefill", func(w *qwen2vl.Weights, _ any, in []*Node) []*Node {
		ti, _ := qwen2vl.ReadTextInputs(in)
		_, kv := w.Decoder(w.Prompt(ti))
		return flattenKV(kv)
	})
	// admit: caches (2·layers, donated) [S, KVH, C, D], presence [S, V]
	// (donated), a prefill group's prompt K/V (2·layers) [P, KVH, L, D] and
	// presence rows [P, V], src [S] int32, on [S] bool → caches whose rows s
	// with on[s] are prompt row src[s] followed by zeros, presence likewise
	// (the other rows unchanged). One call admits any number of slots.
	p.admit = execution.NewProgram("engine.admit", func(variant any, in []*Node) []*Node {
		n := variant.(int) // 2·layers
		caches, presence, prompts := in[:n], in[n], in[n+1:2*n+1]
		rows, src, on := in[2*n+1], in[2*n+2], in[2*n+3]
		idx := InsertAxes(src, -1)
		out := make([]*Node, 0, n+1)
		for i, c := range caches {
			cd := c.Shape().Dimensions
			pr := Gather(prompts[i], idx) // [S, KVH, L, D]
			if l := pr.Shape().Dimensions[2]; l < cd[2] {
				pr = Concatenate([]*Node{pr, Zeros(c.Graph(), shapes.Make(c.DType(), cd[0], cd[1], cd[2]-l, cd[3]))}, 2)
			}
			out = append(out, Where(BroadcastToDims(Reshape(on, cd[0], 1, 1, 1), cd...), pr, c))
		}
		pd := presence.Shape().Dimensions
		return append(out, Where(BroadcastToDims(InsertAxes(on, -1), pd...), Gather(rows, idx), presence))
	})
	// admitGroup: prefix (2·layers, donated) [G, KVH, P, D], own caches
	// (2·layers, donated) [S, KVH, C, D], presence (donated) [S, V], prompt
	// K/V (2·layers) [B, KVH, L, D], src, group int32 scalars, prompt
	// presence [V] → prefix row group = the prompt row src right-aligned
	// (zeros before it), the group's n own rows zeroed, its presence rows set.
	p.admitGroup = execution.NewProgram("engine.admit_group", func(variant any, in []*Node) []*Node {
		spec := variant.(admitGroupSpec)
		n := 2 * spec.layers
		prefix, own, presence, prompts := in[:n], in[n:2*n], in[2*n], in[2*n+1:3*n+1]
		src, group, row := in[3*n+1], in[3*n+2], in[3*n+3]
		first := MulScalar(group, float64(spec.n))
		out := make([]*Node, 0, 2*n+1)
		for i, c := range prefix {
			cd := c.Shape().Dimensions
			pr := Gather(prompts[i], Reshape(src, 1, 1)) // [1, KVH, L, D]
			if l := pr.Shape().Dimensions[2]; l < cd[2] {
				pr = Concatenate([]*Node{Zeros(c.Graph(), shapes.Make(c.DType(), 1, cd[1], cd[2]-l, cd[3])), pr}, 2)
			}
			out = append(out, putRow(c, pr, group, canUpdateSlice))
		}
		for _, c := range own {
			cd := c.Shape().Dimensions
			out = append(out, putRow(c, Zeros(c.Graph(), shapes.Make(c.DType(), spec.n, cd[1], cd[2], cd[3])), first, canUpdateSlice))
		}
		v := presence.Shape().Dimensions[1]
		return append(out, putRow(presence, BroadcastToDims(InsertAxes(row, 0), spec.n, v), first, canUpdateSlice))
	})
	// decode: see decodeStep.
	p.decode = ms.program("engine.decode", func(w *qwen2vl.Weights, extra any, in []*Node) []*Node {
		return decodeStep(w, extra.(decodeSettings), in)
	})
	return p
}

// admitGroupSpec is the admitGroup program's variant: layers and group size.
type admitGroupSpec struct{ layers, n int }

// putRow replaces rows dst … dst+R−1 (dst an int32 scalar) of x [S, ...]
// with rows [R, ...]: a DynamicUpdateSlice where the backend has one (cost
// of the rows), else a masked select over x.
func putRow(x, row, dst *Node, canUpdateSlice bool) *Node {
	if canUpdateSlice {
		starts := []*Node{dst}
		for range x.Rank() - 1 {
			starts = append(starts, ScalarZero(x.Graph(), dtypes.Int32))
		}
		return DynamicUpdateSlice(x, row, starts)
	}
	dims := x.Shape().Dimensions
	r := row.Shape().Dimensions[0]
	at := Iota(x.Graph(), shapes.Make(dtypes.Int32, dims...), 0)
	mask := LogicalAnd(GreaterOrEqual(at, dst), LessThan(at, AddScalar(dst, float64(r))))
	if r == 1 {
		return Where(mask, BroadcastToDims(row, dims...), x)
	}
	// Row i of x takes row i − dst of the update: gather it (clamped).
	idx := ClipScalar(Sub(Iota(x.Graph(), shapes.Make(dtypes.Int32, dims[0]), 0), dst), 0, float64(r-1))
	return Where(mask, Gather(row, InsertAxes(idx, -1)), x)
}

// decodeSettings are the decode program's static settings: the layers, the
// steps unrolled in one call, and which sampling stages any row uses (the
// others stay out of the graph).
type decodeSettings struct {
	layers, steps             int
	topK, topP, minP, penalty bool
	bf16Logits                bool // logits as a product in the model dtype
	shared                    bool // slots grouped by prompt (Options.SharedPrefix)
}

// The decode program's per-slot inputs travel in two tensors (two host
// transfers per call instead of one per column): ints [S, decodeInts] int32
// and floats [S, decodeFloats] float32, with these columns.
const (
	colID    = iota // the token fed at the first step
	colWrite        // its cache slot
	colStart        // the first valid cache slot (SharedPrefix: the group's first valid prefix slot)
	colPos          // its M-RoPE position
	colTopK         // top-k
	colDrawn        // tokens the sequence drew before this call (its draw number)
	colKeyA         // the sequence's stream key (sample.StreamKey)
	colKeyB
	decodeInts
)

const (
	colTemp = iota
	colTopP
	colMinP
	colPenalty
	decodeFloats
)

// decodeStep runs settings.steps decode steps for every slot in one call:
// inputs ints [S, decodeInts] and floats [S, decodeFloats] (the columns
// above; the first step's), the previous call's results [S, steps, 3] (not
// read: its buffer takes this call's results), presence [S, V] bool, the
// shared prefix (with SharedPrefix) and the caches (K, V per layer). Each
// step feeds the previous step's tokens, one position, one cache slot and
// one draw number further; each row draws from its own stream
// (sample.KeyedUniform), so its tokens do not depend on the slot, batch or
// steps per call. Outputs: [S, steps, 3] float32 holding each step's id
// (exact in float32), sampler log-prob and policy (temperature 1) log-prob —
// one transfer to the host —, the ints advanced for the next call (the last
// id fed next; write slot, position and draw number steps on: see
// advanceColumns), then presence and the caches.
func decodeStep(w *qwen2vl.Weights, s decodeSettings, in []*Node) []*Node {
	ints, floats, presence := in[0], in[1], in[3]
	col := func(x *Node, j int) *Node {
		return Reshape(SliceAxis(x, 1, AxisElem(j)), x.Shape().Dimensions[0])
	}
	slots := ints.Shape().Dimensions[0]
	ids, write, start, pos, drawn := col(ints, colID), col(ints, colWrite), col(ints, colStart), col(ints, colPos), col(ints, colDrawn)
	keyA, keyB := col(ints, colKeyA), col(ints, colKeyB)
	positions := BroadcastToDims(Reshape(pos, 1, slots, 1), 3, slots, 1)
	params := sample.Params{Temperature: col(floats, colTemp)}
	if s.topP {
		params.TopP = col(floats, colTopP)
	}
	if s.minP {
		params.MinP = col(floats, colMinP)
	}
	if s.penalty {
		params.RepetitionPenalty = col(floats, colPenalty)
	}
	if s.topK {
		params.TopK = col(ints, colTopK)
	}
	var prefix []qwen2vl.KV
	rest := in[4:]
	if s.shared {
		prefix = make([]qwen2vl.KV, s.layers)
		for i := range prefix {
			prefix[i] = qwen2vl.KV{K: rest[2*i], V: rest[2*i+1]}
		}
		rest = rest[2*s.layers:]
		// Every slot of a group holds the group's start: keep one per group.
		groups := prefix[0].K.Shape().Dimensions[0]
		start = Reshape(SliceAxis(Reshape(start, groups, slots/groups), 1, AxisElem(0)), groups)
	}
	cache := make([]qwen2vl.KV, s.layers)
	for i := range cache {
		cache[i] = qwen2vl.KV{K: rest[2*i], V: rest[2*i+1]}
	}
	vocab := w.Config.Text.VocabSize
	var out []*Node
	for k := range s.steps {
		var h *Node
		if s.shared {
			h, cache = w.DecodeStepShared(ids, AddScalar(positions, float64(k)), AddScalar(write, float64(k)), start, prefix, cache)
		} else {
			h, cache = w.DecodeStep(ids, AddScalar(positions, float64(k)), AddScalar(write, float64(k)), start, cache)
		}
		presence = sample.Mark(presence, ids)
		logits := w.Logits(h)
		if s.bf16Logits {
			logits = w.LogitsInDType(h)
		}
		u := sample.KeyedUniform(keyA, keyB, AddScalar(drawn, float64(k)), vocab)
		next, lpSampler, lpPolicy := sampleTokens(logits, params, presence, u)
		ids = next
		out = append(out, Stack([]*Node{ConvertDType(next, dtypes.Float32), lpSampler, lpPolicy}, -1)) // [S, 3]
	}
	return append([]*Node{Stack(out, 1), advanceInts(ints, ids, s.steps), presence}, flattenKV(cache)...)
}

// advanceInts is ints [S, decodeInts] after a call of steps steps whose last
// tokens are last [S]: colID takes them, colWrite, colPos and colDrawn move
// steps on, the other columns stay (the host's mirror: advanceColumns).
func advanceInts(ints, last *Node, steps int) *Node {
	g := ints.Graph()
	dims := ints.Shape().Dimensions
	step := make([]int32, decodeInts)
	step[colWrite], step[colPos], step[colDrawn] = int32(steps), int32(steps), int32(steps)
	moved := Add(ints, Reshape(Const(g, step), 1, decodeInts))
	isID := Equal(Iota(g, shapes.Make(dtypes.Int32, dims...), 1), Scalar(g, dtypes.Int32, colID))
	return Where(isID, BroadcastToDims(Reshape(ConvertDType(last, dtypes.Int32), dims[0], 1), dims...), moved)
}

// flattenKV lists per-layer K and V nodes in order.
func flattenKV(kv []qwen2vl.KV) []*Node {
	out := make([]*Node, 0, 2*len(kv))
	for _, p := range kv {
		out = append(out, p.K, p.V)
	}
	return out
}

// canUpdateSlice reports whether the backend runs DynamicUpdateSlice.
func canUpdateSlice(b backends.Backend) bool {
	return b.Capabilities().Operations[backends.OpTypeDynamicUpdateSlice]
}

// DeviceImageFeatures runs the images of a batch (the processor's patches
// of every image in order, and their grids) through the vision tower once,
// padded to shape buckets, into one features tensor [rows, hidden] (float32,
// on the device) whose first tokens rows are the merged patches of every
// image in order; the rest is padding. Pass it to qwen2vl.TextBatch.Tensors
// (extra rows are never read): the trainer computes each image's features
// once per step this way and reuses them for the policy and the reference.
func (e *Engine) DeviceImageFeatures(pixels []float32, grids []qwen2vl.Grid) (*tensors.Tensor, int, error) {
	return e.deviceImageFeatures(pixels, grids, rowBucket)
}

// deviceImageFeatures is DeviceImageFeatures with the features buffer's
// rows for n merged patches (plus the trash row) given by rows.
func (e *Engine) deviceImageFeatures(pixels []float32, grids []qwen2vl.Grid, rows func(n int) int) (*tensors.Tensor, int, error) {
	images, err := qwen2vl.SplitPixels(e.m.Config.Vision, pixels, grids)
	if err != nil {
		return nil, 0, fmt.Errorf("engine: %w", err)
	}
	return e.imageFeatures(images, grids, rows)
}

// imageFeatures is deviceImageFeatures over each image's patches.
func (e *Engine) imageFeatures(images [][]float32, grids []qwen2vl.Grid, rows func(n int) int) (*tensors.Tensor, int, error) {
	cfg := e.m.Config
	plan, err := qwen2vl.PlanImagesWith(&e.pixels, cfg.Vision, images, grids, e.patchBucket, frameBucket, rows)
	if err != nil {
		return nil, 0, fmt.Errorf("engine: %w", err)
	}
	defer plan.Release(&e.pixels) // Upload copies: the buffers are free once the calls' inputs are up
	feats, err := e.run.Zeros(shapes.Make(dtypes.Float32, plan.Rows, cfg.Text.HiddenSize))
	if err != nil {
		return nil, 0, fmt.Errorf("engine: image features: %w", err)
	}
	pd, d := cfg.Vision.PatchDim(), cfg.Vision.HeadDim()
	for _, c := range plan.Calls {
		// The plan's slices go to the device without a host tensor's copy.
		var in [5]*tensors.Tensor
		for k, x := range []struct {
			flat any
			dims []int
		}{{c.Pixels, []int{c.Frames, c.Patches, pd}}, {c.Cos, []int{c.Frames, c.Patches, d}}, {c.Sin, []int{c.Frames, c.Patches, d}},
			{c.Valid, []int{c.Frames, c.Patches}}, {c.Dest, []int{len(c.Dest)}}} {
			if in[k], err = e.run.Upload(x.flat, x.dims...); err != nil {
				return nil, 0, fmt.Errorf("engine: vision tower inputs: %w", err)
			}
		}
		rows, err := e.models.call(e.progs.vision, nil, nil, in[0], in[1], in[2], in[3])
		for _, x := range in[:4] {
			x.FinalizeAll()
		}
		if err != nil {
			in[4].FinalizeAll()
			return nil, 0, fmt.Errorf("engine: vision tower: %w", err)
		}
		outs, err := e.run.Run(e.progs.place, nil, execution.Donate(feats), rows[0], in[4])
		in[4].FinalizeAll()
		rows[0].FinalizeAll()
		if err != nil {
			return nil, 0, fmt.Errorf("engine: placing image features: %w", err)
		}
		feats = outs[0]
	}
	return feats, plan.Tokens, nil
}

// ImageFeatures are prompts' image features on the device, as
// PromptFeatures returns them: rows From[i] … From[i+1]−1 of T are prompt
// i's.
type ImageFeatures struct {
	T    *tensors.Tensor
	From []int
}

// PromptFeatures runs the images of prompts (each prompt's in order)
// through the vision tower once, as DeviceImageFeatures does, and returns
// the features on the device with each prompt's first row (nil when no
// prompt has an image). A trainer whose batch is cut into micro-batches of
// consecutive prompts computes the features of the whole batch this way, in
// full vision calls, and takes each micro-batch's rows with FeatureRows; a
// rollout takes them with GenerateWithFeatures.
func (e *Engine) PromptFeatures(prompts []Prompt) (*ImageFeatures, error) {
	win := e.m.Config.Vision.SpatialMergeSize * e.m.Config.Vision.SpatialMergeSize
	var images [][]float32 // the prompts' own pixels, not copied
	var grids []qwen2vl.Grid
	from := make([]int, len(prompts)+1)
	for i, p := range prompts {
		from[i+1] = from[i]
		for _, im := range p.Images {
			images = append(images, im.Pixels)
			grids = append(grids, im.Grid)
			from[i+1] += im.Grid.T * im.Grid.H * im.Grid.W / win
		}
	}
	if len(grids) == 0 {
		return nil, nil
	}
	feats, _, err := e.imageFeatures(images, grids, rowBucket)
	if err != nil {
		return nil, err
	}
	return &ImageFeatures{T: feats, From: from}, nil
}

// FeatureRows returns rows from … from+n−1 of features (from
// PromptFeatures) as a features tensor of their own, laid out as
// DeviceImageFeatures lays out n rows (padding rows after them).
func (e *Engine) FeatureRows(feats *tensors.Tensor, from, n int) (*tensors.Tensor, error) {
	return e.featureRows(feats, from, n, rowBucket(n+1))
}

// featureRows is FeatureRows into a tensor of rows rows (≥ n).
func (e *Engine) featureRows(feats *tensors.Tensor, from, n, rows int) (*tensors.Tensor, error) {
	total := feats.Shape().Dimensions[0]
	if from < 0 || n < 0 || from+n > total || rows < n {
		return nil, fmt.Errorf("engine: feature rows %d…%d of %d (into %d)", from, from+n-1, total, rows)
	}
	idx := make([]int32, rows)
	for i := range idx {
		idx[i] = int32(from + min(i, max(n-1, 0)))
	}
	outs, err := e.run.Run(e.progs.rows, nil, feats, tensors.FromFlatDataAndDimensions(idx, len(idx)))
	if err != nil {
		return nil, fmt.Errorf("engine: selecting image feature rows: %w", err)
	}
	return outs[0], nil
}

// The vision tower's shape buckets: patches per frame (a multiple of the
// merge window), frames per call, and rows of the features buffer.
func (e *Engine) patchBucket(n int) int {
	m := e.m.Config.Vision.SpatialMergeSize
	return execution.Bucket(n, 64, m*m)
}
func rowBucket(n int) int { return execution.Bucket(n, 64, 1) }

// frameBucket is the frames per vision call for n frames of one patch
// bucket: a lone frame runs alone, more run in calls of 4 (the last one
// padded). So each patch bucket compiles at most two vision programs,
// whatever the mix of image sizes in a batch: a compile costs far more than
// the padded frames' work (tens of seconds against milliseconds on a GPU).
func frameBucket(n int) int {
	if n <= 1 {
		return 1
	}
	return 4
}

// ImageFeatures runs images (the processor's patches of every image in
// order, and their grids) through the vision tower once and returns the
// merged features [tokens, hidden] (float32, on the host), as transformers'
// image_embeds.
func (e *Engine) ImageFeatures(pixels []float32, grids []qwen2vl.Grid) (*tensors.Tensor, error) {
	feats, n, err := e.DeviceImageFeatures(pixels, grids)
	if err != nil {
		return nil, err
	}
	return firstRows(feats, n)
}

// firstRows copies the first n rows of a float32 [R, H] tensor to the host.
func firstRows(t *tensors.Tensor, n int) (*tensors.Tensor, error) {
	flat, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, err
	}
	h := t.Shape().Dimensions[1]
	return tensors.FromFlatDataAndDimensions(flat[:n*h], n, h), nil
}

// textInputs prepares a batch's text inputs and runs its images through the
// vision tower (into a features buffer of rows(n) rows for n merged patches).
func (e *Engine) textInputs(in qwen2vl.Batch, rows func(n int) int) (*qwen2vl.TextBatch, []any, *tensors.Tensor, int, error) {
	tb, err := qwen2vl.PrepareText(e.m.Config, in.InputIDs, in.AttentionMask, in.Grids)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("engine: %w", err)
	}
	var feats *tensors.Tensor
	n := 0
	if len(in.Grids) > 0 {
		if feats, n, err = e.deviceImageFeatures(in.PixelValues, in.Grids, rows); err != nil {
			return nil, nil, nil, 0, err
		}
	} else if len(in.PixelValues) > 0 {
		return nil, nil, nil, 0, fmt.Errorf("engine: pixel_values without image grids")
	}
	args, err := e.textArgs(tb, feats, n)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	return tb, args, feats, n, nil
}

// textArgs are the text graph's inputs of tb with image features feats (n
// rows used; nil when tb has no images).
func (e *Engine) textArgs(tb *qwen2vl.TextBatch, feats *tensors.Tensor, n int) ([]any, error) {
	if n != tb.ImageTokens {
		return nil, fmt.Errorf("engine: the images give %d features but input_ids hold %d image tokens (id %d)", n, tb.ImageTokens, e.m.Config.ImageTokenID)
	}
	var args []any
	for _, t := range tb.Tensors(feats) {
		args = append(args, t)
	}
	return args, nil
}

// Forward runs the full model on a batch (adapter l, nil = base) and returns
// float32 logits for every position, the image features and the M-RoPE
// positions. Shapes are not bucketed (a parity and inspection tool).
func (e *Engine) Forward(in qwen2vl.Batch, l *qwen2vl.LoRA) (*qwen2vl.ForwardOutput, error) {
	tb, args, feats, n, err := e.textInputs(in, rowBucket)
	if err != nil {
		return nil, err
	}
	outs, err := e.models.call(e.progs.logits, l, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("engine: forward: %w", err)
	}
	out := &qwen2vl.ForwardOutput{Logits: outs[0], PositionIDs: tb.PositionIDs, RopeDeltas: tb.RopeDeltas}
	if feats != nil {
		if out.ImageEmbeds, err = firstRows(feats, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LogProbs returns log p(targets[b][t] | the tokens before position L−T+t)
// [B, T] float32 for a batch of full sequences (see qwen2vl.TokenLogProbs),
// with the vocabulary log-sum-exp in chunks of vocabChunk entries (0 = 8192).
func (e *Engine) LogProbs(in qwen2vl.Batch, targets [][]int32, l *qwen2vl.LoRA, vocabChunk int) (*tensors.Tensor, error) {
	tb, args, _, _, err := e.textInputs(in, rowBucket)
	if err != nil {
		return nil, err
	}
	if len(targets) != tb.B || len(targets[0]) == 0 || len(targets[0]) >= tb.L {
		return nil, fmt.Errorf("engine: targets must be [%d][T] with 0 < T < %d", tb.B, tb.L)
	}
	t := len(targets[0])
	flat := make([]int32, 0, tb.B*t)
	for i, row := range targets {
		if len(row) != t {
			return nil, fmt.Errorf("engine: targets row %d has %d entries, row 0 has %d", i, len(row), t)
		}
		for _, id := range row {
			if id < 0 || int(id) >= e.m.Config.Text.VocabSize {
				return nil, fmt.Errorf("engine: target id %d in row %d is outside the vocabulary", id, i)
			}
		}
		flat = append(flat, row...)
	}
	if vocabChunk <= 0 {
		vocabChunk = 8192
	}
	outs, err := e.models.call(e.progs.tokenLogProbs, l, vocabChunk, append(args, tensors.FromFlatDataAndDimensions(flat, tb.B, t))...)
	if err != nil {
		return nil, fmt.Errorf("engine: log-probs: %w", err)
	}
	return outs[0], nil
}

// Prefill runs a left-padded batch of prompts through the model (adapter l,
// nil = base) and returns each layer's keys and values [B, KVH, L, D] (K then
// V, layer by layer): the work a rollout does once per prompt. Shapes are
// not bucketed.
func (e *Engine) Prefill(in qwen2vl.Batch, l *qwen2vl.LoRA) ([]*tensors.Tensor, error) {
	_, args, feats, _, err := e.textInputs(in, rowBucket)
	if err != nil {
		return nil, err
	}
	kv, err := e.models.call(e.progs.prefill, l, nil, args...)
	if feats != nil {
		feats.FinalizeAll()
	}
	if err != nil {
		return nil, fmt.Errorf("engine: prefill: %w", err)
	}
	return kv, nil
}
