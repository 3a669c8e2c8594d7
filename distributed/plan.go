package distributed

import (
	"fmt"
	"io"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

// PlanConfig is what the memory plan is computed from.
type PlanConfig struct {
	// Model is the model's configuration.
	Model qwen2vl.Config
	// Layout places rollouts and training.
	Layout Layout
	// LoRA is the adapter's configuration (rank, targets).
	LoRA *lora.Config
	// WeightDType is the base weights' dtype (bfloat16 or float32).
	WeightDType dtypes.DType
	// TrainSequences is the number of sequences of one training micro-batch
	// over all training GPUs (batch_size × num_generations ÷ accumulation).
	TrainSequences int
	// SeqLen is the tokens per training sequence (prompt + completion).
	SeqLen int
	// RolloutSequences is the sequences one rollout GPU decodes at once.
	RolloutSequences int
	// RolloutLen is the KV cache capacity per sequence (prompt + new tokens).
	RolloutLen int
	// VocabChunk is the log-prob graphs' vocabulary chunk (0: 8192).
	VocabChunk int
	// StepLayout is the GRPO step's layout, which decides the activation
	// estimate: "" or "full" (one program holds the activations of the
	// whole micro-batch), "shared" (the same, each group's prompt computed
	// once) or "recompute" (shared prompt, layer by layer: only the residual
	// streams between layers are kept, plus one layer's or the LM head's
	// working set).
	StepLayout string
	// PromptLen is the prompt's part of SeqLen and GroupSize the completions
	// per prompt (num_generations), for the shared and recompute layouts.
	PromptLen, GroupSize int
	// Capacity is each GPU's memory in bytes (0: unknown, not checked).
	Capacity int64
}

// Phase says when a part of a GPU's memory is held.
type Phase string

// Phases of a part.
const (
	// Always: held for the whole run (weights, adapters, optimizer state).
	Always Phase = "always"
	// Training: held while a training step runs.
	Training Phase = "train"
	// Rollouts: held while the engine generates.
	Rollouts Phase = "rollout"
)

// Part is one item of a GPU's memory.
type Part struct {
	// Name says what it is.
	Name string `json:"name"`
	// Bytes is its size on this GPU.
	Bytes int64 `json:"bytes"`
	// Phase says when it is held.
	Phase Phase `json:"phase"`
	// Estimate marks sizes that are estimates (activations, working sets)
	// rather than exact tensor sizes.
	Estimate bool `json:"estimate,omitempty"`
}

// GPUPlan is one GPU's memory.
type GPUPlan struct {
	// GPU is the device number.
	GPU int `json:"gpu"`
	// Role is "colocated", "rollout" or "train".
	Role string `json:"role"`
	// Parts lists its memory.
	Parts []Part `json:"parts"`
	// Peak is Always + the larger of Training and Rollouts.
	Peak int64 `json:"peak_bytes"`
}

// Plan is the per-GPU memory of a layout.
type Plan struct {
	// Layout is the layout planned.
	Layout Layout `json:"layout"`
	// GPUs lists each used GPU's memory, in device order.
	GPUs []GPUPlan `json:"gpus"`
	// Capacity is the GPU memory the plan was checked against (0: none).
	Capacity int64 `json:"capacity_bytes,omitempty"`
}

// NewPlan computes each GPU's memory for c. Parameter, adapter, gradient
// and Adam moment sizes are exact: each tensor's shard under the FSDP
// decisions (FSDP.Spec) for the training mesh. Activations, the all-gathered
// weights of the layers in flight and the rollout KV cache are estimates
// (see docs/DISTRIBUTED.md).
func NewPlan(c PlanConfig) (Plan, error) {
	switch {
	case c.LoRA == nil:
		return Plan{}, fmt.Errorf("distributed: plan: no LoRA configuration")
	case len(c.Layout.Train) == 0 || len(c.Layout.Rollout) == 0:
		return Plan{}, fmt.Errorf("distributed: plan: layout %v lacks rollout or training GPUs", c.Layout)
	case c.TrainSequences < 1 || c.SeqLen < 1 || c.RolloutSequences < 1 || c.RolloutLen < 1:
		return Plan{}, fmt.Errorf("distributed: plan: train sequences %d, sequence length %d, rollout sequences %d and rollout length %d must all be at least 1",
			c.TrainSequences, c.SeqLen, c.RolloutSequences, c.RolloutLen)
	}
	wdt := c.WeightDType
	if wdt == dtypes.InvalidDType {
		wdt = dtypes.BFloat16
	}
	if wdt != dtypes.BFloat16 && wdt != dtypes.Float32 {
		return Plan{}, fmt.Errorf("distributed: plan: weight dtype %s: use bfloat16 or float32", wdt)
	}
	chunk := c.VocabChunk
	if chunk <= 0 {
		chunk = 8192
	}
	n := len(c.Layout.Train)
	mesh, err := NewMesh(n)
	if err != nil {
		return Plan{}, err
	}
	f := FSDP{Mesh: mesh}
	specs := c.Model.ParamSpecs()
	shapeOf := map[string][]int{}
	for _, p := range specs {
		shapeOf[p.Name] = p.Shape
	}
	targets, err := c.LoRA.Targets(shapeOf)
	if err != nil {
		return Plan{}, fmt.Errorf("distributed: plan: %w", err)
	}

	// Exact sizes: whole and per training GPU.
	var weightsWhole, weightsShard, adapterWhole, adapterShard, layerMax int64
	layer := map[string]int64{}
	for _, p := range specs {
		sh := shapes.Make(wdt, p.Shape...)
		weightsWhole += int64(sh.Memory())
		spec, err := f.Spec(sh, Param)
		if err != nil {
			return Plan{}, err
		}
		weightsShard += ShardedBytes(spec, sh)
		if i := strings.Index(p.Name, "layers."); i >= 0 {
			key := p.Name[:i+len("layers.")] + strings.SplitN(p.Name[i+len("layers."):], ".", 2)[0]
			layer[key] += int64(sh.Memory())
			layerMax = max(layerMax, layer[key])
		}
	}
	for _, t := range targets {
		r, _, err := c.LoRA.RankAlpha(t)
		if err != nil {
			return Plan{}, fmt.Errorf("distributed: plan: %w", err)
		}
		w := shapeOf[t+".weight"]
		if len(w) != 2 {
			return Plan{}, fmt.Errorf("distributed: plan: LoRA target %s has no 2-D weight", t)
		}
		for _, dims := range [][]int{{r, w[1]}, {w[0], r}} {
			sh := shapes.Make(dtypes.Float32, dims...)
			adapterWhole += int64(sh.Memory())
			spec, err := f.Spec(sh, Param)
			if err != nil {
				return Plan{}, err
			}
			adapterShard += ShardedBytes(spec, sh)
		}
	}

	// Estimates.
	tc := c.Model.Text
	seqsPerGPU := (c.TrainSequences + n - 1) / n
	tokens := int64(seqsPerGPU) * int64(c.SeqLen)
	perTokenLayer := int64(4) * (12*int64(tc.HiddenSize) + 4*int64(tc.IntermediateSize) + 2*int64(tc.NumHeads)*int64(c.SeqLen))
	activationParts := []Part{{Name: fmt.Sprintf("activations (%d seq × %d tokens)", seqsPerGPU, c.SeqLen),
		Bytes: tokens*perTokenLayer*int64(tc.NumLayers) + 3*tokens*int64(min(chunk, tc.VocabSize))*4, Phase: Training, Estimate: true}}
	switch c.StepLayout {
	case "", "full":
	case "shared", "recompute":
		if c.PromptLen < 1 || c.PromptLen >= c.SeqLen || c.GroupSize < 1 {
			return Plan{}, fmt.Errorf("distributed: plan: the %s step layout needs a prompt length in 1…%d and a group size ≥ 1 (got %d and %d)",
				c.StepLayout, c.SeqLen-1, c.PromptLen, c.GroupSize)
		}
		// Each group's prompt runs once; completions attend to it.
		groups := int64((seqsPerGPU + c.GroupSize - 1) / c.GroupSize)
		tail := int64(seqsPerGPU) * int64(c.SeqLen-c.PromptLen)
		tokens = groups*int64(c.PromptLen) + tail
		// The LM head's program keeps every vocabulary chunk's float32
		// logits of the completion positions for its backward pass (on an
		// H200, 3.39 GB of temporaries for 4,096 positions of Qwen2-VL's
		// 151,936 entries: 1.36 × those logits).
		head := tail*int64(tc.VocabSize)*4*5/4 + 3*tail*int64(min(chunk, tc.VocabSize))*4
		if c.StepLayout == "shared" {
			activationParts = []Part{{Name: fmt.Sprintf("activations (%d seq × %d tokens, shared prompts)", seqsPerGPU, c.SeqLen),
				Bytes: tokens*perTokenLayer*int64(tc.NumLayers) + head, Phase: Training, Estimate: true}}
			break
		}
		activationParts = []Part{
			{Name: fmt.Sprintf("residual streams between layers (%d × %d tokens)", tc.NumLayers, tokens),
				Bytes: int64(tc.NumLayers) * tokens * int64(tc.HiddenSize) * 4, Phase: Training, Estimate: true},
			{Name: "one layer recomputed, or the LM head (larger)",
				Bytes: max(tokens*perTokenLayer, head), Phase: Training, Estimate: true},
		}
	default:
		return Plan{}, fmt.Errorf("distributed: plan: step layout %q: want full, shared or recompute", c.StepLayout)
	}
	kv := 2 * int64(tc.NumLayers) * int64(tc.NumKVHeads) * int64(tc.HeadDim()) * int64(wdt.Size()) *
		int64(c.RolloutSequences) * int64(c.RolloutLen)
	logits := int64(c.RolloutSequences) * int64(tc.VocabSize) * 4
	gathered := 2 * layerMax
	if n == 1 {
		gathered = 0 // nothing to gather
	}

	trainParts := func(shared bool) []Part {
		w := fmt.Sprintf("base weights (%s, 1/%d each)", wdt, n)
		if shared {
			w = fmt.Sprintf("base weights (%s, shared with the engine)", wdt)
		}
		ps := []Part{
			{Name: w, Bytes: weightsShard, Phase: Always},
			{Name: "LoRA adapters (f32)", Bytes: adapterShard, Phase: Always},
			{Name: "Adam moments m, v (f32)", Bytes: 2 * adapterShard, Phase: Always},
			{Name: "LoRA gradients (f32)", Bytes: adapterShard, Phase: Training},
		}
		ps = append(ps, activationParts...)
		if gathered > 0 {
			ps = append(ps, Part{Name: "all-gathered weights of 2 layers in flight", Bytes: gathered, Phase: Training, Estimate: true})
		}
		return ps
	}
	rolloutParts := func(shared bool) []Part {
		var ps []Part
		if !shared {
			ps = append(ps, Part{Name: fmt.Sprintf("base weights (%s, whole)", wdt), Bytes: weightsWhole, Phase: Always},
				Part{Name: "LoRA adapters (f32, synced copy)", Bytes: adapterWhole, Phase: Always})
		}
		return append(ps,
			Part{Name: fmt.Sprintf("KV cache (%d seq × %d tokens)", c.RolloutSequences, c.RolloutLen), Bytes: kv, Phase: Rollouts, Estimate: true},
			Part{Name: "sampling logits (f32)", Bytes: logits, Phase: Rollouts, Estimate: true})
	}

	p := Plan{Layout: c.Layout, Capacity: c.Capacity}
	if c.Layout.Colocated() {
		p.GPUs = append(p.GPUs, GPUPlan{GPU: c.Layout.Train[0], Role: "colocated", Parts: append(trainParts(true), rolloutParts(true)...)})
	} else {
		for _, g := range c.Layout.Train {
			p.GPUs = append(p.GPUs, GPUPlan{GPU: g, Role: "train", Parts: trainParts(false)})
		}
		for _, g := range c.Layout.Rollout {
			p.GPUs = append(p.GPUs, GPUPlan{GPU: g, Role: "rollout", Parts: rolloutParts(false)})
		}
	}
	for i := range p.GPUs {
		var by = map[Phase]int64{}
		for _, part := range p.GPUs[i].Parts {
			by[part.Phase] += part.Bytes
		}
		p.GPUs[i].Peak = by[Always] + max(by[Training], by[Rollouts])
	}
	return p, nil
}

// Check returns an error naming every GPU whose peak exceeds Capacity.
func (p Plan) Check() error {
	if p.Capacity <= 0 {
		return nil
	}
	var over []string
	for _, g := range p.GPUs {
		if g.Peak > p.Capacity {
			over = append(over, fmt.Sprintf("GPU %d (%s) needs %s", g.GPU, g.Role, compute.FormatBytes(g.Peak)))
		}
	}
	if over != nil {
		return fmt.Errorf("distributed: plan: %s of %s: train on more GPUs, shorten sequences or lower the batch", strings.Join(over, ", "), compute.FormatBytes(p.Capacity))
	}
	return nil
}

// Write prints the plan as a table, one block per GPU.
func (p Plan) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "layout: %v\n", p.Layout)
	for _, g := range p.GPUs {
		fmt.Fprintf(&b, "GPU %d (%s)\n", g.GPU, g.Role)
		for _, part := range g.Parts {
			est := ""
			if part.Estimate {
				est = " ~"
			}
			fmt.Fprintf(&b, "  %-52s %10s%-2s %s\n", part.Name, compute.FormatBytes(part.Bytes), est, part.Phase)
		}
		fmt.Fprintf(&b, "  %-52s %10s\n", "peak (always + max(train, rollout))", compute.FormatBytes(g.Peak))
		if p.Capacity > 0 {
			fmt.Fprintf(&b, "  %-52s %9.0f%%\n", "of capacity "+compute.FormatBytes(p.Capacity), 100*float64(g.Peak)/float64(p.Capacity))
		}
	}
	b.WriteString("(~ estimate; the other sizes are exact shards under the FSDP decisions)\n")
	_, err := io.WriteString(w, b.String())
	return err
}
