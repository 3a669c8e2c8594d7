package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/qwen2vl"
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

// writeBatch writes a batch as forward's inputs file.
func writeBatch(t *testing.T, b qwen2vl.Batch) string {
	t.Helper()
	flat := func(rows [][]int32) ([]int64, []int) {
		var v []int64
		for _, r := range rows {
			for _, x := range r {
				v = append(v, int64(x))
			}
		}
		return v, []int{len(rows), len(rows[0])}
	}
	ids, shape := flat(b.InputIDs)
	ts := []safetensors.NamedTensor{safetensors.FromInt64("input_ids", shape, ids)}
	if b.AttentionMask != nil {
		m, mshape := flat(b.AttentionMask)
		ts = append(ts, safetensors.FromInt64("attention_mask", mshape, m))
	}
	if len(b.Grids) > 0 {
		var g []int64
		for _, x := range b.Grids {
			g = append(g, int64(x.T), int64(x.H), int64(x.W))
		}
		ts = append(ts, safetensors.FromInt64("image_grid_thw", []int{len(b.Grids), 3}, g),
			safetensors.FromFloat32("pixel_values", []int{len(b.PixelValues) / 1176, 1176}, b.PixelValues))
	}
	p := filepath.Join(t.TempDir(), "in.safetensors")
	if err := safetensors.Write(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestForwardRefusesBadInputs checks that inputs that cannot be right are
// refused before the model runs, with a message naming the tensor and the
// rule, and that no output file is written.
func TestForwardRefusesBadInputs(t *testing.T) {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	in, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := qwen2vl.ReadBatch(in)
	in.Close()
	if err != nil {
		t.Fatal(err)
	}
	clone := func() qwen2vl.Batch {
		b := ref
		b.PixelValues = slices.Clone(ref.PixelValues)
		b.AttentionMask = nil
		for _, r := range ref.AttentionMask {
			b.AttentionMask = append(b.AttentionMask, slices.Clone(r))
		}
		return b
	}
	nan, inf, two, zeros := clone(), clone(), clone(), clone()
	nan.PixelValues[5] = float32(math.NaN())
	inf.PixelValues[1176*3+2] = float32(math.Inf(-1))
	two.AttentionMask[1][4] = 2
	for j := range zeros.AttentionMask[0] {
		zeros.AttentionMask[0][j] = 0
	}
	long := qwen2vl.Batch{InputIDs: [][]int32{make([]int32, 20000)}}
	for _, c := range []struct {
		name  string
		batch qwen2vl.Batch
		want  string
	}{
		{"NaN pixel", nan, "pixel_values[0][5] is NaN: pixel values must be finite"},
		{"Inf pixel", inf, "pixel_values[3][2] is -Inf"},
		{"mask value 2", two, "attention_mask[1][4] = 2: the mask holds only 0 (padding) and 1 (token)"},
		{"all-zero mask row", zeros, "attention_mask row 0 is all zeros"},
		{"too long", long, "20000 tokens per row; the model's max_position_embeddings is 4096"},
	} {
		out := filepath.Join(t.TempDir(), "o.safetensors")
		code, stdout, errOut := runCLI(t, "", "forward", "--model", dir, "--inputs", writeBatch(t, c.batch), "--out", out)
		if code != 1 || !strings.Contains(errOut, c.want) || stdout != "" {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and %q", c.name, code, errOut, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: an output was written", c.name)
		}
	}
}

// TestForwardChecksOutputFirst checks the messages for a folder given as
// --inputs or --out, and an extra argument.
func TestForwardChecksOutputFirst(t *testing.T) {
	dir := shared.Fixture(t, "qwen2vl-tiny")
	ref := filepath.Join(dir, "reference.safetensors")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--inputs", ref, "--out", t.TempDir()}, 1, "is a folder; give a file path"},
		{[]string{"--inputs", ref, "--out", filepath.Join(t.TempDir(), "missing", "o.safetensors")}, 1, "its folder"},
		{[]string{"--inputs", dir, "--out", filepath.Join(t.TempDir(), "o.safetensors")}, 1, "is a folder: give the .safetensors file"},
		{[]string{"--inputs", ref, "--out", filepath.Join(t.TempDir(), "o.safetensors"), "extra"}, 2, `unexpected argument "extra"`},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"forward", "--model", dir}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

// TestForwardSummarizesCheckpointMismatch gives the 2B config with the tiny
// weights: the message counts the problems and shows a few of each kind
// rather than one line listing all 729.
func TestForwardSummarizesCheckpointMismatch(t *testing.T) {
	cfg := shared.Asset(t, "config.json")
	tiny := shared.Fixture(t, "qwen2vl-tiny")
	dir := t.TempDir()
	if err := os.Symlink(cfg, filepath.Join(dir, "config.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tiny, "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "", "forward", "--model", dir, "--inputs", filepath.Join(tiny, "reference.safetensors"), "--out", filepath.Join(t.TempDir(), "o.safetensors"))
	if code != 1 || !strings.Contains(errOut, "(729 problems)") || !strings.Contains(errOut, "missing: 672") || !strings.Contains(errOut, "wrong shape: 57") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if n := strings.Count(errOut, "\n"); n > 20 || len(errOut) > 2000 {
		t.Errorf("the message has %d lines, %d characters; want a short summary:\n%s", n, len(errOut), errOut)
	}
}

// TestForwardRefusesWhatDoesNotFit raises the tiny model's
// max_position_embeddings so that a [1, 200000] batch passes the length check
// and must be refused by the memory estimate, before the model is loaded.
func TestForwardRefusesWhatDoesNotFit(t *testing.T) {
	tiny := shared.Fixture(t, "qwen2vl-tiny")
	cfg, err := os.ReadFile(filepath.Join(tiny, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	raised := strings.Replace(string(cfg), `"max_position_embeddings": 4096`, `"max_position_embeddings": 1048576`, 1)
	if raised == string(cfg) {
		t.Fatal("the tiny config has no max_position_embeddings of 4096")
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(raised), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tiny, "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	in := writeBatch(t, qwen2vl.Batch{InputIDs: [][]int32{make([]int32, 200000)}})
	code, _, errOut := runCLI(t, "", "forward", "--model", dir, "--inputs", in, "--out", filepath.Join(t.TempDir(), "o.safetensors"))
	want := "not enough memory: the forward pass of 1 × 200000 tokens with 0 images in float32 would take about"
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "is available; use a shorter or smaller batch") {
		t.Fatalf("exit %d, stderr %q; want %q", code, errOut, want)
	}
}
