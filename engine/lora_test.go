package engine

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

// TestParityTinyLoRABF16 runs the tiny model in bf16 with its adapter: the
// logits must stay close to transformers' float32 logits_with_lora, much
// closer than to the logits without the adapter (the low-rank update survives
// the bf16 products and is scaled in float32).
func TestParityTinyLoRABF16(t *testing.T) {
	dir, ref := openReference(t)
	loaded, err := qwen2vl.Load(cpuBackend(t), dir, qwen2vl.Options{DType: dtypes.BFloat16})
	if err != nil {
		t.Fatal(err)
	}
	m := newTestModel(t, loaded)
	ad, err := lora.Load(shared.Fixture(t, "qwen2vl-tiny", "lora_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.LoRAFromAdapter(ad)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(ref.batch(t), l)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.floats(t, "logits_with_lora")
	base, _ := ref.floats(t, "logits")
	dLoRA, dBase := maxAbsDiff(t, out.Logits, want), maxAbsDiff(t, out.Logits, base)
	t.Logf("bf16 logits: max abs diff %g from logits_with_lora, %g from the logits without the adapter", dLoRA, dBase)
	if dLoRA > 0.1 || dLoRA > dBase/10 {
		t.Errorf("bf16 logits with the adapter differ from logits_with_lora by %g (bounds 0.1 and a tenth of the adapter's effect %g)", dLoRA, dBase)
	}
}
