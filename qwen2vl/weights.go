package qwen2vl

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/x448/float16"
)

// ParamSpec is one model parameter: its canonical (Hub) name and shape.
type ParamSpec struct {
	Name  string
	Shape []int
}

// ParamSpecs lists every parameter of the model, in a fixed order, under its
// canonical name (the Hub checkpoint key).
func (c Config) ParamSpecs() []ParamSpec {
	t, v := c.Text, c.Vision
	var out []ParamSpec
	add := func(name string, shape ...int) { out = append(out, ParamSpec{name, shape}) }
	hd := t.HeadDim()
	add("model.embed_tokens.weight", t.VocabSize, t.HiddenSize)
	for i := range t.NumLayers {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", t.HiddenSize)
		add(p+"self_attn.q_proj.weight", t.NumHeads*hd, t.HiddenSize)
		add(p+"self_attn.q_proj.bias", t.NumHeads*hd)
		add(p+"self_attn.k_proj.weight", t.NumKVHeads*hd, t.HiddenSize)
		add(p+"self_attn.k_proj.bias", t.NumKVHeads*hd)
		add(p+"self_attn.v_proj.weight", t.NumKVHeads*hd, t.HiddenSize)
		add(p+"self_attn.v_proj.bias", t.NumKVHeads*hd)
		add(p+"self_attn.o_proj.weight", t.HiddenSize, t.NumHeads*hd)
		add(p+"post_attention_layernorm.weight", t.HiddenSize)
		add(p+"mlp.gate_proj.weight", t.IntermediateSize, t.HiddenSize)
		add(p+"mlp.up_proj.weight", t.IntermediateSize, t.HiddenSize)
		add(p+"mlp.down_proj.weight", t.HiddenSize, t.IntermediateSize)
	}
	add("model.norm.weight", t.HiddenSize)
	if !t.TieWordEmbeddings {
		add("lm_head.weight", t.VocabSize, t.HiddenSize)
	}
	add("visual.patch_embed.proj.weight", v.EmbedDim, v.InChannels, v.TemporalPatchSize, v.PatchSize, v.PatchSize)
	mlp := v.EmbedDim * v.MLPRatio
	for i := range v.Depth {
		p := fmt.Sprintf("visual.blocks.%d.", i)
		add(p+"norm1.weight", v.EmbedDim)
		add(p+"norm1.bias", v.EmbedDim)
		add(p+"attn.qkv.weight", 3*v.EmbedDim, v.EmbedDim)
		add(p+"attn.qkv.bias", 3*v.EmbedDim)
		add(p+"attn.proj.weight", v.EmbedDim, v.EmbedDim)
		add(p+"attn.proj.bias", v.EmbedDim)
		add(p+"norm2.weight", v.EmbedDim)
		add(p+"norm2.bias", v.EmbedDim)
		add(p+"mlp.fc1.weight", mlp, v.EmbedDim)
		add(p+"mlp.fc1.bias", mlp)
		add(p+"mlp.fc2.weight", v.EmbedDim, mlp)
		add(p+"mlp.fc2.bias", v.EmbedDim)
	}
	merged := v.EmbedDim * v.SpatialMergeSize * v.SpatialMergeSize
	add("visual.merger.ln_q.weight", v.EmbedDim)
	add("visual.merger.ln_q.bias", v.EmbedDim)
	add("visual.merger.mlp.0.weight", merged, merged)
	add("visual.merger.mlp.0.bias", merged)
	add("visual.merger.mlp.2.weight", v.HiddenSize, merged)
	add("visual.merger.mlp.2.bias", v.HiddenSize)
	return out
}

// CanonicalName maps a checkpoint key in either the Hub layout ("model.*",
// "visual.*", "lm_head.*") or transformers 5's layout
// ("model.language_model.*", "model.visual.*") to the canonical Hub key.
func CanonicalName(key string) string {
	switch {
	case strings.HasPrefix(key, "model.language_model."):
		return "model." + strings.TrimPrefix(key, "model.language_model.")
	case strings.HasPrefix(key, "model.visual."):
		return strings.TrimPrefix(key, "model.")
	case strings.HasPrefix(key, "model.lm_head."):
		return strings.TrimPrefix(key, "model.")
	}
	return key
}

// TensorSource is a read-only set of named tensors, such as a safetensors
// file or a sharded checkpoint folder, whose bytes are memory-mapped.
type TensorSource interface {
	// Names lists the tensors' keys.
	Names() []string
	// Raw returns a tensor's safetensors dtype ("F32", "BF16", "F16", ...),
	// shape and little-endian bytes.
	Raw(name string) (dtype string, shape []int, data []byte, err error)
}

// plan maps each canonical parameter to its key in src, reporting every
// missing, unexpected or mis-shaped tensor (and unsupported dtype) at once.
func plan(cfg Config, src TensorSource) (map[string]string, error) {
	byCanon := map[string]string{}
	var problems []string
	for _, key := range src.Names() {
		canon := CanonicalName(key)
		if prev, dup := byCanon[canon]; dup {
			problems = append(problems, fmt.Sprintf("both %q and %q name %s", prev, key, canon))
			continue
		}
		byCanon[canon] = key
	}
	want := map[string]bool{}
	for _, spec := range cfg.ParamSpecs() {
		want[spec.Name] = true
		key, ok := byCanon[spec.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("missing %s %v", spec.Name, spec.Shape))
			continue
		}
		dt, shape, _, err := src.Raw(key)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", key, err))
			continue
		}
		if !slices.Equal(shape, spec.Shape) {
			problems = append(problems, fmt.Sprintf("%s has shape %v, the config needs %v", key, shape, spec.Shape))
		}
		if dt != "F32" && dt != "BF16" && dt != "F16" {
			problems = append(problems, fmt.Sprintf("%s has dtype %s (supported: F32, BF16, F16)", key, dt))
		}
	}
	var unexpected []string
	for canon, key := range byCanon {
		if want[canon] {
			continue
		}
		// A tied checkpoint may still carry a copy of the LM head.
		if canon == "lm_head.weight" && cfg.Text.TieWordEmbeddings {
			continue
		}
		unexpected = append(unexpected, key)
	}
	sort.Strings(unexpected)
	for _, key := range unexpected {
		problems = append(problems, "unexpected "+key)
	}
	if len(problems) > 0 {
		return nil, problemsError("checkpoint does not match the Qwen2-VL config", problems)
	}
	return byCanon, nil
}

// toDevice converts one tensor's bytes to dtype and places it on the backend's
// device, freeing the host copy (so loading never holds two models in RAM).
func toDevice(backend backends.Backend, device backends.DeviceNum, srcDType string, shape []int, data []byte, dt dtypes.DType) (*tensors.Tensor, error) {
	t := tensors.FromShape(shapes.Make(dt, shape...))
	n := t.Size()
	var convErr error
	t.MustMutableFlatData(func(flat any) {
		switch dst := flat.(type) {
		case []float32:
			for i := range n {
				dst[i] = readF32(srcDType, data, i)
			}
		case []bfloat16.BFloat16:
			if srcDType == "BF16" {
				if hostLittleEndian {
					copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 2*n), data[:2*n])
					return
				}
				for i := range n {
					dst[i] = bfloat16.FromBits(binary.LittleEndian.Uint16(data[2*i:]))
				}
				return
			}
			for i := range n {
				dst[i] = bfloat16.FromFloat32(readF32(srcDType, data, i))
			}
		default:
			convErr = fmt.Errorf("unsupported model dtype %s (use Float32 or BFloat16)", dt)
		}
	})
	if convErr != nil {
		return nil, convErr
	}
	if err := t.MaterializeOnDevice(backend, true, device); err != nil {
		return nil, err
	}
	t.FinalizeLocal()
	return t, nil
}

// hostLittleEndian is true on little-endian hosts, where BF16 checkpoint
// bytes are the in-memory layout of []bfloat16.BFloat16.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// readF32 reads element i of little-endian F32/BF16/F16 data as float32.
func readF32(dtype string, data []byte, i int) float32 {
	switch dtype {
	case "BF16":
		return math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[2*i:])) << 16)
	case "F16":
		return float16.Frombits(binary.LittleEndian.Uint16(data[2*i:])).Float32()
	default:
		return math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
}
