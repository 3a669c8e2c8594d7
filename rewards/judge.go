package rewards

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// JudgePrompt is the grading instruction the LLM judge sends for each
// completion, as the seed's judge reward does: the model grades the predicted
// answer against the reference with 0 (wrong), 5 (partly right) or 10
// (right), and only the grade is read back. %[1]s is the question, %[2]s the
// reference answer and %[3]s the extracted predicted answer.
const JudgePrompt = "You are grading an answer to a question about a financial document.\n" +
	"Question: %[1]s\nReference answer: %[2]s\nPredicted answer: %[3]s\n" +
	"Reply with one number: 10 if the predicted answer means the same as the reference, " +
	"5 if it is partly correct, 0 if it is wrong. Reply with the number only."

// JudgeGenerate produces one reply for each grading prompt (plain user
// messages, in order); the trainer plugs in its rollout engine running the
// frozen base model (adapters off) with greedy decoding.
type JudgeGenerate func(ctx context.Context, prompts []string) ([]string, error)

// Judge is the seed's LLM-judge reward: score/5 for a reply of 0, 5 or 10
// (so 0, 1 or 2), and -1 when the reply holds no grade or the completion no
// answer to grade.
type Judge struct {
	Generate JudgeGenerate
}

// gradeRE finds the grade: the first whole number 0, 5 or 10 of the reply.
var gradeRE = regexp.MustCompile(`\b(10|5|0)\b`)

// ParseGrade reads a judge's reply: the score (grade/5) and whether a grade was found.
func ParseGrade(reply string) (float64, bool) {
	m := gradeRE.FindStringSubmatch(reply)
	if m == nil {
		return -1, false
	}
	g, _ := strconv.Atoi(m[1])
	return float64(g) / 5, true
}

// Prompt returns the grading prompt for one completion, and false when the
// completion has no <answer> to grade.
func (j Judge) Prompt(in Input) (string, bool) {
	ans, ok := ExtractAnswer(in.Output())
	if !ok || strings.TrimSpace(ans) == "" {
		return "", false
	}
	return fmt.Sprintf(JudgePrompt, in.Question, in.Answer, strings.TrimSpace(ans)), true
}

// ScoreBatch grades every input with one batched call of Generate.
func (j Judge) ScoreBatch(ctx context.Context, ins []Input) ([]float64, error) {
	if j.Generate == nil {
		return nil, errors.New("rewards: the judge has no generator; it needs the rollout engine (mmft train wires it)")
	}
	scores := make([]float64, len(ins))
	var prompts []string
	var idx []int
	for i, in := range ins {
		p, ok := j.Prompt(in)
		if !ok {
			scores[i] = -1
			continue
		}
		prompts = append(prompts, p)
		idx = append(idx, i)
	}
	if len(prompts) == 0 {
		return scores, nil
	}
	replies, err := j.Generate(ctx, prompts)
	if err != nil {
		return nil, fmt.Errorf("rewards: judge: %w", err)
	}
	if len(replies) != len(prompts) {
		return nil, fmt.Errorf("rewards: judge: %d replies for %d prompts", len(replies), len(prompts))
	}
	for k, r := range replies {
		scores[idx[k]], _ = ParseGrade(r)
	}
	return scores, nil
}
