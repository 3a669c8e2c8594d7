package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/mmft"
)

// trainArgs is a short run of the embedded default, checkpointing every step.
func trainArgs(out string, extra ...string) []string {
	return append([]string{"train", "--steps", "4", "--save-steps", "1", "--batch-size", "2", "--num-generations", "4",
		"--max-new-tokens", "8", "--beta", "0.04", "--quiet", "--output-dir", out}, extra...)
}

// TestTrainResumeAfterSIGKILLIsBitIdentical runs the embedded default for 4
// steps uninterrupted; runs it again, kills it with SIGKILL once step 2's
// checkpoint exists, resumes it with --resume, and checks that the final
// adapters are the same bytes, and the metrics file holds each step once.
func TestTrainResumeAfterSIGKILLIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and trains")
	}
	bin := filepath.Join(t.TempDir(), "mmft")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	run := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mmft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	full := filepath.Join(t.TempDir(), "full")
	run(trainArgs(full)...)

	cut := filepath.Join(t.TempDir(), "cut")
	cmd := exec.Command(bin, trainArgs(cut)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ck2 := filepath.Join(grpo.CheckpointDir(cut, 2), grpo.StateFile)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, err := os.Stat(ck2); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before step 2's checkpoint: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no checkpoint of step 2 within 5 minutes: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	<-done
	if _, err := os.Stat(filepath.Join(cut, mmft.AdapterDir)); err == nil {
		t.Fatal("the killed run had already finished; the test did not interrupt it")
	}
	run(trainArgs(cut, "--resume", cut)...)

	for _, f := range []string{"adapter_model.safetensors", "adapter_config.json"} {
		a, err := os.ReadFile(filepath.Join(full, mmft.AdapterDir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(cut, mmft.AdapterDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
	raw, err := os.ReadFile(filepath.Join(cut, mmft.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		steps = append(steps, int(m["step"].(float64)))
	}
	if len(steps) != 4 || steps[0] != 1 || steps[3] != 4 {
		t.Errorf("resumed metrics hold steps %v, want 1..4 once each", steps)
	}
}

// TestTrainPlanOfTheEmbeddedModel prints the memory plan mmft train shows
// before a GPU run, for the embedded model on a CPU backend standing in for
// the device (no capacity: nothing refused).
func TestTrainPlanOfTheEmbeddedModel(t *testing.T) {
	var out, errb bytes.Buffer
	c := &cli{stdout: &out, stderr: &errb}
	be, err := compute.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	if err := printTrainPlan(c, be, mmft.EmbeddedTrainConfig(), distributed.Layout{GPUs: 1, Rollout: []int{0}, Train: []int{0}}, mmft.StepRecompute, dtypes.BFloat16, 0); err != nil {
		t.Fatal(err)
	}
	if s := errb.String(); !strings.Contains(s, "memory plan") || !strings.Contains(s, "GPU") {
		t.Errorf("plan output: %s", s)
	}
}
