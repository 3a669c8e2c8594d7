package qwen2vl

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
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

// prepared holds the inputs of the text graph: small host-built index
// tensors and the image features, which stay on the device.
type prepared struct {
	b, l       int
	ids        *tensors.Tensor // [B, L] int32
	imgIdx     *tensors.Tensor // [B, L] int32 index into the image embeddings
	isImg      *tensors.Tensor // [B, L] bool
	imgEmb     *tensors.Tensor // [N, hidden] float32 (on the device)
	posIDs     *tensors.Tensor // [3, B, L] int32 M-RoPE positions
	valid      *tensors.Tensor // [B, L] bool: the position holds a token
	mask       [][]int32
	pos        [3][][]int64
	deltas     []int64
	imageEmbed *tensors.Tensor
}

// args lists the prompt inputs in the order promptInputs reads them.
func (p *prepared) args() []any {
	return []any{p.ids, p.imgIdx, p.isImg, p.imgEmb, p.posIDs, p.valid}
}

// numPromptInputs is the number of graph inputs promptInputs consumes.
const numPromptInputs = 6

// promptInputs builds the decoder input of a whole prompt (no cache) from the
// graph inputs of prepared.args: the embeddings, the M-RoPE tables (computed
// on the device from the positions) and the causal mask over valid tokens.
func (w *Weights) promptInputs(in []*Node) DecoderInput {
	h := w.embed(in[0], in[1], in[2], in[3])
	cos, sin := w.MRope(in[4])
	l := in[0].Shape().Dimensions[1]
	return DecoderInput{Hidden: h, Cos: cos, Sin: sin, Mask: causalMaskNode(in[5], Const(h.Graph(), int32(0)), l)}
}

// prepare validates a batch (and adapter) and builds the text graph's inputs:
// token ids, where the image features go, M-RoPE positions and the valid
// positions; the images run through the vision tower here.
func (m *Model) prepare(in Batch, lora *LoRA) (*prepared, error) {
	if err := lora.Validate(m.Config); err != nil {
		return nil, err
	}
	b := len(in.InputIDs)
	if b == 0 || len(in.InputIDs[0]) == 0 {
		return nil, fmt.Errorf("input_ids is empty")
	}
	l := len(in.InputIDs[0])
	mask := in.AttentionMask
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
		return nil, fmt.Errorf("attention_mask has %d rows, input_ids has %d", len(mask), b)
	}
	ids := make([]int32, 0, b*l)
	for i, row := range in.InputIDs {
		if len(row) != l {
			return nil, fmt.Errorf("input_ids row %d has %d tokens, row 0 has %d (pad the batch)", i, len(row), l)
		}
		for j, id := range row {
			if id < 0 || int(id) >= m.Config.Text.VocabSize {
				return nil, fmt.Errorf("input_ids[%d][%d] = %d is outside the vocabulary [0, %d)", i, j, id, m.Config.Text.VocabSize)
			}
		}
		ids = append(ids, row...)
	}
	p := &prepared{b: b, l: l, mask: mask}
	var err error
	p.pos, p.deltas, err = RopeIndex(m.Config, in.InputIDs, mask, in.Grids)
	if err != nil {
		return nil, err
	}
	// Image features replace the image tokens in order (row-major).
	nImg := 0
	idx := make([]int32, b*l)
	isImg := make([]bool, b*l)
	for k, id := range ids {
		if id == int32(m.Config.ImageTokenID) {
			idx[k], isImg[k] = int32(nImg), true
			nImg++
		}
	}
	hidden := m.Config.Text.HiddenSize
	if len(in.Grids) > 0 {
		p.imageEmbed, err = m.ImageEmbeds(in.PixelValues, in.Grids)
		if err != nil {
			return nil, err
		}
		if n := p.imageEmbed.Shape().Dimensions[0]; n != nImg {
			return nil, fmt.Errorf("the images give %d features but input_ids hold %d image tokens (%d)", n, nImg, m.Config.ImageTokenID)
		}
		p.imgEmb = p.imageEmbed
	} else {
		if nImg > 0 {
			return nil, fmt.Errorf("input_ids hold %d image tokens but no images were given", nImg)
		}
		p.imgEmb = tensors.FromShape(shapes.Make(dtypes.Float32, 1, hidden))
	}
	p.ids = tensors.FromFlatDataAndDimensions(ids, b, l)
	p.imgIdx = tensors.FromFlatDataAndDimensions(idx, b, l)
	p.isImg = tensors.FromFlatDataAndDimensions(isImg, b, l)
	p.posIDs = positionsTensor(p.pos)
	valid := make([]bool, 0, b*l)
	for _, row := range mask {
		for _, v := range row {
			valid = append(valid, v != 0)
		}
	}
	p.valid = tensors.FromFlatDataAndDimensions(valid, b, l)
	return p, nil
}

// positionsTensor packs M-RoPE positions [3][B][S] into an int32 tensor.
func positionsTensor(pos [3][][]int64) *tensors.Tensor {
	b, s := len(pos[0]), len(pos[0][0])
	flat := make([]int32, 0, 3*b*s)
	for a := range 3 {
		for _, row := range pos[a] {
			for _, v := range row {
				flat = append(flat, int32(v))
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(flat, 3, b, s)
}

// causalMaskNode returns [B, S, C] bool: query s (at cache slot start+s) may
// attend to slot c when c ≤ start+s and valid[b, c] ([B, C] bool) holds; start
// is an int32 scalar node.
func causalMaskNode(valid, start *Node, s int) *Node {
	g := valid.Graph()
	b, c := valid.Shape().Dimensions[0], valid.Shape().Dimensions[1]
	q := Add(Iota(g, shapes.Make(dtypes.Int32, s, c), 0), start)
	k := Iota(g, shapes.Make(dtypes.Int32, s, c), 1)
	causal := BroadcastToDims(InsertAxes(LessOrEqual(k, q), 0), b, s, c)
	return LogicalAnd(causal, BroadcastToDims(InsertAxes(valid, 1), b, s, c))
}

// embed builds the input embeddings (float32): token embeddings with the
// image tokens replaced by the image features in order.
func (w *Weights) embed(ids, imgIdx, isImg, imgEmb *Node) *Node {
	tok := w.embedTokens(ids)
	img := Gather(ConvertDType(imgEmb, dtypes.Float32), InsertAxes(imgIdx, -1))
	return Where(isImg, img, tok)
}

// embedTokens looks up token embeddings [..., hidden] (float32) for int ids.
func (w *Weights) embedTokens(ids *Node) *Node {
	return ConvertDType(Gather(w.param("model.embed_tokens.weight"), InsertAxes(ids, -1)), dtypes.Float32)
}

// ImageEmbeds runs the vision tower and merger over the images of a batch:
// pixels are the processor's flattened patches of every image in order. It
// returns the merged features [Σ T·H·W/m², hidden] in float32.
// Images sharing a grid run together; attention stays within each frame.
func (m *Model) ImageEmbeds(pixels []float32, grids []Grid) (*tensors.Tensor, error) {
	vc := m.Config.Vision
	pd := vc.PatchDim()
	win := vc.SpatialMergeSize * vc.SpatialMergeSize
	total := 0
	for i, g := range grids {
		if g.T <= 0 || g.H <= 0 || g.W <= 0 || g.H%vc.SpatialMergeSize != 0 || g.W%vc.SpatialMergeSize != 0 {
			return nil, fmt.Errorf("image %d has grid %v: each of t, h, w must be positive and h, w multiples of %d", i, g, vc.SpatialMergeSize)
		}
		total += g.T * g.H * g.W
	}
	if len(pixels) != total*pd {
		return nil, fmt.Errorf("pixel_values has %d values; image_grid_thw needs %d patches × %d = %d", len(pixels), total, pd, total*pd)
	}
	type group struct {
		h, w    int
		frames  []int // first patch row of each frame
		outRows []int // first output row of each frame
	}
	groups := map[[2]int]*group{}
	row := 0
	for _, g := range grids {
		key := [2]int{g.H, g.W}
		gr := groups[key]
		if gr == nil {
			gr = &group{h: g.H, w: g.W}
			groups[key] = gr
		}
		for range g.T {
			gr.frames = append(gr.frames, row)
			gr.outRows = append(gr.outRows, row/win)
			row += g.H * g.W
		}
	}
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	// Each group's features stay on the device; a small graph puts the rows
	// of all groups back in image order (perm[row] = row of the concatenation).
	var parts []any
	perm := make([]int32, total/win)
	base := 0
	for _, key := range keys {
		gr := groups[key]
		p := gr.h * gr.w
		// The group's frames go to the device straight from the caller's
		// pixels when they lie contiguously (e.g. all images of one size);
		// otherwise they are gathered into one buffer first.
		first := gr.frames[0]
		src := pixels[first*pd : (first+len(gr.frames)*p)*pd]
		for f, start := range gr.frames {
			if start != first+f*p {
				src = make([]float32, 0, len(gr.frames)*p*pd)
				for _, start := range gr.frames {
					src = append(src, pixels[start*pd:(start+p)*pd]...)
				}
				break
			}
		}
		patches, err := m.upload(src, len(gr.frames), p, pd)
		if err != nil {
			return nil, err
		}
		cos, sin := m.visionRope(gr.h, gr.w)
		outs, err := m.run("vision", nil, func(w *Weights, in []*Node) []*Node {
			return []*Node{w.VisionFrames(in[0], in[1], in[2])}
		}, patches, cos, sin)
		if err != nil {
			return nil, err
		}
		parts = append(parts, outs[0])
		for f, o := range gr.outRows {
			for r := range p / win {
				perm[o+r] = int32(base + f*(p/win) + r)
			}
		}
		base += len(gr.frames) * (p / win)
	}
	parts = append(parts, tensors.FromFlatDataAndDimensions(perm, len(perm)))
	outs, err := m.runPlain("images", func(in []*Node) []*Node {
		hidden := m.Config.Text.HiddenSize
		flat := make([]*Node, len(in)-1)
		for i, x := range in[:len(in)-1] {
			flat[i] = Reshape(x, -1, hidden)
		}
		all := flat[0]
		if len(flat) > 1 {
			all = Concatenate(flat, 0)
		}
		return []*Node{Gather(all, InsertAxes(in[len(in)-1], -1))}
	}, parts...)
	for _, t := range parts[:len(parts)-1] {
		t.(*tensors.Tensor).FinalizeAll()
	}
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// upload places float32 host data on the model's device without an
// intermediate host tensor.
func (m *Model) upload(flat []float32, dims ...int) (*tensors.Tensor, error) {
	buf, err := m.Backend.BufferFromFlatData(0, flat, shapes.Make(dtypes.Float32, dims...))
	if err != nil {
		return nil, fmt.Errorf("uploading %v float32: %w", dims, err)
	}
	return tensors.FromBuffer(m.Backend, buf)
}

// visionRope returns the vision rotary tables [P, head_dim] of an h×w grid,
// computed once per grid and kept (on the device after their first use).
func (m *Model) visionRope(h, w int) (cos, sin *tensors.Tensor) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]int{h, w}
	if t, ok := m.visionRopes[key]; ok {
		return t[0], t[1]
	}
	c, s := visionRopeTables(m.Config.Vision, h, w)
	d := m.Config.Vision.HeadDim()
	t := [2]*tensors.Tensor{tensors.FromFlatDataAndDimensions(c, h*w, d), tensors.FromFlatDataAndDimensions(s, h*w, d)}
	if m.visionRopes == nil {
		m.visionRopes = map[[2]int][2]*tensors.Tensor{}
	}
	m.visionRopes[key] = t
	return t[0], t[1]
}

// Forward runs the full model on a batch and returns float32 logits for
// every position, the image features and the M-RoPE positions.
func (m *Model) Forward(in Batch, lora *LoRA) (*ForwardOutput, error) {
	p, err := m.prepare(in, lora)
	if err != nil {
		return nil, err
	}
	outs, err := m.run("logits", lora, func(w *Weights, in []*Node) []*Node {
		h, _ := w.Decoder(w.promptInputs(in))
		return []*Node{w.Logits(h)}
	}, p.args()...)
	if err != nil {
		return nil, err
	}
	return &ForwardOutput{Logits: outs[0], ImageEmbeds: p.imageEmbed, PositionIDs: p.pos, RopeDeltas: p.deltas}, nil
}

// LogProbs returns log p(targets[b][s] | tokens ≤ s) for every position as a
// float32 [B, L] tensor (the trainer shifts: targets[b][s] = ids[b][s+1]),
// computing the vocabulary log-sum-exp in chunks of vocabChunk entries
// (0 = 8192) so full float32 logits are never materialized.
func (m *Model) LogProbs(in Batch, targets [][]int32, lora *LoRA, vocabChunk int) (*tensors.Tensor, error) {
	p, err := m.prepare(in, lora)
	if err != nil {
		return nil, err
	}
	if vocabChunk <= 0 {
		vocabChunk = 8192
	}
	flat := make([]int32, 0, p.b*p.l)
	for i, row := range targets {
		if len(row) != p.l {
			return nil, fmt.Errorf("targets row %d has %d entries, want %d", i, len(row), p.l)
		}
		for _, t := range row {
			if t < 0 || int(t) >= m.Config.Text.VocabSize {
				return nil, fmt.Errorf("target id %d is outside the vocabulary", t)
			}
		}
		flat = append(flat, row...)
	}
	if len(targets) != p.b {
		return nil, fmt.Errorf("targets has %d rows, input_ids %d", len(targets), p.b)
	}
	args := append(p.args(), tensors.FromFlatDataAndDimensions(flat, p.b, p.l))
	outs, err := m.run(fmt.Sprintf("logprobs%d", vocabChunk), lora, func(w *Weights, in []*Node) []*Node {
		h, _ := w.Decoder(w.promptInputs(in))
		return []*Node{w.ChosenLogProbs(h, in[numPromptInputs], vocabChunk)}
	}, args...)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// State is a batch's decoding state: a fixed-capacity KV cache on the device.
type State struct {
	Cache    []*tensors.Tensor // per layer K then V, [B, KVH, capacity, D]
	Length   int               // slots filled so far (prompt length + decoded tokens)
	Capacity int
	Deltas   []int64 // rope_deltas: a new token's position = real tokens before it + delta
	real     []int64 // real (unpadded) tokens per row so far
	valid    [][]bool
	lora     *LoRA
}

// Prefill runs the prompt through the model into a new KV cache of the given
// capacity (≥ prompt length) and returns the state and the float32 logits of
// the last position [B, vocab]. The prompt attends over its own keys only; the
// cache is the prompt's keys and values followed by zeros, built on the device
// (no empty cache travels from the host).
func (m *Model) Prefill(in Batch, capacity int, lora *LoRA) (*State, *tensors.Tensor, error) {
	p, err := m.prepare(in, lora)
	if err != nil {
		return nil, nil, err
	}
	if capacity < p.l {
		return nil, nil, fmt.Errorf("cache capacity %d is shorter than the prompt (%d tokens)", capacity, p.l)
	}
	st := &State{Length: p.l, Capacity: capacity, Deltas: p.deltas, valid: validSlots(p.mask, capacity), lora: lora}
	st.real = make([]int64, p.b)
	for i, row := range p.mask {
		for _, v := range row {
			if v != 0 {
				st.real[i]++
			}
		}
	}
	outs, err := m.run(fmt.Sprintf("prefill%d", capacity), lora, func(w *Weights, in []*Node) []*Node {
		h, kv := w.Decoder(w.promptInputs(in))
		hb := h.Shape().Dimensions
		// Left padding puts every row's last token at the last position.
		hLast := Reshape(SliceAxis(h, 1, AxisElem(hb[1]-1)), hb[0], hb[2])
		for i := range kv {
			kv[i] = KV{K: padSlots(kv[i].K, capacity), V: padSlots(kv[i].V, capacity)}
		}
		return append([]*Node{w.Logits(hLast)}, flattenKV(kv)...)
	}, p.args()...)
	if err != nil {
		return nil, nil, err
	}
	st.Cache = outs[1:]
	return st, outs[0], nil
}

// padSlots extends [B, KVH, S, D] with zeros to [B, KVH, capacity, D].
func padSlots(x *Node, capacity int) *Node {
	dims := x.Shape().Dimensions
	if dims[2] == capacity {
		return x
	}
	zeros := Zeros(x.Graph(), shapes.Make(x.DType(), dims[0], dims[1], capacity-dims[2], dims[3]))
	return Concatenate([]*Node{x, zeros}, 2)
}

// Decode appends one token per row at the next cache slot and returns the
// float32 logits [B, vocab] for the following token. Positions continue from
// the prompt's M-RoPE positions: (real tokens so far) + rope_delta on all
// three axes, i.e. one past the largest position used.
func (m *Model) Decode(st *State, tokens []int32) (*tensors.Tensor, error) {
	b := len(st.Deltas)
	if len(tokens) != b {
		return nil, fmt.Errorf("decode got %d tokens for a batch of %d", len(tokens), b)
	}
	if st.Length >= st.Capacity {
		return nil, fmt.Errorf("KV cache is full (capacity %d); prefill with a larger capacity", st.Capacity)
	}
	slot := st.Length
	valid := make([]bool, 0, b*st.Capacity)
	for i := range b {
		st.valid[i][slot] = true
		valid = append(valid, st.valid[i]...)
	}
	var pos [3][][]int64
	for a := range 3 {
		pos[a] = make([][]int64, b)
		for i := range b {
			pos[a][i] = []int64{st.real[i] + st.Deltas[i]}
		}
	}
	args := []any{
		tensors.FromFlatDataAndDimensions(append([]int32(nil), tokens...), b, 1),
		positionsTensor(pos),
		tensors.FromFlatDataAndDimensions(valid, b, st.Capacity),
		tensors.FromScalar(int32(slot)),
	}
	for _, t := range st.Cache {
		args = append(args, t)
	}
	outs, err := m.run("decode", st.lora, func(w *Weights, in []*Node) []*Node {
		h := w.embedTokens(in[0])
		cos, sin := w.MRope(in[1])
		c := in[2].Shape().Dimensions[1]
		write := ConvertDType(Equal(Iota(h.Graph(), shapes.Make(dtypes.Int32, 1, c), 1), in[3]), dtypes.Float32)
		h, kv := w.Decoder(DecoderInput{Hidden: h, Cos: cos, Sin: sin, Mask: causalMaskNode(in[2], in[3], 1), Write: write, Cache: kvPairs(in[4:])})
		hb := h.Shape().Dimensions
		return append([]*Node{w.Logits(Reshape(h, hb[0], hb[2]))}, flattenKV(kv)...)
	}, args...)
	if err != nil {
		return nil, err
	}
	for _, t := range st.Cache {
		t.FinalizeAll()
	}
	st.Cache = outs[1:]
	st.Length++
	for i := range st.real {
		st.real[i]++
	}
	return outs[0], nil
}

// Greedy generates n tokens per row by greedy decoding with the KV cache.
func (m *Model) Greedy(in Batch, n int, lora *LoRA) ([][]int32, error) {
	if len(in.InputIDs) == 0 {
		return nil, fmt.Errorf("input_ids is empty")
	}
	st, logits, err := m.Prefill(in, len(in.InputIDs[0])+n, lora)
	if err != nil {
		return nil, err
	}
	out := make([][]int32, len(in.InputIDs))
	for step := range n {
		next, err := argmaxRows(logits)
		if err != nil {
			return nil, err
		}
		for i, t := range next {
			out[i] = append(out[i], t)
		}
		if step == n-1 {
			break
		}
		if logits, err = m.Decode(st, next); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// argmaxRows returns the index of the largest value of each row of [B, V].
func argmaxRows(t *tensors.Tensor) ([]int32, error) {
	v := t.Shape().Dimensions[1]
	flat, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(flat)/v)
	for i := range out {
		best := 0
		for j := 1; j < v; j++ {
			if flat[i*v+j] > flat[i*v+best] {
				best = j
			}
		}
		out[i] = int32(best)
	}
	return out, nil
}

// kvPairs groups per-layer cache nodes (K then V, layer by layer) into KVs.
func kvPairs(nodes []*Node) []KV {
	out := make([]KV, len(nodes)/2)
	for i := range out {
		out[i] = KV{K: nodes[2*i], V: nodes[2*i+1]}
	}
	return out
}

// flattenKV is the inverse of kvPairs.
func flattenKV(kv []KV) []*Node {
	out := make([]*Node, 0, 2*len(kv))
	for _, p := range kv {
		out = append(out, p.K, p.V)
	}
	return out
}

// validSlots widens an attention mask [B][L] to the cache capacity: slot j of
// row i holds a token when j < L and mask[i][j] ≠ 0.
func validSlots(mask [][]int32, capacity int) [][]bool {
	out := make([][]bool, len(mask))
	for i, row := range mask {
		out[i] = make([]bool, capacity)
		for j, v := range row {
			out[i][j] = v != 0
		}
	}
	return out
}
