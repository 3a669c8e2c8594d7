package lora_test

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/mmft-go/mmft/lora"
)

// A model applies an adapter to each targeted projection: base output plus
// the low-rank update, looked up by the projection's canonical name.
func Example() {
	ad, err := lora.Load("path/to/adapter") // a PEFT adapter folder
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = func(x, w *graph.Node, a, b *graph.Node) *graph.Node {
		y := graph.DotGeneral(x, []int{-1}, nil, w, []int{1}, nil) // x·Wᵀ
		if m := ad.Modules["model.layers.0.self_attn.q_proj"]; m != nil {
			// a, b hold m.A, m.B (see Module.Tensors); during training pass dropout(x).
			y = graph.Add(y, lora.Apply(x, a, b, m.Scale))
		}
		return y
	}
}

// Choosing targets and creating a fresh adapter from the base model's parameter shapes.
func ExampleNewAdapter() {
	shapes := map[string][]int{
		"model.layers.0.self_attn.q_proj.weight": {64, 64},
		"model.layers.0.self_attn.v_proj.weight": {32, 64},
		"model.layers.0.input_layernorm.weight":  {64},
	}
	cfg := lora.NewConfig(8, 16, "q_proj", "v_proj")
	targets, err := cfg.Targets(shapes)
	if err != nil {
		fmt.Println(err)
		return
	}
	ad, err := lora.NewAdapter(cfg, targets, shapes, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range ad.Names() {
		m := ad.Modules[n]
		fmt.Println(n, lora.PEFTKey(n, "lora_A"), m.R, m.In, m.Out, m.Scale)
	}
	// Output:
	// model.layers.0.self_attn.q_proj base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight 8 64 64 2
	// model.layers.0.self_attn.v_proj base_model.model.model.language_model.layers.0.self_attn.v_proj.lora_A.weight 8 64 32 2
}
