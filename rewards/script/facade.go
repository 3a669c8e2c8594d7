package script

import (
	"reflect"

	"github.com/mmft-go/mmft/rewards"
)

// FacadePath is the import path under which a reward's source sees the
// facade (Sample, Completion and the helpers below). Compile imports it into
// the source's scope unqualified, so a reward writes Sample, not reward.Sample;
// importing it explicitly (import "mmft/reward") also works.
const FacadePath = "mmft/reward"

// Sample is what a custom reward sees of the question a completion answers.
type Sample struct {
	// Question is the question asked (may be empty).
	Question string
	// Answer is the gold answer.
	Answer string
	// DocID names the document (image) the question is about (may be empty).
	DocID string
	// Prefill is the assistant text placed in the prompt before generation;
	// format rewards judge Prefill + Completion.Text.
	Prefill string
}

// Completion is what a custom reward sees of one generated completion.
type Completion struct {
	// Text is the generated text, decoded without special tokens.
	Text string
	// Tokens is the number of generated tokens.
	Tokens int
	// IDs are the generated token ids (may be nil when unknown).
	IDs []int
}

// FromInput splits a rewards.Input into the facade's Sample and Completion
// (DocID is empty: rewards.Input does not carry it).
func FromInput(in rewards.Input) (Sample, Completion) {
	return Sample{Question: in.Question, Answer: in.Answer, Prefill: in.Prefill},
		Completion{Text: in.Completion, Tokens: len(in.CompletionIDs), IDs: in.CompletionIDs}
}

// input is the inverse of FromInput.
func input(s Sample, c Completion) rewards.Input {
	return rewards.Input{Prefill: s.Prefill, Completion: c.Text, CompletionIDs: c.IDs, Answer: s.Answer, Question: s.Question}
}

// Output returns s.Prefill + c.Text, the text the format rewards judge.
func Output(s Sample, c Completion) string { return s.Prefill + c.Text }

// Structural is rewards.Structural (the seed's structural reward, -1 to 2).
func Structural(s Sample, c Completion) float64 { return rewards.Structural(input(s, c)) }

// Format is rewards.Format (the strict think/answer format, 0 or 1).
func Format(s Sample, c Completion) float64 { return rewards.Format(input(s, c)) }

// Accuracy is rewards.Accuracy with the default 1% tolerance (0 or 1).
func Accuracy(s Sample, c Completion) float64 { return rewards.Accuracy{}.Score(input(s, c)) }

// AccuracyTol is rewards.Accuracy with relative tolerance relTol for numbers
// (negative: exact).
func AccuracyTol(s Sample, c Completion, relTol float64) float64 {
	return rewards.Accuracy{RelTol: relTol}.Score(input(s, c))
}

// ExtractAnswer is rewards.ExtractAnswer: the trimmed text of the last
// '<answer>…</answer>' pair of text, and whether there is one.
func ExtractAnswer(text string) (string, bool) { return rewards.ExtractAnswer(text) }

// Match is rewards.Accuracy.Match with the default tolerance: whether a
// predicted answer matches the gold one (numbers, currencies, dates, text).
func Match(pred, gold string) bool { return rewards.Accuracy{}.Match(pred, gold) }

// MatchTol is Match with relative tolerance relTol for numbers (negative: exact).
func MatchTol(pred, gold string, relTol float64) bool {
	return rewards.Accuracy{RelTol: relTol}.Match(pred, gold)
}

// facadeSymbols is the facade as yaegi sees it: the non-generic types and
// helpers above, keyed as yaegi's extract tool keys a package.
func facadeSymbols() map[string]reflect.Value {
	return map[string]reflect.Value{
		"Sample":        reflect.ValueOf((*Sample)(nil)),
		"Completion":    reflect.ValueOf((*Completion)(nil)),
		"Output":        reflect.ValueOf(Output),
		"Structural":    reflect.ValueOf(Structural),
		"Format":        reflect.ValueOf(Format),
		"Accuracy":      reflect.ValueOf(Accuracy),
		"AccuracyTol":   reflect.ValueOf(AccuracyTol),
		"ExtractAnswer": reflect.ValueOf(ExtractAnswer),
		"Match":         reflect.ValueOf(Match),
		"MatchTol":      reflect.ValueOf(MatchTol),
	}
}
