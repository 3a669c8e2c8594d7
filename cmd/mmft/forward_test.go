package main

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

// TestForwardCommand runs `mmft forward` on the tiny fixture's inputs (the
// reference file itself holds input_ids, attention_mask, pixel_values and
// image_grid_thw) with its LoRA adapter and compares with logits_with_lora.
func TestForwardCommand(t *testing.T) {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	ref := filepath.Join(dir, "reference.safetensors")
	out := filepath.Join(t.TempDir(), "out.safetensors")
	var buf bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &buf, stderr: &buf}
	if code := c.main([]string{"forward", "--model", dir, "--inputs", ref, "--out", out, "--adapter", filepath.Join(dir, "lora_adapter"), "--device", "cpu"}); code != 0 {
		t.Fatalf("exit %d: %s", code, buf.String())
	}
	got, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := safetensors.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	for _, pair := range [][2]string{{"logits", "logits_with_lora"}, {"image_embeds", "image_embeds"}, {"position_ids", "position_ids"}, {"rope_deltas", "rope_deltas"}} {
		g, ok1 := got.Tensor(pair[0])
		w, ok2 := want.Tensor(pair[1])
		if !ok1 || !ok2 {
			t.Fatalf("missing %s", pair[0])
		}
		conv := safetensors.ToFloat32
		if g.DType == "I64" {
			conv = func(i safetensors.Info) ([]float32, error) {
				v, err := safetensors.ToInt64(i)
				f := make([]float32, len(v))
				for k, x := range v {
					f[k] = float32(x)
				}
				return f, err
			}
		}
		gv, err1 := conv(g)
		wv, err2 := conv(w)
		if err1 != nil || err2 != nil || len(gv) != len(wv) {
			t.Fatalf("%s: %v %v, %d vs %d values", pair[0], err1, err2, len(gv), len(wv))
		}
		worst := 0.0
		for i := range gv {
			worst = max(worst, math.Abs(float64(gv[i]-wv[i])))
		}
		if worst > 1e-3 {
			t.Errorf("%s differs from %s by %g", pair[0], pair[1], worst)
		}
	}
}

func TestForwardCommandErrors(t *testing.T) {
	var buf bytes.Buffer
	c := &cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &buf, stderr: &buf}
	if code := c.main([]string{"forward", "--model", "x"}); code != 2 {
		t.Errorf("missing flags: exit %d, want 2 (%s)", code, buf.String())
	}
	buf.Reset()
	dir := shared.Fixture(t, "qwen2vl-tiny")
	code := c.main([]string{"forward", "--model", t.TempDir(), "--inputs", filepath.Join(dir, "reference.safetensors"), "--out", filepath.Join(t.TempDir(), "o.safetensors")})
	if code != 1 || !strings.Contains(buf.String(), "config.json") {
		t.Errorf("empty model folder: exit %d, output %q", code, buf.String())
	}
}
