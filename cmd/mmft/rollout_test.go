package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
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
