package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/internal/shared"
)

func TestPlanCommand(t *testing.T) {
	model := shared.Asset(t)
	code, stdout, stderr := runCLI(t, "", "plan", "--model", model, "--gpus", "4", "--gpu-memory", "141")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, s := range []string{"training on GPUs [0 1 2] (FSDP over 3)", "GPU 3 (rollout)", "base weights (BFloat16, 1/3 each)", "Adam moments", "KV cache", "of capacity 141.0 GiB"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, stdout)
		}
	}
	// JSON, an explicit layout, and the flags of mmft train.
	code, stdout, stderr = runCLI(t, "", "plan", "--model", model, "--gpus", "4", "--rollout-gpus", "0", "--train-gpus", "1-3", "--lora-r", "8", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var p distributed.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.GPUs) != 4 || p.GPUs[3].Role != "rollout" || p.GPUs[3].GPU != 0 || p.GPUs[0].GPU != 1 {
		t.Errorf("plan %+v", p.GPUs)
	}
	// Bad layouts are usage-like failures naming the flag; over capacity exits 1 naming the GPU.
	if code, _, stderr := runCLI(t, "", "plan", "--model", model, "--gpus", "2", "--rollout-gpus", "0", "--train-gpus", "0,1"); code != 1 || !strings.Contains(stderr, "GPU 0 is in both") {
		t.Errorf("overlap: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "", "plan", "--model", model, "--gpus", "1", "--gpu-memory", "1"); code != 1 || !strings.Contains(stderr, "GPU 0 (colocated) needs") {
		t.Errorf("over capacity: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "", "plan", "--model", model, "--gpus", "-1"); code != 2 || !strings.Contains(stderr, "--gpus -1") {
		t.Errorf("negative GPUs: exit %d, %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "", "plan", "--model", model, "--gpus", "1", "--step-layout", "sideways"); code != 2 || !strings.Contains(stderr, `--step-layout "sideways": want full, shared, recompute or auto`) {
		t.Errorf("bad step layout: exit %d, %q", code, stderr)
	}
	// The layer-by-layer layout plans the residual streams, not every
	// layer's activations: far less than the full layout.
	peak := map[string]float64{}
	for _, layout := range []string{"full", "recompute"} {
		code, stdout, stderr := runCLI(t, "", "plan", "--model", model, "--gpus", "1", "--step-layout", layout, "--json")
		var p struct {
			GPUs []struct {
				Peak  float64 `json:"peak_bytes"`
				Parts []struct{ Name string }
			} `json:"gpus"`
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &p) != nil || len(p.GPUs) != 1 {
			t.Fatalf("--step-layout %s: exit %d, %q, %q", layout, code, stdout, stderr)
		}
		peak[layout] = p.GPUs[0].Peak
		if layout == "recompute" && !strings.Contains(stdout, "residual streams between layers") {
			t.Errorf("--step-layout recompute: no residual streams part in %s", stdout)
		}
	}
	if peak["recompute"] >= peak["full"]/2 {
		t.Errorf("planned peaks: recompute %.3g bytes, full %.3g: want recompute far below", peak["recompute"], peak["full"])
	}
}
