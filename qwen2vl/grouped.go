package qwen2vl

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// GroupedText is the shared-prompt layout of a batch of B = Gr·N full
// sequences whose rows come in Gr groups of N consecutive rows with one
// prompt each (GRPO's completions of a prompt). Each prompt is computed once:
//   - Prompt [Gr, P] holds each group's prompt without its last token
//     (left-padded, as in the full layout);
//   - Tail [B, T] holds each row's last prompt token followed by its
//     completion without the last token, so that Tail's position t predicts
//     completion token t and the targets are the completions themselves.
//
// Ids, image indices, M-RoPE positions and validity are the full layout's
// own values (TextBatch.Grouped copies them), so Weights.GroupedTokenLogProbs
// computes the log-probs Weights.TokenLogProbs computes on the full layout,
// with the prompt's tokens run once per group instead of N times.
type GroupedText struct {
	Prompt, Tail *TextBatch
	// N is the group size (rows per prompt).
	N int
}

// NumGroupedInputs is the number of graph inputs GroupedText.Tensors gives
// and ReadGroupedInputs reads.
const NumGroupedInputs = 2*NumTextInputs - 1

// Grouped splits t, a full layout (prompts left-padded to L−T, then
// completions right-padded to T), into its shared-prompt layout with groups of
// n consecutive rows. It checks that the rows of each group have identical
// prompts (ids, image indices, positions and padding).
func (t *TextBatch) Grouped(n, completion int) (*GroupedText, error) {
	return t.GroupedTo(n, completion, nil)
}

// GroupedTo is Grouped with the prompt part's length chosen by promptLen:
// the columns before the first prompt token of any row (left padding every
// row shares) are dropped, and the k prompt columns left are left-padded to
// promptLen(k) (values below k count as k). Padding columns hold no token
// (not valid, id 0, position 0), so the log-probs are Grouped's. A length
// that is a multiple of 8 keeps the token matrix of a grouped layer
// (Gr·P + B·T rows) aligned for the GPU's matrix products; without it XLA
// pads the activations of every product that contracts over tokens. nil
// promptLen keeps Grouped's length L−T−1.
func (t *TextBatch) GroupedTo(n, completion int, promptLen func(k int) int) (*GroupedText, error) {
	p := t.L - completion - 1 // prompt tokens computed once per group
	switch {
	case n < 1 || t.B%n != 0:
		return nil, fmt.Errorf("qwen2vl: group size %d does not divide the batch of %d rows", n, t.B)
	case completion < 1 || p < 1:
		return nil, fmt.Errorf("qwen2vl: completion length %d of sequences of %d: the shared-prompt layout needs at least 2 prompt positions and 1 completion token", completion, t.L)
	}
	gr := t.B / n
	// The prompt part: columns from…p−1 of the full layout, after pad
	// padding columns.
	from, pad := 0, 0
	if promptLen != nil {
		from = p - 1 // at least one column
		for r := range t.B {
			for j := range from {
				if t.Valid[r*t.L+j] {
					from = j
					break
				}
			}
		}
		pad = max(promptLen(p-from), p-from) - (p - from)
	}
	prompt := &TextBatch{B: gr, L: pad + p - from, hidden: t.hidden}
	tail := &TextBatch{B: t.B, L: completion, hidden: t.hidden}
	for r := range t.B {
		lead := (r / n) * n // the group's first row
		for j := range p + 1 {
			a, b := lead*t.L+j, r*t.L+j
			same := t.IDs[a] == t.IDs[b] && t.ImageIndex[a] == t.ImageIndex[b] && t.IsImage[a] == t.IsImage[b] && t.Valid[a] == t.Valid[b]
			for ax := range 3 {
				same = same && t.Positions[(ax*t.B+lead)*t.L+j] == t.Positions[(ax*t.B+r)*t.L+j]
			}
			if !same {
				return nil, fmt.Errorf("qwen2vl: row %d's prompt differs from row %d's at position %d: rows of a group of %d must share one prompt", r, lead, j, n)
			}
		}
	}
	// cut copies columns from..from+dst.L−lead of rows into dst, after lead
	// padding columns.
	cut := func(dst *TextBatch, rows []int, from, lead int) {
		w := dst.L - lead
		for _, r := range rows {
			lo, hi := r*t.L+from, r*t.L+from+w
			dst.IDs = append(append(dst.IDs, make([]int32, lead)...), t.IDs[lo:hi]...)
			dst.ImageIndex = append(append(dst.ImageIndex, make([]int32, lead)...), t.ImageIndex[lo:hi]...)
			dst.IsImage = append(append(dst.IsImage, make([]bool, lead)...), t.IsImage[lo:hi]...)
			dst.Valid = append(append(dst.Valid, make([]bool, lead)...), t.Valid[lo:hi]...)
		}
		for ax := range 3 {
			for _, r := range rows {
				lo := (ax*t.B+r)*t.L + from
				dst.Positions = append(append(dst.Positions, make([]int32, lead)...), t.Positions[lo:lo+w]...)
			}
		}
		for _, img := range dst.IsImage {
			if img {
				dst.ImageTokens++
			}
		}
	}
	leads, all := make([]int, gr), make([]int, t.B)
	for g := range leads {
		leads[g] = g * n
	}
	for r := range all {
		all[r] = r
	}
	cut(prompt, leads, from, pad)
	cut(tail, all, p, 0)
	return &GroupedText{Prompt: prompt, Tail: tail, N: n}, nil
}

// Tensors returns the grouped graph's inputs in ReadGroupedInputs order: the
// prompt part's text inputs (features included, see TextBatch.Tensors), then
// the tail's ids, image index, is-image, positions and valid.
func (g *GroupedText) Tensors(features *tensors.Tensor) []*tensors.Tensor {
	p := g.Prompt.Tensors(features)
	return append(p, g.Tail.Tensors(p[NumTextInputs-1])[:NumTextInputs-1]...)
}

// GroupedInputs are the grouped graph's input nodes (GroupedText.Tensors,
// read with ReadGroupedInputs); both parts share the image features.
type GroupedInputs struct {
	Prompt, Tail TextInputs
}

// ReadGroupedInputs reads the NumGroupedInputs nodes GroupedText.Tensors gives
// and returns the nodes after them.
func ReadGroupedInputs(nodes []*Node) (GroupedInputs, []*Node) {
	p, rest := ReadTextInputs(nodes)
	t := TextInputs{IDs: rest[0], ImageIndex: rest[1], IsImage: rest[2], Positions: rest[3], Valid: rest[4],
		ImageFeatures: p.ImageFeatures}
	return GroupedInputs{Prompt: p, Tail: t}, rest[NumTextInputs-1:]
}

// GroupedStream is the residual streams of both parts of a grouped batch
// between decoder layers: Prompt [Gr, P, hidden] and Tail [B, T, hidden],
// float32.
type GroupedStream struct {
	Prompt, Tail *Node
}

// GroupedEmbed returns the input embeddings of both parts.
func (w *Weights) GroupedEmbed(in GroupedInputs) GroupedStream {
	return GroupedStream{
		Prompt: w.Embed(in.Prompt.IDs, in.Prompt.ImageIndex, in.Prompt.IsImage, in.Prompt.ImageFeatures),
		Tail:   w.Embed(in.Tail.IDs, in.Tail.ImageIndex, in.Tail.IsImage, in.Tail.ImageFeatures),
	}
}

// GroupedLayer runs decoder layer i on both parts: the prompts attend
// causally among themselves; each tail row attends to its group's prompt
// keys and values (broadcast over the group, not copied) and causally to
// its own positions. The gradient reaching a prompt's keys and values from
// all N rows of its group flows back through the prompt's layer once.
//
// Where the backend has Pad (XLA), every row-wise step (the norms, the seven
// projections, the residual adds and the MLP) runs once on one flat matrix
// of all Gr·P + B·T tokens, the prompt's rows followed by the tail's, joined
// and split by concatenation and slices, so that each projection is one
// product with its weight; only the rotary embedding and the attention run
// per part. (Run per part, XLA merged each projection's two products by
// concatenating their activations: on an H200 about 0.7 ms per layer
// gradient of a 64 × 683-token GRPO step.) Elsewhere — the pure-Go CPU
// backend has no Pad, so no gradient for Slice, which Concatenate's gradient
// takes too — the layer runs per part. Both forms compute the same values.
func (w *Weights) GroupedLayer(i int, in GroupedInputs, s GroupedStream) GroupedStream {
	return w.groupedLayerBy(i, in, s, s.Prompt.Graph().Backend().Capabilities().Operations[backends.OpTypePad])
}

// groupedLayerBy is GroupedLayer on one flat matrix (flat) or per part.
func (w *Weights) groupedLayerBy(i int, in GroupedInputs, s GroupedStream, flat bool) GroupedStream {
	pd, td := s.Prompt.Shape().Dimensions, s.Tail.Shape().Dimensions
	gr, pl, b, t := pd[0], pd[1], td[0], td[1]
	pcos, psin := w.MRope(in.Prompt.Positions)
	tcos, tsin := w.MRope(in.Tail.Positions)
	promptMask, tailMask := causalMask(in.Prompt.Valid, pl), causalMask(in.Tail.Valid, t)
	if !flat {
		hp, prefix := w.DecoderLayer(i, s.Prompt, DecoderInput{Cos: pcos, Sin: psin, Mask: promptMask})
		ht, _ := w.DecoderLayer(i, s.Tail, DecoderInput{Cos: tcos, Sin: tsin, Attention: func(_ int, q, k, v *Node) (*Node, KV) {
			return groupedAttention(q, k, v, prefix, in.Prompt.Valid, tailMask, w.DType), KV{K: k, V: v}
		}})
		return GroupedStream{Prompt: hp, Tail: ht}
	}
	p := LayerPrefix(i)
	rows := gr * pl // the prompt's rows in the flat matrix
	// parts splits a flat [Gr·P + B·T, X] into [Gr, P, X] and [B, T, X].
	parts := func(x *Node) (*Node, *Node) {
		return Reshape(SliceAxis(x, 0, AxisRange(0, rows)), gr, pl, -1), Reshape(SliceAxis(x, 0, AxisRange(rows, rows+b*t)), b, t, -1)
	}
	// join is the inverse of parts.
	join := func(xp, xt *Node) *Node {
		return Concatenate([]*Node{Reshape(xp, rows, -1), Reshape(xt, b*t, -1)}, 0)
	}
	h := join(s.Prompt, s.Tail)
	// Self-attention block: q, k, v of all tokens at once, then per part.
	q, k, v := w.qkvProj(p, h)
	qp, qt := parts(q)
	kp, kt := parts(k)
	vp, vt := parts(v)
	qp, prefix := w.rotaryQKV(qp, kp, vp, pcos, psin)
	ap := attention(qp, prefix.K, prefix.V, promptMask, w.DType)
	qt, own := w.rotaryQKV(qt, kt, vt, tcos, tsin)
	at := groupedAttention(qt, own.K, own.V, prefix, in.Prompt.Valid, tailMask, w.DType)
	// Output projection and the MLP block on all tokens at once.
	h = w.mlpBlock(p, w.attentionOutput(p, h, join(ap, at)))
	hp, ht := parts(h)
	return GroupedStream{Prompt: hp, Tail: ht}
}

// GroupedTokenLogProbs is TokenLogProbs on the shared-prompt layout: for
// targets [B, T] (the completions, right-padded) it returns their log-probs
// [B, T] (float32), equal to TokenLogProbs on the full layout the grouped
// one was split from. On a backend without Pad (the pure-Go CPU backend),
// like TokenLogProbs, its path from the adapter nodes holds no Slice,
// DynamicSlice or Rsqrt; with Pad, GroupedLayer joins and splits its flat
// token matrix with Concatenate and Slice, which such a backend
// differentiates.
func (w *Weights) GroupedTokenLogProbs(in GroupedInputs, targets *Node, chunk int) *Node {
	s := w.GroupedEmbed(in)
	for i := range w.Config.Text.NumLayers {
		s = w.GroupedLayer(i, in, s)
	}
	if chunk <= 0 {
		chunk = 8192
	}
	return w.ChosenLogProbs(w.FinalNorm(s.Tail), targets, chunk)
}

// groupedAttention is attention for tail queries q [B, T, H, D] (float32,
// rotary applied) of Gr = B/N groups over their group's prompt keys and
// values prefix [Gr, KVH, P, D] (valid [Gr, P]) and their own keys and
// values k, v [B, KVH, T, D] (mask [B, T, T]; the cache layout, heads before
// positions). The softmax runs over both
// key sets without concatenating them: one shared maximum, the two
// exponentials' sums added, the value products added and divided by the
// total. The operands are laid out [Gr, KVH, N, …] once, so that every
// product's output comes in the order the next step reads (no transposes
// of score-sized tensors). Precision as attention. Returns [B, T, H·D]
// float32.
func groupedAttention(q, k, v *Node, prefix KV, valid, mask *Node, dt dtypes.DType) *Node {
	dims := q.Shape().Dimensions
	b, t, h, d := dims[0], dims[1], dims[2], dims[3]
	pd := prefix.K.Shape().Dimensions
	gr, kvh, p := pd[0], pd[1], pd[2]
	n, gq := b/gr, h/kvh
	qg := TransposeAllDims(Reshape(q, gr, n, t, kvh, gq, d), 0, 3, 1, 2, 4, 5) // [Gr, KVH, N, T, Gq, D]
	kp, vp := prefix.K, prefix.V                                               // [Gr, KVH, P, D]
	ko := TransposeAllDims(Reshape(k, gr, n, kvh, t, d), 0, 2, 1, 3, 4)        // [Gr, KVH, N, T, D]
	vo := TransposeAllDims(Reshape(v, gr, n, kvh, t, d), 0, 2, 1, 3, 4)
	scale := 1 / math.Sqrt(float64(d))
	neg := Scalar(q.Graph(), dtypes.Float32, -math.MaxFloat32)
	sp := MulScalar(einsumF32("gkntqd,gkpd->gkntqp", qg, kp, dt), scale)  // [Gr, KVH, N, T, Gq, P]
	so := MulScalar(einsumF32("gkntqd,gkncd->gkntqc", qg, ko, dt), scale) // [Gr, KVH, N, T, Gq, T]
	sp = Where(BroadcastToDims(Reshape(valid, gr, 1, 1, 1, 1, p), gr, kvh, n, t, gq, p), sp, neg)
	so = Where(BroadcastToDims(Reshape(mask, gr, 1, n, t, 1, t), gr, kvh, n, t, gq, t), so, neg)
	// Every tail query sees at least its row's first position (the prompt's
	// last token), so the maximum is finite and the total positive.
	m := StopGradient(Max(ReduceAndKeep(sp, ReduceMax, -1), ReduceAndKeep(so, ReduceMax, -1)))
	ep, eo := Exp(Sub(sp, m)), Exp(Sub(so, m))
	total := Add(ReduceSum(ep, -1), ReduceSum(eo, -1)) // [Gr, KVH, N, T, Gq]
	out := Add(
		ConvertDType(Einsum("gkntqp,gkpd->gkntqd", ConvertDType(ep, dt), ConvertDType(vp, dt)), dtypes.Float32),
		ConvertDType(Einsum("gkntqc,gkncd->gkntqd", ConvertDType(eo, dt), ConvertDType(vo, dt)), dtypes.Float32))
	out = Div(out, InsertAxes(total, -1))                              // [Gr, KVH, N, T, Gq, D]
	return Reshape(TransposeAllDims(out, 0, 2, 3, 1, 4, 5), b, t, h*d) // [Gr, N, T, KVH, Gq, D]
}
