// Package mmft is what notebook cells and Go programs call to fine-tune a
// vision-language model with GRPO and LoRA: load a model (a folder, a Hub
// id, or the embedded tiny default) and a dataset, render prompts, run
// rollouts, train, evaluate and save adapters. It runs in-process; the
// notebook worker holds a Session for cells that come and go.
package mmft

import (
	"context"
	"fmt"
	"io"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/hub"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/qwen2vl"
)

// Model is a loaded model with its processor and rollout engine.
type Model struct {
	// Ref is what was asked for: "embedded", a folder or a Hub id.
	Ref string
	// Dir is the model folder (for the embedded default, its written-out files).
	Dir string
	// Embedded is true for the built-in tiny default (random weights).
	Embedded  bool
	Model     *qwen2vl.Model
	Processor *processor.Processor
	Engine    *engine.Engine
}

// ModelOptions configure LoadModel.
type ModelOptions struct {
	// DType is the weights' and matmuls' dtype: "float32", "bfloat16" or ""
	// (bfloat16 on a GPU, float32 on the CPU).
	DType string
	// Seed seeds the embedded default's random weights.
	Seed uint64
	// Slots is the engine's decode batch (0: 64 on a GPU, 16 on the CPU).
	Slots int
	// Progress receives download progress of Hub models (nil: none).
	Progress io.Writer
	// Device is the backend device the weights and the rollout engine are
	// placed on: the layout's rollout GPU (default 0).
	Device int
}

// LoadModel loads ref — "embedded" (the built-in tiny Qwen2-VL with random
// weights), a local model folder, or a Hugging Face Hub id (downloaded into
// the HF cache, or found there offline) — on the backend, with its processor
// and a rollout engine.
func LoadModel(ctx context.Context, be *compute.Backend, ref string, o ModelOptions) (*Model, error) {
	dt := dtypes.Float32
	switch o.DType {
	case "", "auto":
		if be.Device != compute.CPU {
			dt = dtypes.BFloat16
		}
	case "float32", "f32":
	case "bfloat16", "bf16":
		dt = dtypes.BFloat16
	default:
		return nil, fmt.Errorf("mmft: dtype %q: use float32 or bfloat16", o.DType)
	}
	if n := be.Backend.NumDevices(); o.Device < 0 || o.Device >= n {
		return nil, fmt.Errorf("mmft: model device %d: the backend (%s) has %d device(s), numbered 0 to %d", o.Device, be.Device, n, n-1)
	}
	dev := backends.DeviceNum(o.Device)
	out := &Model{Ref: ref}
	var err error
	if ref == "" || embedded.IsName(ref) {
		out.Embedded = true
		if out.Dir, err = embedded.ModelDir(""); err != nil {
			return nil, err
		}
		cfg, err := embedded.Config()
		if err != nil {
			return nil, err
		}
		out.Model, err = qwen2vl.LoadFrom(be.Backend, cfg, embedded.RandomWeights(cfg, o.Seed), qwen2vl.Options{DType: dt, Device: dev})
		if err != nil {
			return nil, fmt.Errorf("mmft: embedded model: %w", err)
		}
	} else {
		if out.Dir, err = hub.Resolve(ctx, ref, hub.Options{Progress: o.Progress}); err != nil {
			return nil, fmt.Errorf("mmft: model %s: %w", ref, err)
		}
		cfg, err := qwen2vl.LoadConfig(out.Dir)
		if err != nil {
			return nil, fmt.Errorf("mmft: model %s: %w", ref, err)
		}
		if err := compute.CheckMemory("the weights of "+ref, weightBytes(cfg, dt), be.AvailableMemory()); err != nil {
			return nil, err
		}
		if out.Model, err = qwen2vl.Load(be.Backend, out.Dir, qwen2vl.Options{DType: dt, Device: dev}); err != nil {
			return nil, fmt.Errorf("mmft: model %s: %w", ref, err)
		}
	}
	if out.Processor, err = processor.Load(out.Dir); err != nil {
		return nil, fmt.Errorf("mmft: model %s: %w", ref, err)
	}
	slots := o.Slots
	if slots == 0 {
		slots = 16
		if be.Device != compute.CPU {
			slots = 64
		}
	}
	sp := out.Processor.Tokenizer().Special()
	var eos []int32
	for _, id := range []int{sp.EOS, sp.ImEnd, sp.EndOfText} {
		if id >= 0 && !containsID(eos, int32(id)) {
			eos = append(eos, int32(id))
		}
	}
	tok := out.Processor.Tokenizer()
	// The KV cache of a Generate call is checked against the device's free
	// memory (the weights are already on it) before any is taken.
	out.Engine, err = engine.New(out.Model, engine.Options{Slots: slots, EOSIDs: eos, MemoryBytes: be.AvailableMemory(), Decode: func(ids []int32) string {
		xs := make([]int, len(ids))
		for i, id := range ids {
			xs[i] = int(id)
		}
		return tok.Decode(xs, true)
	}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// weightBytes is the memory the model's weights take in dtype dt.
func weightBytes(cfg qwen2vl.Config, dt dtypes.DType) int64 {
	var n int64
	for _, p := range cfg.ParamSpecs() {
		k := int64(1)
		for _, d := range p.Shape {
			k *= int64(d)
		}
		n += k
	}
	return n * int64(dt.Size())
}

func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
