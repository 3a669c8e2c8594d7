package qwen2vl

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/safetensors"
)

// writeInputs saves tensors to a safetensors file and opens it.
func writeInputs(t *testing.T, ts ...safetensors.NamedTensor) *safetensors.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inputs.safetensors")
	if err := safetensors.Write(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestReadBatch reads a saved batch back in transformers' names and refuses
// token ids that do not fit in int32 (they once wrapped around silently, so
// 2³²+1 became token 1).
func TestReadBatch(t *testing.T) {
	f := writeInputs(t,
		safetensors.FromInt64("input_ids", []int{2, 3}, []int64{1, 2, 3, 4, 5, 6}),
		safetensors.FromInt64("attention_mask", []int{2, 3}, []int64{0, 1, 1, 1, 1, 1}),
		safetensors.FromInt64("image_grid_thw", []int{1, 3}, []int64{1, 2, 4}),
		safetensors.FromFloat32("pixel_values", []int{8, 1}, []float32{1, 2, 3, 4, 5, 6, 7, 8}),
	)
	b, err := ReadBatch(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.InputIDs; len(got) != 2 || got[0][2] != 3 || got[1][0] != 4 {
		t.Errorf("input_ids = %v", got)
	}
	if got := b.AttentionMask; len(got) != 2 || got[0][0] != 0 || got[0][1] != 1 {
		t.Errorf("attention_mask = %v", got)
	}
	if len(b.Grids) != 1 || b.Grids[0] != (Grid{1, 2, 4}) || len(b.PixelValues) != 8 || b.PixelValues[7] != 8 {
		t.Errorf("grids %v, %d pixel values", b.Grids, len(b.PixelValues))
	}
	// Appending to one row must not overwrite the next.
	b.InputIDs[0] = append(b.InputIDs[0], 9)
	if b.InputIDs[1][0] != 4 {
		t.Errorf("rows share storage: row 1 = %v", b.InputIDs[1])
	}

	f = writeInputs(t, safetensors.FromInt64("input_ids", []int{1, 3}, []int64{1, 1<<32 + 1, 3}))
	if _, err := ReadBatch(f); err == nil || !strings.Contains(err.Error(), "input_ids") || !strings.Contains(err.Error(), "int32") {
		t.Errorf("id 2³²+1: error %v, want one naming input_ids and int32", err)
	}
}
