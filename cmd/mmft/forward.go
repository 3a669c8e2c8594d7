package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/internal/atomicfile"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

// runForward implements `mmft forward`: the Qwen2-VL forward pass on inputs
// saved as safetensors, writing logits, image features and M-RoPE positions.
func runForward(c *cli, args []string) error {
	fs := c.newFlags("forward", "--model DIR --inputs IN.safetensors --out OUT.safetensors [--adapter DIR] [--device cpu|gpu|auto] [--plugin FILE] [--cpu-parallelism N] [--dtype float32|bfloat16]", `
Runs the Qwen2-VL forward pass on a saved batch. IN holds input_ids and
optionally attention_mask, pixel_values and image_grid_thw (transformers'
names); OUT receives logits [B,L,V] and image_embeds as float32, position_ids
[3,B,L] and rope_deltas [B,1] as int64.

Before loading the model it checks that OUT can be written, that the batch is
sound (no longer than the config's max_position_embeddings, attention_mask of
0 and 1 with a token in every row, finite pixel_values) and that the pass fits
in the device's available memory.`)
	model := fs.String("model", "", "model folder or Hub id (config.json + safetensors weights, Hub or transformers 5 layout)")
	inputs := fs.String("inputs", "", "input safetensors file")
	out := fs.String("out", "", "output safetensors file")
	adapter := fs.String("adapter", "", "optional PEFT LoRA adapter folder")
	var dev compute.Flags
	dev.Register(fs)
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
	if len(missing) > 0 {
		fmt.Fprintf(c.stderr, "mmft forward: %s required; see mmft forward --help\n", strings.Join(missing, ", "))
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft forward: unexpected argument %q (flags only); see mmft forward --help\n", fs.Arg(0))
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
	devOpts, err := dev.Options()
	if err != nil {
		return err
	}
	if err := atomicfile.CheckDest(*out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if st, err := os.Stat(*inputs); err != nil {
		return fmt.Errorf("--inputs: %w", err)
	} else if st.IsDir() {
		return fmt.Errorf("--inputs %s is a folder: give the .safetensors file of the batch", *inputs)
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
	dir, err := c.resolveModel(*model, "*.json", "*.safetensors")
	if err != nil {
		return err
	}
	cfg, err := qwen2vl.LoadConfig(dir)
	if err != nil {
		return err
	}
	if err := qwen2vl.CheckBatch(cfg, batch); err != nil {
		return fmt.Errorf("%s: %w", *inputs, err)
	}
	be, err := compute.New(devOpts)
	if err != nil {
		return err
	}
	defer be.Finalize()
	what := fmt.Sprintf("the forward pass of %d × %d tokens with %d images in %s", len(batch.InputIDs), len(batch.InputIDs[0]), len(batch.Grids), strings.ToLower(opts.DType.String()))
	if err := compute.CheckMemory(what, qwen2vl.ForwardBytes(cfg, batch, opts.DType), be.AvailableMemory()); err != nil {
		return fmt.Errorf("%w; use a shorter or smaller batch", err)
	}
	m, err := qwen2vl.Load(be.Backend, dir, opts)
	if err != nil {
		return err
	}
	l, err := adapterFor(m, *adapter)
	if err != nil {
		return err
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
