// Command peftexport writes a LoRA adapter as mmft's trainer saves one (PEFT's
// format, through lora.Adapter.Save) for the model folder given, with PEFT's
// initialization of A and a non-zero B (as after training), so that
// tests/gpu/peft_check.py can load it in Python PEFT on the same base weights
// and compare logits with `mmft forward --adapter`.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

func main() {
	model := flag.String("model", "", "base model folder (config.json)")
	out := flag.String("out", "", "adapter folder to write")
	r := flag.Int("r", 8, "rank")
	alpha := flag.Float64("alpha", 16, "lora_alpha")
	rslora := flag.Bool("rslora", true, "rank-stabilized scaling alpha/sqrt(r)")
	seed := flag.Uint64("seed", 1, "seed")
	flag.Parse()
	if err := run(*model, *out, *r, *alpha, *rslora, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "peftexport:", err)
		os.Exit(1)
	}
}

func run(model, out string, r int, alpha float64, rslora bool, seed uint64) error {
	if model == "" || out == "" {
		return fmt.Errorf("--model and --out are required")
	}
	cfg, err := qwen2vl.LoadConfig(model)
	if err != nil {
		return err
	}
	shapes := map[string][]int{}
	for _, s := range cfg.ParamSpecs() {
		shapes[s.Name] = s.Shape
	}
	lc := lora.NewConfig(r, alpha, "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
	lc.UseRSLoRA = rslora
	targets, err := lc.Targets(shapes)
	if err != nil {
		return err
	}
	ad, err := lora.NewAdapter(lc, targets, shapes, seed)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, name := range ad.Names() {
		for i := range ad.Modules[name].B {
			ad.Modules[name].B[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	if err := ad.Save(out); err != nil {
		return err
	}
	fmt.Printf("wrote %d modules (r=%d, alpha=%g, rslora=%v) to %s\n", len(ad.Modules), r, alpha, rslora, out)
	return nil
}
