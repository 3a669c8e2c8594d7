package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/internal/shared"
)

// `mmft grpo loss` on the reference fixture prints one line per case whose
// loss and gradient match PyTorch's within 1e-5 relative.
func TestGRPOLossCommand(t *testing.T) {
	path := shared.Fixture(t, "grpo", "loss_cases.json")
	want, err := grpo.ReadLossCases(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "", "grpo", "loss", "--cases", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines for %d cases: %q", len(lines), len(want), out)
	}
	for i, l := range lines {
		var got struct {
			Loss         *float64    `json:"loss"`
			GradNewLogps [][]float64 `json:"grad_new_logps"`
		}
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		w := want[i]
		if got.Loss == nil || math.Abs(*got.Loss-*w.Loss) > 1e-5*math.Abs(*w.Loss) {
			t.Errorf("case %d: loss %v, want %v", i, got.Loss, *w.Loss)
		}
		if len(got.GradNewLogps) != len(w.GradNewLogps) {
			t.Fatalf("case %d: %d gradient rows, want %d", i, len(got.GradNewLogps), len(w.GradNewLogps))
		}
		for r, row := range w.GradNewLogps {
			if len(got.GradNewLogps[r]) != len(row) {
				t.Fatalf("case %d row %d: %d values, want %d", i, r, len(got.GradNewLogps[r]), len(row))
			}
			for k, g := range row {
				if math.Abs(got.GradNewLogps[r][k]-g) > 1e-5*math.Max(math.Abs(g), 1e-3) {
					t.Errorf("case %d: grad[%d][%d] = %v, want %v", i, r, k, got.GradNewLogps[r][k], g)
				}
			}
		}
	}
}

func TestGRPOLossCommandErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `{"groups": 1, "group_size": 2, "epsilon_low": 0.2, "epsilon_high": 0.2, "beta": 0, "loss_type": "grpo",
 "max_completion_length": 2, "rewards": [0, 1], "mask": [[1, 1], [1, 0]], "old_logps": [[-1, -1], [-1, -1]],
 "new_logps": [[-1, -1], [-1, -1]], "ref_logps": [[-1, -1], [-1, -1]]}`
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		inErr string
	}{
		{"no cases flag", []string{"grpo", "loss"}, 2, "--cases FILE.json is required"},
		{"missing file", []string{"grpo", "loss", "--cases", filepath.Join(dir, "absent.json")}, 1, "absent.json"},
		{"not JSON", []string{"grpo", "loss", "--cases", write("bad.json", "loss: 1")}, 1, "not JSON"},
		{"no cases key", []string{"grpo", "loss", "--cases", write("nokey.json", `{"note": "x"}`)}, 1, `no "cases" list`},
		{"short row", []string{"grpo", "loss", "--cases", write("short.json", "["+strings.Replace(good, `"mask": [[1, 1], [1, 0]]`, `"mask": [[1, 1], [1]]`, 1)+"]")}, 1, "case 0: mask row 1 has 1 values; want T = 2"},
		{"unknown field", []string{"grpo", "loss", "--cases", write("typo.json", "["+strings.Replace(good, `"beta"`, `"betta": 1, "beta"`, 1)+"]")}, 1, `unknown field "betta"`},
		{"bad loss type", []string{"grpo", "loss", "--cases", write("lt.json", "["+strings.Replace(good, `"grpo"`, `"ppo"`, 1)+"]")}, 1, `loss_type "ppo"`},
		{"unknown subcommand", []string{"grpo", "lost"}, 2, `unknown command "lost"`},
	} {
		code, _, errs := runCLI(t, "", c.args...)
		if code != c.code || !strings.Contains(errs, c.inErr) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want it to contain %q)", c.name, code, c.code, errs, c.inErr)
		}
	}
	// The good case runs: advantages ±0.7070, unclipped ratios of 1, so the loss is −mean A·1 per token.
	code, out, errs := runCLI(t, "", "grpo", "loss", "--cases", write("good.json", "["+good+"]"))
	if code != 0 {
		t.Fatalf("good case: exit %d: %s", code, errs)
	}
	var res grpo.LossResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	a := 0.5 / (math.Sqrt(0.5) + 1e-4) // group of rewards {0, 1}: std √0.5
	if math.Abs(res.Loss-0) > 1e-7 || math.Abs(res.GradNewLogps[0][0]-a/2/2) > 1e-6 || res.GradNewLogps[1][1] != 0 {
		t.Errorf("good case: %s; want loss 0, grad[0][0] = A/(2·2) = %v (advantage −A, sign flipped by the minus), grad[1][1] = 0", out, a/4)
	}
}
