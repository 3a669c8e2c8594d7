package qwen2vl

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph building reads best unqualified

	"github.com/mmft-go/mmft/lora"
)

// Precision policy. A float32 model computes everything in float32. A bf16
// model keeps its weights in bf16 and rounds only the inputs of the large
// matmuls to bf16 (projections, MLPs, vision blocks; the attention products'
// q, k, v and probabilities; the KV cache holds bf16); those products
// accumulate in float32. Everything else is float32: the residual stream
// (hidden states between blocks and the residual adds), RMSNorm/LayerNorm,
// biases, activations, rotary embeddings (tables and rotation), the
// text attention scores (float32 products of the bf16-rounded q and k; the
// vision tower's P×P scores come out in bf16, see visionAttention), softmax,
// the vision patch embedding (float32 pixels), image features and the logits
// (a float32 product). On the CPU this halves the bf16-vs-float32 logits error
// of a bf16-everywhere forward (see precision_test.go).

// Weights is the graph-side view of the model's parameters (and of an optional
// LoRA adapter) while a computation graph is being built: each canonical name
// (the Hub key, e.g. "model.layers.0.self_attn.q_proj.weight") maps to a node.
type Weights struct {
	Config Config
	// DType is the dtype of weights and activations (Float32 or BFloat16);
	// softmax, norms and log-probabilities are always accumulated in float32.
	DType dtypes.DType
	// Params holds the base weights by canonical name.
	Params map[string]*Node
	// LoRA holds adapter weights by canonical module name (e.g.
	// "model.layers.0.self_attn.q_proj"); may be nil.
	LoRA map[string]LoRANodes
	// LoRAInput, when set, transforms the input of each adapter's low-rank
	// branch (not the base projection's): the trainer's LoRA dropout.
	LoRAInput func(module string, x *Node) *Node
	// HeadInDType makes ChosenLogProbs compute its logits as products in the
	// model dtype (LogitsInDType's precision, about 2⁻⁹ relative for bf16)
	// instead of float32 products; no effect on a float32 model.
	HeadInDType bool
}

// LoRANodes are one module's low-rank adapter: A [r, in], B [out, r] and the
// scale alpha/r.
type LoRANodes struct {
	A, B  *Node
	Scale float64
}

// param returns a base weight, failing the graph build with a clear message when absent.
func (w *Weights) param(name string) *Node {
	n, ok := w.Params[name]
	if !ok {
		panic(fmt.Errorf("qwen2vl: weight %q is not bound in the graph", name))
	}
	return n
}

// linear computes x·Wᵀ (+ b) over the last axis of x and returns float32:
// x is cast to the weight's dtype (the matmul input precision), the product
// accumulates in float32 inside the dot (bf16 output on the backends GoMLX
// drives, then widened) and the bias is added in float32.
func linear(x, weight, bias *Node) *Node {
	xin := ConvertDType(x, weight.DType())
	y := ConvertDType(DotGeneral(xin, []int{x.Rank() - 1}, nil, weight, []int{1}, nil), dtypes.Float32)
	if bias != nil {
		y = Add(y, ExpandLeftToRank(ConvertDType(bias, dtypes.Float32), y.Rank()))
	}
	return y
}

// linearF32 is linear with a float32 product of the dtype-rounded inputs:
// both operands are rounded to dt (the matmul precision) and widened, so the
// products are exact and only the float32 accumulation rounds. Used where a
// bf16 output would cost accuracy that matters (logits).
func linearF32(x, weight *Node, dt dtypes.DType) *Node {
	xin := ConvertDType(ConvertDType(x, dt), dtypes.Float32)
	return DotGeneral(xin, []int{x.Rank() - 1}, nil, ConvertDType(weight, dtypes.Float32), []int{1}, nil)
}

// einsumF32 is Einsum over operands rounded to dt and widened to float32
// (exact products, float32 accumulation and output).
func einsumF32(eq string, a, b *Node, dt dtypes.DType) *Node {
	a = ConvertDType(ConvertDType(a, dt), dtypes.Float32)
	b = ConvertDType(ConvertDType(b, dt), dtypes.Float32)
	return Einsum(eq, a, b)
}

// Proj applies the LLM projection module (canonical module name, e.g.
// "model.layers.3.mlp.up_proj") to x: x·Wᵀ + b, plus scale·(x·Aᵀ)·Bᵀ
// (lora.Apply) when a LoRA adapter is bound for that module. Every one of the
// seven adapted LLM projections (q, k, v, o, gate, up, down) goes through
// here. The input is cast to the model dtype; the result is float32.
func (w *Weights) Proj(module string, x *Node) *Node {
	y := linear(x, w.param(module+".weight"), w.Params[module+".bias"])
	if ad, ok := w.LoRA[module]; ok {
		// The two low-rank products run in the model dtype, as the base
		// projection does; the scale multiplies their float32 widening, so a
		// bf16 model does not round the scaled update once more.
		xin := x
		if w.LoRAInput != nil {
			xin = w.LoRAInput(module, x)
		}
		low := lora.Apply(ConvertDType(xin, w.DType), ConvertDType(ad.A, w.DType), ConvertDType(ad.B, w.DType), 1)
		y = Add(y, MulScalar(ConvertDType(low, dtypes.Float32), ad.Scale))
	}
	return y
}

// rmsNorm is Qwen2's RMSNorm: x / sqrt(mean(x²) + eps) · weight, computed and
// returned in float32 (1/Sqrt rather than Rsqrt, which has no gradient rule).
func rmsNorm(x, weight *Node, eps float64) *Node {
	x32 := ConvertDType(x, dtypes.Float32)
	variance := ReduceAndKeep(Square(x32), ReduceMean, -1)
	normed := Div(x32, Sqrt(AddScalar(variance, eps)))
	return Mul(normed, ExpandLeftToRank(ConvertDType(weight, dtypes.Float32), x.Rank()))
}

// layerNorm is a LayerNorm over the last axis, computed and returned in float32.
func layerNorm(x, weight, bias *Node, eps float64) *Node {
	x32 := ConvertDType(x, dtypes.Float32)
	mean := ReduceAndKeep(x32, ReduceMean, -1)
	centered := Sub(x32, mean)
	variance := ReduceAndKeep(Square(centered), ReduceMean, -1)
	normed := Div(centered, Sqrt(AddScalar(variance, eps)))
	return Add(Mul(normed, ExpandLeftToRank(ConvertDType(weight, dtypes.Float32), x.Rank())),
		ExpandLeftToRank(ConvertDType(bias, dtypes.Float32), x.Rank()))
}

// rotateHalf returns rotate_half(x) = concat(−x[…, d/2:], x[…, :d/2]) over
// x's last axis, in x's dtype. Where the backend differentiates slices (it
// has Pad, as XLA does) that is two slices, a negation and a concatenation:
// exact, and fused by XLA into its neighbours. The pure-Go CPU backend has
// no gradient for Slice, so there it is the product with the constant ±1
// matrix (exact too, on a CPU: float32 products of ±1 and 0). On an H200
// the product ran as a TF32 matrix product (rounding x to 10 bits of
// mantissa) and cost the vision tower 246 µs per layer call.
func rotateHalf(x *Node) *Node {
	return rotateHalfBy(x, x.Graph().Backend().Capabilities().Operations[backends.OpTypePad])
}

// rotateHalfBy is rotateHalf by slices or by the ±1 product.
func rotateHalfBy(x *Node, slices bool) *Node {
	g := x.Graph()
	last := x.Rank() - 1
	d := x.Shape().Dimensions[last]
	if slices {
		return Concatenate([]*Node{Neg(SliceAxis(x, last, AxisRange(d/2, d))), SliceAxis(x, last, AxisRange(0, d/2))}, last)
	}
	r := make([]float32, d*d)
	half := d / 2
	for j := 0; j < half; j++ {
		r[(j+half)*d+j] = -1 // out[j] = -x[j+half]
		r[j*d+j+half] = 1    // out[j+half] = x[j]
	}
	m := ConvertDType(Reshape(Const(g, r), d, d), x.DType())
	return DotGeneral(x, []int{last}, nil, m, []int{0}, nil)
}

// applyRotary computes x·cos + rotate_half(x)·sin in float32 for x [B, S,
// heads, D] and cos, sin [B, S, D] (float32).
func applyRotary(x, cos, sin *Node) *Node {
	x = ConvertDType(x, dtypes.Float32)
	cos = InsertAxes(cos, 2)
	sin = InsertAxes(sin, 2)
	return Add(Mul(x, cos), Mul(rotateHalf(x), sin))
}

// attention computes softmax(q·kᵀ/√d + mask)·v for q [B, S, H, D], k, v [B,
// KVH, C, D] and mask [B, S, C] (true = may attend); key/value heads are
// shared by H/KVH query heads (GQA). The products' batch axes (b, kvh) are the
// keys' and values' leading axes, so a backend reads them in place (no
// transposed copy of a KV cache per step). q, k and v enter the products
// rounded to dt (the model dtype); the scores are float32 products of those
// values (exact, float32 accumulation), softmax is float32, and the
// probabilities enter the value product in dt. Returns [B, S, H·D] float32.
func attention(q, k, v, mask *Node, dt dtypes.DType) *Node {
	dims := q.Shape().Dimensions
	b, s, h, d := dims[0], dims[1], dims[2], dims[3]
	kvh, c := k.Shape().Dimensions[1], k.Shape().Dimensions[2]
	groups := h / kvh
	// Group the query heads by their key/value head: [B, S, KVH, G, D].
	qg := Reshape(q, b, s, kvh, groups, d)
	scores := einsumF32("bskgd,bkcd->bkgsc", qg, k, dt)
	scores = MulScalar(scores, 1/math.Sqrt(float64(d)))
	m := BroadcastToDims(Reshape(mask, b, 1, 1, s, c), b, kvh, groups, s, c)
	// A large finite negative keeps fully masked rows finite (no NaN).
	scores = Where(m, scores, Scalar(q.Graph(), dtypes.Float32, -math.MaxFloat32))
	probs := Softmax(scores, -1)
	// A query with no visible key (a left-padding position) outputs zeros, as
	// torch's scaled_dot_product_attention does for a fully masked row.
	anyKey := ReduceMax(ConvertDType(m, dtypes.Float32), -1)
	probs = Mul(probs, InsertAxes(anyKey, -1))
	out := ConvertDType(Einsum("bkgsc,bkcd->bskgd", ConvertDType(probs, dt), ConvertDType(v, dt)), dtypes.Float32)
	return Reshape(out, b, s, h*d)
}

// splitHeads reshapes [B, S, H·D] to [B, S, H, D].
func splitHeads(x *Node, heads int) *Node {
	dims := x.Shape().Dimensions
	return Reshape(x, dims[0], dims[1], heads, dims[2]/heads)
}

// KV is one layer's keys and values, [B, KVH, C, D] each (heads before
// positions: the layout the attention products read without a copy), in the
// model dtype.
type KV struct{ K, V *Node }

// headsMajor turns keys or values [B, S, KVH, D] (the projections' layout)
// into the KV layout [B, KVH, S, D].
func headsMajor(x *Node) *Node { return TransposeAllAxes(x, 0, 2, 1, 3) }

// DecoderInput is the input of the Qwen2 decoder stack for S new positions.
type DecoderInput struct {
	Hidden   *Node // [B, S, hidden] input embeddings
	Cos, Sin *Node // [B, S, head_dim] M-RoPE tables (float32)
	// Mask is [B, S, C] bool: new position s may attend to key c (C = S
	// without Attend, or the C keys Attend returns).
	Mask *Node
	// Attend, when set, turns layer i's new keys and values [B, KVH, S, D]
	// (model dtype, rotary applied to keys) into the keys and values the
	// layer attends to, [B, KVH, C, D] — e.g. by writing them into a KV
	// cache and returning the cache. Nil attends to the new positions only.
	Attend func(layer int, k, v *Node) KV
	// Attention, when set, replaces the attention of layer i entirely: from
	// the queries [B, S, H, D] (float32, rotary applied) and this call's
	// keys and values [B, KVH, S, D] (model dtype) it returns the attention
	// output [B, S, H·D] (float32) and the layer's keys and values to report
	// (e.g. its updated cache). Mask and Attend are then unused.
	Attention func(layer int, q, k, v *Node) (*Node, KV)
}

// Decoder runs the Qwen2 decoder layers and the final norm. It returns the
// final hidden states [B, S, hidden] (float32) and each layer's attended keys
// and values (Attend's results, or this call's keys and values).
func (w *Weights) Decoder(in DecoderInput) (*Node, []KV) {
	cfg := w.Config.Text
	h := ConvertDType(in.Hidden, dtypes.Float32) // the residual stream stays float32
	out := make([]KV, cfg.NumLayers)
	for i := range cfg.NumLayers {
		h, out[i] = w.DecoderLayer(i, h, in)
	}
	return w.FinalNorm(h), out
}

// FinalNorm is the decoder's final RMSNorm of hidden states [..., hidden]
// (float32).
func (w *Weights) FinalNorm(h *Node) *Node {
	return rmsNorm(h, w.param("model.norm.weight"), w.Config.Text.RMSNormEps)
}

// DecoderLayer runs decoder layer i on the residual stream h [B, S, hidden]
// (float32) with in's rotary tables and attention (in.Hidden is unused). It
// returns the layer's output residual stream and its attended keys and
// values (as Decoder reports them).
func (w *Weights) DecoderLayer(i int, h *Node, in DecoderInput) (*Node, KV) {
	p := LayerPrefix(i)
	// Self-attention block.
	q, k, v := w.qkvProj(p, h)
	q, kv := w.rotaryQKV(q, k, v, in.Cos, in.Sin)
	var attn *Node
	switch {
	case in.Attention != nil:
		attn, kv = in.Attention(i, q, kv.K, kv.V)
	case in.Attend != nil:
		kv = in.Attend(i, kv.K, kv.V)
		attn = attention(q, kv.K, kv.V, in.Mask, w.DType)
	default:
		attn = attention(q, kv.K, kv.V, in.Mask, w.DType)
	}
	// Output projection and the SwiGLU MLP block, each with its residual add.
	return w.mlpBlock(p, w.attentionOutput(p, h, attn)), kv
}

// LayerPrefix is the name prefix of decoder layer i's weights ("model.layers.i.").
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// qkvProj is the start of the self-attention block of the layer with weight
// prefix p, row by row: the input RMSNorm of the residual stream h [...,
// hidden] (float32) and its q, k and v projections [..., heads·D] (float32).
func (w *Weights) qkvProj(p string, h *Node) (q, k, v *Node) {
	x := rmsNorm(h, w.param(p+"input_layernorm.weight"), w.Config.Text.RMSNormEps)
	return w.Proj(p+"self_attn.q_proj", x), w.Proj(p+"self_attn.k_proj", x), w.Proj(p+"self_attn.v_proj", x)
}

// rotaryQKV splits projections q, k, v [B, S, heads·D] (qkvProj's) into
// heads and applies the rotary embedding of tables cos, sin [B, S, D]: it
// returns the queries [B, S, H, D] (float32) and the keys and values in the
// cache layout (model dtype, heads before positions).
func (w *Weights) rotaryQKV(q, k, v, cos, sin *Node) (*Node, KV) {
	cfg := w.Config.Text
	q = applyRotary(splitHeads(q, cfg.NumHeads), cos, sin)
	k = applyRotary(splitHeads(k, cfg.NumKVHeads), cos, sin)
	v = splitHeads(v, cfg.NumKVHeads)
	return q, KV{K: headsMajor(ConvertDType(k, w.DType)), V: headsMajor(ConvertDType(v, w.DType))}
}

// attentionOutput ends the self-attention block: the output projection of
// the attention output attn [..., H·D] added to the residual stream h [...,
// hidden] (float32), row by row.
func (w *Weights) attentionOutput(p string, h, attn *Node) *Node {
	return Add(h, w.Proj(p+"self_attn.o_proj", attn))
}

// mlpBlock is the SwiGLU MLP block with its residual add on the residual
// stream h [..., hidden] (float32), row by row: h + down(silu(gate(x))·up(x))
// for x the post-attention RMSNorm of h.
func (w *Weights) mlpBlock(p string, h *Node) *Node {
	x := rmsNorm(h, w.param(p+"post_attention_layernorm.weight"), w.Config.Text.RMSNormEps)
	gate := w.Proj(p+"mlp.gate_proj", x)
	up := w.Proj(p+"mlp.up_proj", x)
	return Add(h, w.Proj(p+"mlp.down_proj", Mul(Mul(gate, Sigmoid(gate)), up)))
}

// LMHeadWeight is the output projection [vocab, hidden]: embed_tokens when tied.
func (w *Weights) LMHeadWeight() *Node {
	if w.Config.Text.TieWordEmbeddings {
		return w.param("model.embed_tokens.weight")
	}
	return w.param("lm_head.weight")
}

// Logits projects hidden states [..., hidden] to float32 vocabulary logits as
// a float32 product (the head weight widened, the float32 final hidden states
// unrounded): a bf16 output would round the logits by up to 2⁻⁹ relative and
// flip near-tied top-1 tokens. Only this one projection pays for float32.
func (w *Weights) Logits(h *Node) *Node {
	return linearF32(h, w.LMHeadWeight(), dtypes.Float32)
}

// LogitsInDType projects hidden states to vocabulary logits as a product in
// the model dtype (float32 accumulation inside the dot, the result widened
// to float32): cheaper than Logits for a bf16 model (no float32 copy of the
// head weight), at the cost of bf16 rounding of the logits (about 2⁻⁹
// relative). For a float32 model it equals Logits.
func (w *Weights) LogitsInDType(h *Node) *Node {
	return linear(h, w.LMHeadWeight(), nil)
}

// ChosenLogProbs returns log p(target) [B, S] (float32) for hidden states
// [B, S, hidden] and int targets [B, S], computing the log-sum-exp over the
// vocabulary in chunks of chunk entries so that full-vocabulary float32 logits
// for every position are never materialized at once.
func (w *Weights) ChosenLogProbs(h, targets *Node, chunk int) *Node {
	head := w.LMHeadWeight()
	vocab := head.Shape().Dimensions[0]
	if chunk <= 0 || chunk > vocab {
		chunk = vocab
	}
	// Logit of the chosen token: h · W[target].
	rows := Gather(head, InsertAxes(targets, -1)) // [B, S, hidden]
	hc := ConvertDType(h, dtypes.Float32)
	product := func(part *Node) *Node { return linearF32(h, part, dtypes.Float32) }
	if w.HeadInDType {
		// The chosen logit sees the same rounded hidden state as the chunks.
		hc = ConvertDType(ConvertDType(h, head.DType()), dtypes.Float32)
		product = func(part *Node) *Node { return linear(h, part, nil) }
	}
	chosen := ReduceSum(Mul(hc, ConvertDType(rows, dtypes.Float32)), -1)
	// Streaming log-sum-exp over vocabulary chunks (slices of the constant head
	// weight only, so no Slice lies on the gradient path to adapter weights).
	var lse *Node
	for start := 0; start < vocab; start += chunk {
		end := min(start+chunk, vocab)
		part := product(Slice(head, AxisRange(start, end)))
		m := StopGradient(ReduceMax(part, -1))
		partLSE := Add(Log(ReduceSum(Exp(Sub(part, InsertAxes(m, -1))), -1)), m)
		if lse == nil {
			lse = partLSE
		} else {
			lse = LogAddExp(lse, partLSE)
		}
	}
	return Sub(chosen, lse)
}
