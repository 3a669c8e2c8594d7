// Command compare runs mmft's Qwen2-VL forward on the inputs written by
// tests/gpu/parity_qwen2vl.py and compares its logits with a reference over
// the non-padded positions: relative L2 error ‖Δlogits‖/‖ref‖ and top-1
// agreement.
//
// The bound (issue 8, item 15): against the float32 truth (logits_f32),
// mmft's forward must be at least as close as transformers' own bf16 forward
// (the reference's logits, computed in the same call): rel L2 no larger and
// top-1 agreement no smaller. It exits 1 when either fails.
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
	check := flag.Bool("check", true, "exit 1 unless mmft is at least as close to the reference as transformers' bf16 forward (logits) is, in rel L2 and top-1")
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
	rel, top1, total, err := metrics(got, want, batch.AttentionMask, v)
	if err != nil {
		return err
	}
	fmt.Printf("mmft %s on %s vs transformers %s: rel L2 logits error %.4g, top-1 agreement %.4f over %d positions\n",
		dtypeName, device, refKey, rel, top1, total)
	if !check || refKey == "logits" {
		return nil
	}
	peerInfo, ok := ref.Tensor("logits")
	if !ok {
		return fmt.Errorf("reference has no logits (transformers' bf16 forward) to bound against")
	}
	peer, err := safetensors.ToFloat32(peerInfo)
	if err != nil {
		return err
	}
	prel, ptop1, _, err := metrics(peer, want, batch.AttentionMask, v)
	if err != nil {
		return err
	}
	fmt.Printf("transformers bf16 vs transformers %s (same call): rel L2 %.4g, top-1 %.4f\n", refKey, prel, ptop1)
	if rel > prel || top1 < ptop1 {
		return fmt.Errorf("parity FAILED: mmft (rel %.4g, top-1 %.4f) is farther from %s than transformers' bf16 (rel %.4g, top-1 %.4f)",
			rel, top1, refKey, prel, ptop1)
	}
	fmt.Println("parity OK")
	return nil
}

// metrics returns the relative L2 error of got against want and their top-1
// agreement over the positions where mask is on (logits are [rows, len, v]).
func metrics(got, want []float32, mask [][]int32, v int) (rel, top1 float64, total int, err error) {
	if len(want) != len(got) {
		return 0, 0, 0, fmt.Errorf("logits sizes differ: %d vs %d", len(got), len(want))
	}
	var num, den float64
	agree := 0
	for i, row := range mask {
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
		return 0, 0, 0, fmt.Errorf("no position to compare: inputs.safetensors needs an attention_mask with unpadded positions")
	}
	return math.Sqrt(num / den), float64(agree) / float64(total), total, nil
}
