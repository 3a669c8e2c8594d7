package main

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

// runForward implements `mmft forward`: the Qwen2-VL forward pass on inputs
// saved as safetensors, writing logits, image features and M-RoPE positions.
func runForward(c *cli, args []string) error {
	fs := c.newFlags("forward", "--model DIR --inputs IN.safetensors --out OUT.safetensors [--adapter DIR] [--device cpu|gpu] [--dtype float32|bfloat16]", `
Runs the Qwen2-VL forward pass on a saved batch. IN holds input_ids and
optionally attention_mask, pixel_values and image_grid_thw (transformers'
names); OUT receives logits [B,L,V] and image_embeds as float32, position_ids
[3,B,L] and rope_deltas [B,1] as int64.`)
	model := fs.String("model", "", "model folder or Hub id (config.json + safetensors weights, Hub or transformers 5 layout)")
	inputs := fs.String("inputs", "", "input safetensors file")
	out := fs.String("out", "", "output safetensors file")
	adapter := fs.String("adapter", "", "optional PEFT LoRA adapter folder")
	device := fs.String("device", "cpu", "compute device: cpu or gpu")
	dtype := fs.String("dtype", "float32", "weights/activations dtype: float32 or bfloat16")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--model", *model}, {"--inputs", *inputs}, {"--out", *out}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 || fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft forward: %s required (and no positional arguments); see mmft forward --help\n", strings.Join(missing, ", "))
		return errUsage
	}
	opts := qwen2vl.Options{}
	switch strings.ToLower(*dtype) {
	case "float32", "f32":
		opts.DType = dtypes.Float32
	case "bfloat16", "bf16":
		opts.DType = dtypes.BFloat16
	default:
		fmt.Fprintf(c.stderr, "mmft forward: --dtype %q: use float32 or bfloat16\n", *dtype)
		return errUsage
	}
	in, err := safetensors.Open(*inputs)
	if err != nil {
		return fmt.Errorf("reading inputs: %w", err)
	}
	defer in.Close()
	batch, err := qwen2vl.ReadBatch(in)
	if err != nil {
		return fmt.Errorf("%s: %w", *inputs, err)
	}
	be, err := compute.New(compute.Options{Device: *device})
	if err != nil {
		return err
	}
	dir, err := c.resolveModel(*model, "*.json", "*.safetensors")
	if err != nil {
		return err
	}
	m, err := qwen2vl.Load(be.Backend, dir, opts)
	if err != nil {
		return err
	}
	var l *qwen2vl.LoRA
	if *adapter != "" {
		ad, err := lora.Load(*adapter)
		if err != nil {
			return err
		}
		if l, err = m.LoRAFromAdapter(ad); err != nil {
			return fmt.Errorf("adapter %s: %w", *adapter, err)
		}
	}
	eng, err := engine.New(m, engine.Options{})
	if err != nil {
		return err
	}
	res, err := eng.Forward(batch, l)
	if err != nil {
		return err
	}
	ts, err := res.Tensors()
	if err != nil {
		return err
	}
	if err := safetensors.Write(*out, ts, map[string]string{"producer": "mmft forward"}); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "mmft forward: wrote %s (batch %d × %d tokens, %d images)\n", *out, len(batch.InputIDs), len(batch.InputIDs[0]), len(batch.Grids))
	return nil
}
