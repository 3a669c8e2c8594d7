package qwen2vl

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/lora"
)

// LoRAFromAdapter places a PEFT adapter (lora.Load) on the model's device in
// the model's dtype, checking that it only targets the seven LLM projections
// with matching shapes.
func (m *Model) LoRAFromAdapter(ad *lora.Adapter) (*LoRA, error) {
	out := &LoRA{Modules: map[string]LoRAModule{}}
	for _, name := range ad.Names() {
		mod := ad.Modules[name]
		a, err := m.hostToDevice(mod.A, mod.R, mod.In)
		if err != nil {
			return nil, fmt.Errorf("adapter module %s lora_A: %w", name, err)
		}
		b, err := m.hostToDevice(mod.B, mod.Out, mod.R)
		if err != nil {
			return nil, fmt.Errorf("adapter module %s lora_B: %w", name, err)
		}
		out.Modules[name] = LoRAModule{A: a, B: b, Scale: mod.Scale}
	}
	if err := out.Validate(m.Config); err != nil {
		return nil, err
	}
	return out, nil
}

// hostToDevice converts float32 values to a device tensor of the model dtype.
func (m *Model) hostToDevice(vals []float32, dims ...int) (*tensors.Tensor, error) {
	var t *tensors.Tensor
	if m.DType == dtypes.BFloat16 {
		conv := make([]bfloat16.BFloat16, len(vals))
		for i, v := range vals {
			conv[i] = bfloat16.FromFloat32(v)
		}
		t = tensors.FromFlatDataAndDimensions(conv, dims...)
	} else {
		t = tensors.FromFlatDataAndDimensions(append([]float32(nil), vals...), dims...)
	}
	if err := t.MaterializeOnDevice(m.Backend, true, m.Device); err != nil {
		return nil, err
	}
	return t, nil
}
