package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/safetensors"
)

// TestRolloutGreedyCommand runs `mmft rollout --greedy` on the tiny
// fixture's inputs: the ids must be transformers' greedy_ids.
func TestRolloutGreedyCommand(t *testing.T) {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	ref := filepath.Join(dir, "reference.safetensors")
	var out, errb bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := c.main([]string{"rollout", "--model", dir, "--greedy", "--inputs", ref, "--max-new-tokens", "8", "--ignore-eos", "--device", "cpu"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	f, err := safetensors.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Tensor("greedy_ids")
	want, err := safetensors.ToInt64(info)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d output lines, want 2: %q", len(lines), out.String())
	}
	for i, line := range lines {
		var row struct{ IDs []int64 }
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		for j, id := range row.IDs {
			if id != want[i*8+j] || len(row.IDs) != 8 {
				t.Fatalf("row %d ids %v, want %v", i, row.IDs, want[i*8:i*8+8])
			}
		}
	}
	// Usage errors exit 2 with a message naming the problem.
	for _, args := range [][]string{{"rollout", "--greedy", "--inputs", ref}, {"rollout", "--model", dir}, {"rollout", "--model", dir, "--data", "x", "--n", "0"}} {
		errb.Reset()
		if code := c.main(args); code != 2 || !strings.Contains(errb.String(), "mmft rollout:") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// randomF32 serves random float32 weights of the given shapes.
type randomF32 map[string][]int

func (r randomF32) Names() []string { return slices.Collect(maps.Keys(r)) }

func (r randomF32) Raw(name string) (string, []int, []byte, error) {
	n := 1
	for _, d := range r[name] {
		n *= d
	}
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(n)))
	data := make([]byte, 4*n)
	for i := range n {
		v := float32(rng.NormFloat64() * 0.2)
		if len(r[name]) == 1 {
			v = 1 // norms (and biases): harmless
		}
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return "F32", r[name], data, nil
}

// TestRolloutDataCommand runs `mmft rollout --data` end to end on a random
// model of the real vocabulary (tiny widths) with the real tokenizer, chat
// template and image processor, over the Sujet-layout parquet fixture.
func TestRolloutDataCommand(t *testing.T) {
	assets := shared.Asset(t)
	parquet := shared.Fixture(t, "sujet-parquet", "data")
	dir := t.TempDir()
	for _, f := range []string{"vocab.json", "merges.txt", "tokenizer_config.json", "chat_template.json"} {
		b, err := os.ReadFile(filepath.Join(assets, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(name string, change func(map[string]any)) {
		b, err := os.ReadFile(filepath.Join(assets, name))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("preprocessor_config.json", func(m map[string]any) { m["max_pixels"] = 56 * 56 * 4 })
	edit("config.json", func(m map[string]any) {
		m["hidden_size"], m["intermediate_size"], m["num_hidden_layers"], m["num_attention_heads"], m["num_key_value_heads"] = 16, 32, 1, 2, 1
		m["rope_scaling"] = map[string]any{"type": "mrope", "mrope_section": []int{1, 1, 2}}
		m["vision_config"] = map[string]any{"depth": 1, "embed_dim": 16, "mlp_ratio": 2, "num_heads": 2, "in_chans": 3, "hidden_size": 16,
			"patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2}
	})
	cfg, err := qwen2vl.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	src := randomF32{}
	for _, s := range cfg.ParamSpecs() {
		src[s.Name] = s.Shape
	}
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	m, err := qwen2vl.LoadFrom(be.Backend, cfg, src, qwen2vl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := c.main([]string{"rollout", "--model", dir, "--data", parquet, "--prompts", "2", "--n", "2", "--max-new-tokens", "4",
		"--top-k", "50", "--top-p", "0.9", "--reward", "structural=0.5,accuracy=1", "--stop", "</answer>", "--quiet"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4 (2 prompts × 2): %s", len(lines), out.String())
	}
	for _, line := range lines {
		var l rolloutLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if len(l.IDs) == 0 || len(l.IDs) > 4 || len(l.PolicyLogProbs) != len(l.IDs) || len(l.SamplerLogProbs) != len(l.IDs) ||
			l.Reward == nil || l.Question == "" || l.Finish == "" {
			t.Errorf("bad line %s", line)
		}
		for k, lp := range l.PolicyLogProbs {
			if lp > 0 || l.SamplerLogProbs[k] > 0 {
				t.Errorf("positive log-prob in %s", line)
			}
		}
	}
	if !strings.Contains(errb.String(), "tokens/s") {
		t.Errorf("stderr lacks the tokens/s summary: %s", errb.String())
	}
}
