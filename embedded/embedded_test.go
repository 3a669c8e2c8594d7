package embedded

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/qwen2vl"
)

func TestModelDirLoadsAsAModelFolder(t *testing.T) {
	dir, err := ModelDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	proc, err := processor.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok := proc.Tokenizer()
	for _, tag := range []string{"<think>", "</think>", "<answer>", "</answer>", "<|im_end|>"} {
		ids := tok.Encode(tag)
		if len(ids) != 1 {
			t.Errorf("%q encodes to %v, want one token", tag, ids)
		}
	}
	text := "Let me solve this step by step.\n<think> the bar is 12 </think> <answer>12</answer>"
	if got := tok.Decode(tok.Encode(text), false); got != text {
		t.Errorf("round trip: %q", got)
	}
	cfg, err := qwen2vl.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() > cfg.Text.VocabSize {
		t.Fatalf("tokenizer has %d ids, model %d", tok.VocabSize(), cfg.Text.VocabSize)
	}
	if got := int32(tok.Special().ImagePad); got != int32(cfg.ImageTokenID) {
		t.Errorf("image pad id %d, config %d", got, cfg.ImageTokenID)
	}

	// The seed's prompt with a built-in document renders short enough for a CPU.
	train, _, err := synth.Default(synth.Easy)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imageproc.Decode(train[0].PNG, imageproc.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := prompt.New(proc, prompt.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Build(train[0].QA[0].Question, img)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.IDs); n > 160 {
		t.Errorf("prompt has %d tokens; the embedded default should stay under 160", n)
	}
	t.Logf("prompt: %d tokens", len(p.IDs))

	// A second call reuses the folder.
	again, err := ModelDir(filepath.Dir(dir))
	if err != nil || again != dir {
		t.Fatalf("second ModelDir = %q, %v; want %q", again, err, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "vocab.json")); err != nil {
		t.Fatal(err)
	}
}

func TestRandomWeightsLoadAndAreSeeded(t *testing.T) {
	cfg, err := Config()
	if err != nil {
		t.Fatal(err)
	}
	src := RandomWeights(cfg, 7)
	_, _, a, err := src.Raw("model.layers.0.self_attn.q_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	_, _, b, _ := RandomWeights(cfg, 7).Raw("model.layers.0.self_attn.q_proj.weight")
	_, _, c, _ := RandomWeights(cfg, 8).Raw("model.layers.0.self_attn.q_proj.weight")
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("weights must depend on the seed and only on it")
	}
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qwen2vl.LoadFrom(be.Backend, cfg, src, qwen2vl.Options{}); err != nil {
		t.Fatal(err)
	}
}
