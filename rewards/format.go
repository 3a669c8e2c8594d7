package rewards

import "strings"

// Format is the strict format reward: 1 when the output (Prefill +
// Completion) is exactly
//
//	[lead-in] <think> THOUGHT </think> [white space] <answer> ANSWER </answer> [white space]
//
// and 0 otherwise. Each of the four tags occurs exactly once, in that order;
// ANSWER must not be blank (THOUGHT may be). The lead-in before '<think>' is
// allowed only when it is blank or lies inside the prefill (so the seed's
// prefill "Let me solve this step by step.\n<think>" passes, but a model that
// writes its own preamble before '<think>' does not). Only white space may
// follow '</answer>'; an end-of-turn token must therefore be decoded away
// (skip special tokens) before scoring.
func Format(in Input) float64 {
	out := in.Output()
	for _, tag := range []string{tagThink, tagThinkEnd, tagAnswer, tagAnswerEnd} {
		if strings.Count(out, tag) != 1 {
			return 0
		}
	}
	i := strings.Index(out, tagThink)
	j := strings.Index(out, tagThinkEnd)
	k := strings.Index(out, tagAnswer)
	l := strings.Index(out, tagAnswerEnd)
	if !(i < j && j < k && k < l) {
		return 0
	}
	if lead := out[:i]; !isBlank(lead) && i > len(in.Prefill) {
		return 0
	}
	if !isBlank(out[j+len(tagThinkEnd) : k]) {
		return 0
	}
	if isBlank(out[k+len(tagAnswer) : l]) {
		return 0
	}
	if !isBlank(out[l+len(tagAnswerEnd):]) {
		return 0
	}
	return 1
}

// ExtractAnswer returns the text inside the '<answer>…</answer>' pair of the
// output, trimmed, and whether there is one. With several pairs it takes the
// last complete one.
func ExtractAnswer(output string) (string, bool) {
	l := strings.LastIndex(output, tagAnswerEnd)
	if l < 0 {
		return "", false
	}
	k := strings.LastIndex(output[:l], tagAnswer)
	if k < 0 {
		return "", false
	}
	return strings.TrimSpace(output[k+len(tagAnswer) : l]), true
}
