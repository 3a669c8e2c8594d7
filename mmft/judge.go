package mmft

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mmft-go/mmft/chattemplate"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/rewards"
)

// JudgeTokens bounds a judge's reply (the grade is one number).
const JudgeTokens = 8

// JudgeReward is the seed's LLM-judge reward run through m's engine on the
// base model (adapters off, greedy): each completion's answer is graded 0, 5
// or 10 against the reference, scored grade/5, and −1 when the reply holds no
// grade or the completion no answer (rewards.Judge). The trainer sets its
// adapter back before its next rollouts.
func JudgeReward(m *Model, weight float64) grpo.BatchReward {
	tmpl, tok := m.Processor.Template(), m.Processor.Tokenizer()
	gen := func(ctx context.Context, prompts []string) ([]string, error) {
		reqs := make([]engine.Request, len(prompts))
		for i, p := range prompts {
			text, err := tmpl.Render([]chattemplate.Message{chattemplate.UserText(p)}, chattemplate.Options{AddGenerationPrompt: true})
			if err != nil {
				return nil, err
			}
			ids := tok.Encode(text)
			ep := engine.Prompt{IDs: make([]int32, len(ids))}
			for k, id := range ids {
				ep.IDs[k] = int32(id)
			}
			reqs[i] = engine.Request{Prompt: ep, N: 1, Sampling: engine.Sampling{Temperature: 0, MaxNewTokens: JudgeTokens}}
		}
		if err := m.Engine.SetAdapter(nil); err != nil {
			return nil, err
		}
		comps, err := m.Engine.Generate(ctx, reqs, nil)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(prompts))
		for _, c := range comps {
			ids := make([]int, len(c.IDs))
			for k, id := range c.IDs {
				ids[k] = int(id)
			}
			out[c.Request] = tok.Decode(ids, true)
		}
		return out, nil
	}
	j := rewards.Judge{Generate: gen}
	return grpo.BatchReward{Name: "judge", Weight: weight, Score: j.ScoreBatch}
}

// SplitJudge removes a "judge" or "judge=W" item from a reward spec and
// returns the rest and the judge's weight (0 when absent).
func SplitJudge(spec string) (rest string, weight float64, err error) {
	var keep []string
	for _, item := range strings.Split(spec, ",") {
		name, w, hasW := strings.Cut(strings.TrimSpace(item), "=")
		if strings.TrimSpace(name) != "judge" {
			keep = append(keep, item)
			continue
		}
		weight = 1
		if hasW {
			if weight, err = strconv.ParseFloat(strings.TrimSpace(w), 64); err != nil {
				return "", 0, fmt.Errorf("reward set %q: the judge's weight %q is not a number", spec, w)
			}
		}
	}
	return strings.Join(keep, ","), weight, nil
}
