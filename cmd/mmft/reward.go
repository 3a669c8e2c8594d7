package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"math"
	"strings"

	"github.com/mmft-go/mmft/rewards"
)

// rewardLine is one input line of `mmft reward`.
type rewardLine struct {
	Completion    *string      `json:"completion"`
	Answer        textOrNumber `json:"answer"`
	Question      string       `json:"question"`
	Prefill       *string      `json:"prefill"`
	CompletionIDs []int        `json:"completion_ids"`
}

// textOrNumber is a JSON string, or a JSON number kept as written (42, 12.5).
type textOrNumber string

// UnmarshalJSON accepts a string or a number.
func (t *textOrNumber) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = textOrNumber(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("\"answer\" must be a string or a number, not %s", b)
	}
	*t = textOrNumber(n.String())
	return nil
}

// rewardOut is one output line of `mmft reward`.
type rewardOut struct {
	Reward     float64            `json:"reward"`
	Components map[string]float64 `json:"components,omitempty"`
}

func runReward(c *cli, args []string) error {
	fs := c.newFlags("reward", "--name NAME|SET [--prefill S] [--tol T] < lines.jsonl", `
Scores completions with a reward. Each stdin line is a JSON object
  {"completion": "...", "answer": "...", "question": "...", "prefill": "...", "completion_ids": [...]}
(only "completion" is required; "prefill" overrides --prefill for that line) and gives one stdout line
  {"reward": x}
NAME is a built-in reward: structural (the seed's, -1..2), format (strict, 0/1) or accuracy
(the <answer> against the gold answer, 0/1); with --max-tokens and --overlong-buffer also overlong
(0 down to -1 as len(completion_ids) nears and passes --max-tokens). SET is a weighted sum such as "structural=0.5,accuracy=1";
its output lines also hold the unweighted "components".
A malformed line gets {"line": N, "error": "..."} in its place on stdout and a message
naming line N on stderr; the other lines are still scored, and the command then fails.`)
	name := fs.String("name", "", "reward name, or a weighted set NAME=W,NAME=W (required)")
	prefill := fs.String("prefill", "", `assistant prefill placed before each completion, e.g. "Let me solve this step by step.\n<think>" (escapes \n \t are read)`)
	tol := fs.Float64("tol", rewards.DefaultRelTol, "relative tolerance of the accuracy reward for numbers")
	maxTokens := fs.Int("max-tokens", 0, `with --overlong-buffer: enables the reward "overlong" (DAPO soft overlong penalty on len(completion_ids))`)
	buffer := fs.Int("overlong-buffer", 0, "tokens before --max-tokens where the overlong penalty starts")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft reward: unexpected argument %q; the completions come on stdin\n", fs.Arg(0))
		return errUsage
	}
	if *name == "" {
		fmt.Fprintln(c.stderr, "mmft reward: --name is required (structural, format, accuracy or a set such as structural=0.5,accuracy=1)")
		return errUsage
	}
	if *maxTokens == 0 && *buffer == 0 && strings.Contains(*name, "overlong") {
		fmt.Fprintln(c.stderr, "mmft reward: the overlong reward needs --max-tokens and --overlong-buffer (e.g. --max-tokens 1024 --overlong-buffer 256)")
		return errUsage
	}
	if math.IsNaN(*tol) || *tol < 0 {
		return fmt.Errorf("--tol %v: the tolerance must be a number ≥ 0 (0.01 is 1%%)", *tol)
	}
	reg := rewards.NewRegistry()
	acc := rewards.Accuracy{RelTol: *tol}
	if *tol == 0 {
		acc.RelTol = -1 // exact
	}
	for _, r := range []struct {
		name string
		f    rewards.Func
	}{{"structural", rewards.Structural}, {"format", rewards.Format}, {"accuracy", acc.Score}} {
		if err := reg.Register(r.name, r.f); err != nil {
			return err
		}
	}
	if *maxTokens != 0 || *buffer != 0 {
		f, err := rewards.OverlongPenalty(*maxTokens, *buffer)
		if err != nil {
			return fmt.Errorf("--max-tokens/--overlong-buffer: %w", err)
		}
		if err := reg.Register("overlong", f); err != nil {
			return err
		}
	}
	var set rewards.Set
	isSet := strings.ContainsAny(*name, ",=")
	if isSet {
		var err error
		if set, err = reg.ParseSet(*name); err != nil {
			return err
		}
	} else {
		f, err := reg.Get(*name)
		if err != nil {
			return err
		}
		set = rewards.Set{Components: []rewards.Component{{Name: *name, Weight: 1, Func: f}}}
	}
	pre := unescapeFlag(*prefill)

	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	sc := bufio.NewScanner(c.stdin)
	sc.Buffer(make([]byte, 64*1024), 256<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var bad []int
	for n := 1; sc.Scan(); n++ {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec any
		o, err := scoreLine(line, set, isSet, pre)
		if err != nil {
			bad = append(bad, n)
			fmt.Fprintf(c.stderr, "mmft reward: line %d: %v\n", n, err)
			rec = lineError{Line: n, Error: err.Error()}
		} else {
			rec = o
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("writing the reward of line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("reading stdin: a line is longer than 256 MiB: %w", err)
		}
		return fmt.Errorf("reading stdin: %w", err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d malformed input line(s) (first: line %d); each must be a JSON object {\"completion\": ..., \"answer\": ...}", len(bad), bad[0])
	}
	return nil
}

// lineError is the output line of a JSON-lines command (tokenize, reward) in
// place of an input line it could not read: the other lines are still
// processed, and the command fails at the end.
type lineError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// scoreLine reads one input line of `mmft reward` and scores it.
func scoreLine(line []byte, set rewards.Set, isSet bool, prefill string) (rewardOut, error) {
	var in rewardLine
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&in); err != nil {
		return rewardOut{}, fmt.Errorf("not a JSON object {\"completion\": ..., \"answer\": ...}: %w", err)
	}
	if dec.More() {
		return rewardOut{}, errors.New("more than one JSON value; put one object per line")
	}
	if in.Completion == nil {
		return rewardOut{}, errors.New("no \"completion\" field; each line needs {\"completion\": ..., \"answer\": ...}")
	}
	if in.CompletionIDs == nil && usesOverlong(set) {
		return rewardOut{}, errors.New("the overlong reward needs \"completion_ids\" (the generated token ids)")
	}
	ri := rewards.Input{Prefill: prefill, Completion: *in.Completion, CompletionIDs: in.CompletionIDs, Answer: string(in.Answer), Question: in.Question}
	if in.Prefill != nil {
		ri.Prefill = *in.Prefill
	}
	res := set.Score(ri)
	o := rewardOut{Reward: res.Total}
	if isSet {
		o.Components = res.Map()
	}
	return o, nil
}

func usesOverlong(s rewards.Set) bool {
	for _, c := range s.Components {
		if c.Name == "overlong" {
			return true
		}
	}
	return false
}

// flagEscapes turns the escapes \n, \t and \\ typed on a command line into
// characters; other backslashes stay as they are.
var flagEscapes = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\t`, "\t")

// unescapeFlag applies flagEscapes to s.
func unescapeFlag(s string) string { return flagEscapes.Replace(s) }
