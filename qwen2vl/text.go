package qwen2vl

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// TextInputs are the text graph's input nodes (TextBatch.Tensors, read with
// ReadTextInputs).
type TextInputs struct {
	IDs        *Node // [B, L] int32 token ids
	ImageIndex *Node // [B, L] int32 row of ImageFeatures for image tokens
	IsImage    *Node // [B, L] bool
	Positions  *Node // [3, B, L] int32 M-RoPE positions
	Valid      *Node // [B, L] bool: the position holds a token
	// ImageFeatures are the vision tower's merged features [N, hidden]
	// (computed once per image and passed in; extra rows unused).
	ImageFeatures *Node
}

// ReadTextInputs reads the NumTextInputs nodes TextBatch.Tensors gives and
// returns the nodes after them.
func ReadTextInputs(nodes []*Node) (TextInputs, []*Node) {
	return TextInputs{IDs: nodes[0], ImageIndex: nodes[1], IsImage: nodes[2], Positions: nodes[3], Valid: nodes[4],
		ImageFeatures: nodes[5]}, nodes[NumTextInputs:]
}

// Prompt builds the decoder input of whole sequences (no cache): the
// embeddings (image tokens replaced by their features), the M-RoPE tables and
// the causal mask over valid positions.
func (w *Weights) Prompt(in TextInputs) DecoderInput {
	h := w.Embed(in.IDs, in.ImageIndex, in.IsImage, in.ImageFeatures)
	cos, sin := w.MRope(in.Positions)
	l := in.IDs.Shape().Dimensions[1]
	return DecoderInput{Hidden: h, Cos: cos, Sin: sin, Mask: causalMask(in.Valid, l)}
}

// causalMask returns [B, L, L] bool: query s may attend to key c when c ≤ s
// and valid[b, c] holds.
func causalMask(valid *Node, l int) *Node {
	g := valid.Graph()
	b := valid.Shape().Dimensions[0]
	q := Iota(g, shapes.Make(dtypes.Int32, l, l), 0)
	k := Iota(g, shapes.Make(dtypes.Int32, l, l), 1)
	causal := BroadcastToDims(InsertAxes(LessOrEqual(k, q), 0), b, l, l)
	return LogicalAnd(causal, BroadcastToDims(InsertAxes(valid, 1), b, l, l))
}

// Embed builds the input embeddings (float32): token embeddings with the
// image tokens replaced by the image features in order.
func (w *Weights) Embed(ids, imageIndex, isImage, features *Node) *Node {
	tok := w.EmbedTokens(ids)
	img := Gather(ConvertDType(features, dtypes.Float32), InsertAxes(imageIndex, -1))
	return Where(isImage, img, tok)
}

// EmbedTokens looks up token embeddings [..., hidden] (float32) for int ids.
func (w *Weights) EmbedTokens(ids *Node) *Node {
	return ConvertDType(Gather(w.param("model.embed_tokens.weight"), InsertAxes(ids, -1)), dtypes.Float32)
}

// TokenLogProbs is the trainer's log-probability graph. For B full sequences
// of length L (prompt left-padded, then the completion; in: TextInputs) and
// targets [B, T] int32 (T ≤ L−1; typically the completion ids, right-padded),
// it returns [B, T] float32 with
//
//	out[b, t] = log p(token at position L−T+t = targets[b, t] | positions < L−T+t)
//
// i.e. the hidden state of position L−T−1+t scores targets[b, t]; when
// targets are the sequence's own last T ids, out holds their log-probs under
// the model (temperature 1). The trainer masks padding itself. The
// vocabulary log-sum-exp is computed in chunks of chunk entries (≤ 0: 8192),
// so full-vocabulary float32 logits are never materialized for all positions
// at once. The path from the adapter nodes (Weights.LoRA) to the output holds
// no Slice, DynamicSlice or Rsqrt (positions are selected by a 0/1 matrix
// product), so Gradient works on the CPU backend.
func (w *Weights) TokenLogProbs(in TextInputs, targets *Node, chunk int) *Node {
	h, _ := w.Decoder(w.Prompt(in))
	l := h.Shape().Dimensions[1]
	t := targets.Shape().Dimensions[1]
	if t != l {
		h = SelectPositions(h, l-t-1, t)
	}
	if chunk <= 0 {
		chunk = 8192
	}
	return w.ChosenLogProbs(h, targets, chunk)
}

// SelectPositions returns x[:, first:first+n, :] for x [B, L, H] as a product
// with a constant 0/1 matrix, which (unlike Slice) every backend
// differentiates.
func SelectPositions(x *Node, first, n int) *Node {
	l := x.Shape().Dimensions[1]
	sel := make([]float32, n*l)
	for i := range n {
		sel[i*l+first+i] = 1
	}
	m := Reshape(Const(x.Graph(), sel), n, l)
	return Einsum("blh,tl->bth", x, ConvertDType(m, x.DType()))
}

// DecodeStep runs one new token per row against a KV cache with per-row
// write positions, for continuous batching over rows ("slots") at different
// lengths:
//   - ids [B] int32: each row's current token;
//   - positions [3, B, 1] int32: its M-RoPE position (real tokens before it +
//     the row's rope delta on all three axes);
//   - write [B] int32: the cache slot its key and value go to;
//   - start [B] int32: the row's first valid slot (keys at start ≤ c ≤ write
//     are attended);
//   - cache: per layer K and V [B, KVH, C, D] in the model dtype, which must
//     hold zeros at every row's write slot (the engine keeps each row zero
//     beyond its written length).
//
// The new keys and values are added with a scatter at (row, head,
// write[row]), so the write costs B·KVH entries of D, not the capacity (with
// the cache buffers donated XLA updates them in place), and the attention
// products read the cache in its own layout (batch axes b, kvh leading), so
// no step copies it. It returns the final hidden states [B, hidden]
// (float32) and the updated caches.
func (w *Weights) DecodeStep(ids, positions, write, start *Node, cache []KV) (*Node, []KV) {
	g := ids.Graph()
	b := ids.Shape().Dimensions[0]
	kvh, c := cache[0].K.Shape().Dimensions[1], cache[0].K.Shape().Dimensions[2]
	h := w.EmbedTokens(Reshape(ids, b, 1))
	cos, sin := w.MRope(positions)
	slots := Iota(g, shapes.Make(dtypes.Int32, b, c), 1)
	mask := LogicalAnd(GreaterOrEqual(slots, InsertAxes(start, -1)), LessOrEqual(slots, InsertAxes(write, -1)))
	mask = Reshape(mask, b, 1, c)
	put := rowWriter(write, kvh)
	out, kv := w.Decoder(DecoderInput{Hidden: h, Cos: cos, Sin: sin, Mask: mask, Attend: func(i int, k, v *Node) KV {
		return KV{K: put(cache[i].K, k), V: put(cache[i].V, v)}
	}})
	return Reshape(out, b, w.Config.Text.HiddenSize), kv
}

// rowWriter returns a function that adds one new position's keys or values
// x [B, KVH, 1, D] into a cache [B, KVH, C, D] at (b, head, write[b]) for
// every row b and head: a scatter of B·KVH entries of D.
func rowWriter(write *Node, kvh int) func(dst, x *Node) *Node {
	g := write.Graph()
	b := write.Shape().Dimensions[0]
	idx := Stack([]*Node{
		Iota(g, shapes.Make(dtypes.Int32, b, kvh), 0),
		Iota(g, shapes.Make(dtypes.Int32, b, kvh), 1),
		BroadcastToDims(Reshape(ConvertDType(write, dtypes.Int32), b, 1), b, kvh),
	}, -1) // [B, KVH, 3], sorted and unique
	return func(dst, x *Node) *Node {
		d := x.Shape().Dimensions
		return ScatterSum(dst, idx, Reshape(x, b, kvh, d[3]), true, true)
	}
}

// DecodeStepShared is DecodeStep for slots grouped by prompt: the B slots
// form Gr groups of N = B/Gr consecutive slots, and each group's prompt KV
// is held once in a shared prefix pool instead of once per slot:
//   - ids, positions, write: as DecodeStep, but write indexes each slot's own
//     cache of fed tokens (its first fed token goes to slot 0);
//   - start [Gr] int32: the first valid prefix slot of each group's prompt
//     (prompts are right-aligned in the pool);
//   - prefix: per layer K and V [Gr, KVH, P, D], the groups' prompt KV
//     (read only);
//   - own: per layer K and V [B, KVH, C, D], each slot's fed tokens, zero
//     at every slot's write position.
//
// Slot b attends to its group's prefix (slots start ≤ c < P) and to its own
// cache up to write[b]; the new keys and values go into own with a scatter.
// Reading the prefix once per group instead of once per slot divides the
// prompt's KV memory and traffic by N; as in DecodeStep, both caches are
// read in their own layout. Returns the final hidden states [B, hidden]
// (float32) and the updated own caches.
func (w *Weights) DecodeStepShared(ids, positions, write, start *Node, prefix, own []KV) (*Node, []KV) {
	g := ids.Graph()
	b := ids.Shape().Dimensions[0]
	pd := prefix[0].K.Shape().Dimensions
	gr, kvh, p, d := pd[0], pd[1], pd[2], pd[3]
	n := b / gr
	c := own[0].K.Shape().Dimensions[2]
	h := w.EmbedTokens(Reshape(ids, b, 1))
	cos, sin := w.MRope(positions)
	put := rowWriter(write, kvh)
	heads := w.Config.Text.NumHeads
	gq := heads / kvh
	// Masks: the group's valid prefix, and each slot's fed tokens.
	prefixOK := GreaterOrEqual(Iota(g, shapes.Make(dtypes.Int32, gr, p), 1), InsertAxes(start, -1))             // [Gr, P]
	ownOK := Reshape(LessOrEqual(Iota(g, shapes.Make(dtypes.Int32, b, c), 1), InsertAxes(write, -1)), gr, n, c) // [Gr, N, C]
	mask := Concatenate([]*Node{BroadcastToDims(Reshape(prefixOK, gr, 1, 1, 1, p), gr, kvh, n, gq, p),
		BroadcastToDims(Reshape(ownOK, gr, 1, n, 1, c), gr, kvh, n, gq, c)}, -1) // [Gr, KVH, N, Gq, P+C]
	neg := Scalar(g, dtypes.Float32, -math.MaxFloat32)
	out, kv := w.Decoder(DecoderInput{Hidden: h, Cos: cos, Sin: sin, Attention: func(i int, q, k, v *Node) (*Node, KV) {
		mine := KV{K: put(own[i].K, k), V: put(own[i].V, v)}
		qg := Reshape(q, gr, n, kvh, gq, d)
		ok := Reshape(mine.K, gr, n, kvh, c, d)
		ov := Reshape(mine.V, gr, n, kvh, c, d)
		scores := Concatenate([]*Node{
			einsumF32("gnkqd,gkpd->gknqp", qg, prefix[i].K, w.DType),
			einsumF32("gnkqd,gnkcd->gknqc", qg, ok, w.DType),
		}, -1)
		scores = Where(mask, MulScalar(scores, 1/math.Sqrt(float64(d))), neg)
		probs := ConvertDType(Softmax(scores, -1), w.DType)
		pp, po := SliceAxis(probs, -1, AxisRange(0, p)), SliceAxis(probs, -1, AxisRange(p, p+c))
		att := Add(ConvertDType(Einsum("gknqp,gkpd->gnkqd", pp, ConvertDType(prefix[i].V, w.DType)), dtypes.Float32),
			ConvertDType(Einsum("gknqc,gnkcd->gnkqd", po, ConvertDType(ov, w.DType)), dtypes.Float32))
		return Reshape(att, b, 1, heads*d), mine
	}})
	return Reshape(out, b, w.Config.Text.HiddenSize), kv
}
