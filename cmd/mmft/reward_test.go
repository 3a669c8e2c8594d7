package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRewardCommand(t *testing.T) {
	in := `{"completion": " 79</think><answer>$79M</answer>", "answer": "79 million dollars"}
{"completion": " no tags", "answer": "$79M"}

{"completion": "<think>a</think><answer>17.39%</answer>", "answer": "17.4%", "prefill": ""}
`
	code, out, errs := runCLI(t, in, "reward", "--name", "structural=0.5,accuracy=1", "--prefill", `Let me solve this step by step.\n<think>`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines: %q", len(lines), out)
	}
	want := []struct{ total, structural, accuracy float64 }{{2, 2, 1}, {-0.25, -0.5, 0}, {2, 2, 1}}
	for i, l := range lines {
		var o struct {
			Reward     float64            `json:"reward"`
			Components map[string]float64 `json:"components"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if o.Reward != want[i].total || o.Components["structural"] != want[i].structural || o.Components["accuracy"] != want[i].accuracy {
			t.Errorf("line %d = %s, want total %v structural %v accuracy %v", i, l, want[i].total, want[i].structural, want[i].accuracy)
		}
	}

	code, out, _ = runCLI(t, `{"completion": "<think>a</think><answer>x</answer>"}`+"\n", "reward", "--name", "format")
	if code != 0 || strings.TrimSpace(out) != `{"reward":1}` {
		t.Errorf("format: exit %d, out %q", code, out)
	}
	// Overlong penalty on the token ids.
	code, out, errs = runCLI(t, `{"completion": "<think>a</think><answer>1</answer>", "answer": "1", "completion_ids": [1,2,3,4,5,6,7,8,9]}`+"\n",
		"reward", "--name", "accuracy,overlong", "--max-tokens", "10", "--overlong-buffer", "2")
	if code != 0 || strings.TrimSpace(out) != `{"reward":0.5,"components":{"accuracy":1,"overlong":-0.5}}` {
		t.Errorf("overlong: exit %d, out %q, err %q", code, out, errs)
	}
	code, _, errs = runCLI(t, `{"completion": "x"}`+"\n", "reward", "--name", "overlong", "--max-tokens", "10", "--overlong-buffer", "2")
	if code != 1 || !strings.Contains(errs, "line 1: the overlong reward needs") {
		t.Errorf("overlong without ids: exit %d, err %q", code, errs)
	}
	// A numeric answer is read as written.
	code, out, _ = runCLI(t, `{"completion": "<answer>12.5%</answer>", "answer": 12.5}`+"\n", "reward", "--name", "accuracy")
	if code != 0 || strings.TrimSpace(out) != `{"reward":1}` {
		t.Errorf("numeric answer: exit %d, out %q", code, out)
	}
	// Tolerance flag.
	code, out, _ = runCLI(t, `{"completion": "<answer>$82M</answer>", "answer": "$79M"}`+"\n", "reward", "--name", "accuracy", "--tol", "0.05")
	if code != 0 || strings.TrimSpace(out) != `{"reward":1}` {
		t.Errorf("--tol 0.05: exit %d, out %q", code, out)
	}
}

// TestRewardCommandErrors checks the JSON-lines rule shared with tokenize: a
// malformed line gets {"line": N, "error": ...} in its place, the lines after
// it are still scored, and the command exits 1; bad flags fail before any line.
func TestRewardCommandErrors(t *testing.T) {
	good := `{"completion": "<answer>1</answer>", "answer": "1"}` + "\n"
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		inErr string
		out   []string // output lines, "" for a score and the error text for an error record
	}{
		{good + `{"completion": "x", "answer": ` + "\n" + good, []string{"--name", "accuracy"}, 1, "line 2: not a JSON object", []string{"", "not a JSON object", ""}},
		{good + good + `{"answer": "1"}` + "\n", []string{"--name", "accuracy"}, 1, "line 3: no \"completion\"", []string{"", "", "no \"completion\""}},
		{good + `[1, 2]` + "\n" + good, []string{"--name", "accuracy"}, 1, "line 2:", []string{"", "not a JSON object", ""}},
		{good + `{"completion": "x", "answer": [1]}` + "\n", []string{"--name", "accuracy"}, 1, "must be a string or a number", []string{"", "must be a string or a number"}},
		{good, []string{"--name", "acuracy"}, 1, "known: accuracy, format, structural", nil},
		{good, []string{"--name", "accuracy=two"}, 1, "not a finite number", nil},
		{good, []string{}, 2, "--name is required", nil},
		{good, []string{"--name", "accuracy,overlong"}, 2, "needs --max-tokens and --overlong-buffer", nil},
	} {
		code, out, errs := runCLI(t, c.stdin, append([]string{"reward"}, c.args...)...)
		if code != c.code || !strings.Contains(errs, c.inErr) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errs, c.code, c.inErr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if out == "" {
			lines = nil
		}
		if len(lines) != len(c.out) {
			t.Errorf("%v: %d output lines, want %d (%q)", c.args, len(lines), len(c.out), out)
			continue
		}
		for i, l := range lines {
			var rec struct {
				Reward *float64 `json:"reward"`
				Line   int      `json:"line"`
				Error  string   `json:"error"`
			}
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Errorf("output line %d %q: %v", i+1, l, err)
				continue
			}
			if c.out[i] == "" && rec.Reward == nil {
				t.Errorf("output line %d = %s, want a reward", i+1, l)
			}
			if c.out[i] != "" && (rec.Line != i+1 || !strings.Contains(rec.Error, c.out[i])) {
				t.Errorf("output line %d = %s, want {\"line\": %d, \"error\": ...%s...}", i+1, l, i+1, c.out[i])
			}
		}
	}
}

func TestUnescapeFlag(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:          "plain",
		`step.\n<think>`: "step.\n<think>",
		`a\tb`:           "a\tb",
		`a\\nb`:          `a\nb`, // an escaped backslash, then a plain n
		`C:\x\`:          `C:\x\`,
		`\\\n`:           "\\\n",
	} {
		if got := unescapeFlag(in); got != want {
			t.Errorf("unescapeFlag(%q) = %q, want %q", in, got, want)
		}
	}
}
