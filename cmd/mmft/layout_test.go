package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainLayoutFlags runs mmft train and mmft worker with bad layout
// flags on the CPU (one device): each is refused with exit 2 and one line
// naming the flag and the fix, before any model is loaded.
func TestTrainLayoutFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--train-gpus", "0,1"}, "--train-gpus: \"0,1\": GPU 1 is out of range: 1 GPU(s) found, numbered 0 to 0"},
		{[]string{"--rollout-gpus", "3"}, "--rollout-gpus: \"3\": GPU 3 is out of range"},
		{[]string{"--train-gpus", "0,0"}, "GPU 0 is listed twice"},
		{[]string{"--train-gpus", ","}, "is not a GPU number"},
		{[]string{"--train-gpus", "2-1"}, "is not a range of GPUs"},
		{[]string{"--max-staleness", "-1"}, "--max-staleness -1: give 0"},
		{[]string{"--max-staleness", "2"}, "--max-staleness 2 needs the split layout"},
		{[]string{"--step-layout", "bogus"}, "--step-layout \"bogus\": want full, shared, recompute or auto"},
		{[]string{"--logits", "f16"}, "--logits \"f16\": want float32 or bf16"},
	} {
		args := append([]string{"train", "--steps", "1", "--quiet", "--output-dir", out}, c.flags...)
		code, _, errOut := runCLI(t, "", args...)
		if code != 2 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("train %v: exit %d, %q; want exit 2 and one line with %q", c.flags, code, errOut, c.want)
		}
		if strings.Contains(errOut, "loaded in") {
			t.Errorf("train %v: loaded the model before refusing", c.flags)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused run created its output folder")
	}
	// The worker checks what it can before its backend opens: syntax,
	// repeats, overlap (4 GPUs or not), staleness.
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--rollout-gpus", "1", "--train-gpus", "0-2"}, "GPU 1 is in both --rollout-gpus [1] and --train-gpus [0 1 2]"},
		{[]string{"--train-gpus", "x"}, "\"x\" is not a GPU number"},
		{[]string{"--max-staleness", "-2"}, "--max-staleness -2"},
	} {
		code, _, errOut := runCLI(t, "", append([]string{"worker", "--dir", t.TempDir()}, c.flags...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("worker %v: exit %d, %q; want %q", c.flags, code, errOut, c.want)
		}
	}
}

// TestTrainRefusesAPlanThatDoesNotFit gives mmft train a GPU memory too
// small for the embedded model's plan: it prints the per-part plan and
// exits 1 naming the GPU, before loading the model.
func TestTrainRefusesAPlanThatDoesNotFit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI(t, "", "train", "--steps", "1", "--quiet", "--output-dir", out, "--gpu-memory", "0.0001")
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"memory plan", "GPU 0 (colocated)", "base weights (Float32, shared with the engine)", "LoRA adapters (f32)", "Adam moments", "LoRA gradients", "activations",
		"GPU 0 (colocated) needs", "of 104.9 KiB"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "loaded in") {
		t.Error("the model was loaded before the refusal")
	}
	if code, _, errOut := runCLI(t, "", "train", "--gpu-memory", "-1"); code != 2 || !strings.Contains(errOut, "--gpu-memory -1") {
		t.Errorf("negative --gpu-memory: exit %d, %q", code, errOut)
	}
}
