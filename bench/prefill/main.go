// Command prefill measures Qwen2-VL-2B prefill: 8 prompts × 427 tokens, each
// with one 504×504 image (36×36 patches → 324 image tokens), bf16 weights
// (random, 2B shape from the assets' config.json), on the chosen device. It
// prints tokens/s over timed repetitions after a warm-up (compilation) run,
// and the Go heap peak; GPU memory is sampled by tests/gpu/run.sh.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

// randomSource serves random BF16 tensors of the config's shapes.
type randomSource struct {
	specs map[string][]int
	rng   *rand.Rand
}

func (r *randomSource) Names() []string {
	out := make([]string, 0, len(r.specs))
	for k := range r.specs {
		out = append(out, k)
	}
	return out
}

func (r *randomSource) Raw(name string) (string, []int, []byte, error) {
	shape := r.specs[name]
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]byte, 2*n)
	for i := range n {
		binary.LittleEndian.PutUint16(data[2*i:], safetensors.Float32ToBF16(float32(r.rng.NormFloat64()*0.02)))
	}
	return "BF16", shape, data, nil
}

func main() {
	cfgPath := flag.String("config", "../shared/assets/qwen2-vl-2b-instruct/config.json", "Qwen2-VL config.json")
	device := flag.String("device", "gpu", "cpu or gpu")
	batch := flag.Int("batch", 8, "prompts")
	length := flag.Int("len", 427, "tokens per prompt")
	side := flag.Int("image", 504, "image side in pixels (multiple of 28)")
	reps := flag.Int("reps", 5, "timed repetitions")
	flag.Parse()
	if err := run(*cfgPath, *device, *batch, *length, *side, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "prefill:", err)
		os.Exit(1)
	}
}

func run(cfgPath, device string, b, l, side, reps int) error {
	cfg, err := qwen2vl.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	be, err := compute.New(compute.Options{Device: device})
	if err != nil {
		return err
	}
	src := &randomSource{specs: map[string][]int{}, rng: rand.New(rand.NewPCG(1, 2))}
	for _, s := range cfg.ParamSpecs() {
		src.specs[s.Name] = s.Shape
	}
	t0 := time.Now()
	m, err := qwen2vl.LoadFrom(be.Backend, cfg, src, qwen2vl.Options{DType: dtypes.BFloat16})
	if err != nil {
		return err
	}
	fmt.Printf("loaded random 2B-shape bf16 weights in %v\n", time.Since(t0).Round(time.Millisecond))
	g := side / cfg.Vision.PatchSize
	imgTokens := g * g / (cfg.Vision.SpatialMergeSize * cfg.Vision.SpatialMergeSize)
	text := l - imgTokens - 2
	if text < 1 {
		return fmt.Errorf("prompt length %d too short for a %d-token image", l, imgTokens)
	}
	in := qwen2vl.Batch{}
	rng := rand.New(rand.NewPCG(3, 4))
	for range b {
		row := []int32{}
		for range text / 2 {
			row = append(row, int32(rng.IntN(150000)))
		}
		row = append(row, int32(cfg.VisionStartTokenID))
		for range imgTokens {
			row = append(row, int32(cfg.ImageTokenID))
		}
		row = append(row, int32(cfg.VisionEndTokenID))
		for len(row) < l {
			row = append(row, int32(rng.IntN(150000)))
		}
		in.InputIDs = append(in.InputIDs, row)
		in.Grids = append(in.Grids, qwen2vl.Grid{T: 1, H: g, W: g})
	}
	in.PixelValues = make([]float32, b*g*g*cfg.Vision.PatchDim())
	for i := range in.PixelValues {
		in.PixelValues[i] = float32(rng.NormFloat64())
	}
	t0 = time.Now()
	if _, _, err := m.Prefill(in, l, nil); err != nil {
		return err
	}
	fmt.Printf("warm-up (compile + run) %v\n", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	for range reps {
		st, logits, err := m.Prefill(in, l, nil)
		if err != nil {
			return err
		}
		if err := logits.ToLocal(); err != nil {
			return err
		}
		for _, c := range st.Cache {
			c.FinalizeAll()
		}
	}
	el := time.Since(t0) / time.Duration(reps)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("prefill %d × %d tokens (image %dx%d px, %d image tokens): %v per batch, %.0f tokens/s; Go heap peak (Sys) %.2f GiB\n",
		b, l, side, side, imgTokens, el.Round(time.Millisecond), float64(b*l)/el.Seconds(), float64(ms.Sys)/(1<<30))
	return nil
}
