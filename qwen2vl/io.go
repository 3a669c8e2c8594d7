package qwen2vl

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/safetensors"
)

// ReadBatch reads a batch saved as safetensors in transformers' names:
// input_ids [B, L] and optionally attention_mask [B, L] (integers),
// pixel_values [patches, C·T·p·p] (float) and image_grid_thw [images, 3].
func ReadBatch(r safetensors.Reader) (Batch, error) {
	var b Batch
	ids, shape, err := readInts(r, "input_ids", true)
	if err != nil {
		return b, err
	}
	if len(shape) != 2 {
		return b, fmt.Errorf("input_ids has shape %v, want [batch, length]", shape)
	}
	b.InputIDs = toRows(ids, shape)
	if mask, mshape, err := readInts(r, "attention_mask", false); err != nil {
		return b, err
	} else if mask != nil {
		if len(mshape) != 2 || mshape[0] != shape[0] || mshape[1] != shape[1] {
			return b, fmt.Errorf("attention_mask has shape %v, input_ids %v", mshape, shape)
		}
		b.AttentionMask = toRows(mask, mshape)
	}
	grid, gshape, err := readInts(r, "image_grid_thw", false)
	if err != nil {
		return b, err
	}
	if grid != nil {
		if len(gshape) != 2 || gshape[1] != 3 {
			return b, fmt.Errorf("image_grid_thw has shape %v, want [images, 3]", gshape)
		}
		for i := range gshape[0] {
			b.Grids = append(b.Grids, Grid{int(grid[3*i]), int(grid[3*i+1]), int(grid[3*i+2])})
		}
		info, ok := r.Tensor("pixel_values")
		if !ok {
			return b, fmt.Errorf("image_grid_thw is present but pixel_values is missing")
		}
		if b.PixelValues, err = safetensors.ToFloat32(info); err != nil {
			return b, fmt.Errorf("pixel_values: %w", err)
		}
	}
	return b, nil
}

// readInts reads an integer tensor as int32 (token ids, masks and grid sizes
// all fit; a value that does not is an error rather than wrapping around).
func readInts(r safetensors.Reader, name string, required bool) ([]int32, []int, error) {
	info, ok := r.Tensor(name)
	if !ok {
		if required {
			return nil, nil, fmt.Errorf("the inputs hold no %s tensor", name)
		}
		return nil, nil, nil
	}
	v, err := safetensors.ToInt32(info)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return v, info.Shape, nil
}

// toRows splits a row-major [rows, cols] tensor into rows.
func toRows(flat []int32, shape []int) [][]int32 {
	out := make([][]int32, shape[0])
	for i := range out {
		out[i] = flat[i*shape[1] : (i+1)*shape[1] : (i+1)*shape[1]]
	}
	return out
}

// Tensors returns the forward outputs in transformers' names and layouts:
// logits [B, L, V] and image_embeds [N, hidden] as float32, position_ids
// [3, B, L] and rope_deltas [B, 1] as int64.
func (o *ForwardOutput) Tensors() ([]safetensors.NamedTensor, error) {
	var out []safetensors.NamedTensor
	for _, named := range []struct {
		name string
		t    *tensors.Tensor
	}{{"logits", o.Logits}, {"image_embeds", o.ImageEmbeds}} {
		if named.t == nil {
			continue
		}
		v, err := float32Values(named.t)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", named.name, err)
		}
		out = append(out, safetensors.FromFloat32(named.name, named.t.Shape().Dimensions, v))
	}
	b := len(o.RopeDeltas)
	l := 0
	if b > 0 {
		l = len(o.PositionIDs[0][0])
	}
	pos := make([]int64, 0, 3*b*l)
	for a := range 3 {
		for i := range b {
			pos = append(pos, o.PositionIDs[a][i]...)
		}
	}
	out = append(out, safetensors.FromInt64("position_ids", []int{3, b, l}, pos))
	out = append(out, safetensors.FromInt64("rope_deltas", []int{b, 1}, append([]int64(nil), o.RopeDeltas...)))
	return out, nil
}

// float32Values copies a float32 or bfloat16 tensor to float32 values.
func float32Values(t *tensors.Tensor) ([]float32, error) {
	if t.DType() == dtypes.Float32 {
		return tensors.CopyFlatData[float32](t)
	}
	var out []float32
	err := t.ConstFlatData(func(flat any) {
		switch v := flat.(type) {
		case []bfloat16.BFloat16:
			out = make([]float32, len(v))
			for i, x := range v {
				out[i] = x.Float32()
			}
		}
	})
	if err == nil && out == nil {
		err = fmt.Errorf("unsupported dtype %s", t.DType())
	}
	return out, err
}
