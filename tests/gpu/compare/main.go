// Command compare runs mmft's Qwen2-VL forward on the inputs written by
// tests/gpu/parity_qwen2vl.py and compares its logits with transformers':
// relative L2 error ‖Δlogits‖/‖ref‖ ≤ 2e-2 and top-1 agreement ≥ 99% over
// the non-padded positions. It exits 1 when either bound fails.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

func main() {
	dir := flag.String("dir", "", "folder written by parity_qwen2vl.py (model/, inputs.safetensors, reference.safetensors)")
	device := flag.String("device", "gpu", "cpu or gpu")
	dtype := flag.String("dtype", "bf16", "mmft's compute dtype: bf16 or f32")
	refKey := flag.String("ref", "logits_f32", "reference tensor: logits_f32 (transformers in float32) or logits (transformers in bf16)")
	check := flag.Bool("check", true, "exit 1 when the bounds fail")
	flag.Parse()
	if err := run(*dir, *device, *dtype, *refKey, *check); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(dir, device, dtypeName, refKey string, check bool) error {
	if dir == "" {
		return fmt.Errorf("--dir is required")
	}
	var dt dtypes.DType
	switch dtypeName {
	case "bf16":
		dt = dtypes.BFloat16
	case "f32":
		dt = dtypes.Float32
	default:
		return fmt.Errorf("--dtype %q: use bf16 or f32", dtypeName)
	}
	be, err := compute.New(compute.Options{Device: device})
	if err != nil {
		return err
	}
	m, err := qwen2vl.Load(be.Backend, filepath.Join(dir, "model"), qwen2vl.Options{DType: dt})
	if err != nil {
		return err
	}
	in, err := safetensors.Open(filepath.Join(dir, "inputs.safetensors"))
	if err != nil {
		return err
	}
	defer in.Close()
	batch, err := qwen2vl.ReadBatch(in)
	if err != nil {
		return err
	}
	eng, err := engine.New(m, engine.Options{})
	if err != nil {
		return err
	}
	out, err := eng.Forward(batch, nil)
	if err != nil {
		return err
	}
	got, err := tensors.CopyFlatData[float32](out.Logits)
	if err != nil {
		return err
	}
	ref, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		return err
	}
	defer ref.Close()
	info, ok := ref.Tensor(refKey)
	if !ok {
		return fmt.Errorf("reference has no %s", refKey)
	}
	want, err := safetensors.ToFloat32(info)
	if err != nil {
		return err
	}
	if len(want) != len(got) {
		return fmt.Errorf("logits sizes differ: %d vs %d", len(got), len(want))
	}
	v := m.Config.Text.VocabSize
	var num, den float64
	agree, total := 0, 0
	for i, row := range batch.AttentionMask {
		for j, on := range row {
			if on == 0 {
				continue
			}
			o := (i*len(row) + j) * v
			bg, bw := 0, 0
			for k := 0; k < v; k++ {
				d := float64(got[o+k] - want[o+k])
				num += d * d
				den += float64(want[o+k]) * float64(want[o+k])
				if got[o+k] > got[o+bg] {
					bg = k
				}
				if want[o+k] > want[o+bw] {
					bw = k
				}
			}
			total++
			if bg == bw {
				agree++
			}
		}
	}
	if total == 0 {
		// NaN metrics would pass both bounds.
		return fmt.Errorf("no position to compare: inputs.safetensors needs an attention_mask with unpadded positions")
	}
	rel := math.Sqrt(num / den)
	top1 := float64(agree) / float64(total)
	fmt.Printf("mmft %s on %s vs transformers %s: rel L2 logits error %.4g (bound 2e-2), top-1 agreement %.4f over %d positions (bound 0.99)\n",
		dtypeName, device, refKey, rel, top1, total)
	if !check {
		return nil
	}
	if rel > 2e-2 || top1 < 0.99 {
		return fmt.Errorf("parity FAILED")
	}
	fmt.Println("parity OK")
	return nil
}
