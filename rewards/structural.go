package rewards

import (
	"strings"
	"unicode"
)

// The four tags of the think/answer format.
const (
	tagThink       = "<think>"
	tagThinkEnd    = "</think>"
	tagAnswer      = "<answer>"
	tagAnswerEnd   = "</answer>"
	structuralBest = 2.0
)

// Structural is the seed's structural reward on Prefill + Completion: it
// starts at 2.0 and subtracts 0.5 for each failed check:
//  1. '<think>' does not occur exactly once;
//  2. '</think>' does not occur exactly once;
//  3. '<answer>' does not occur exactly once;
//  4. '</answer>' does not occur exactly once;
//  5. '</think>' does not occur exactly once, or the text after it up to the
//     first '<answer>' (or the end) is not blank;
//  6. '</answer>' does not occur exactly once, or the text after it is not blank.
//
// Occurrences are counted without overlap, as Python's str.count does, and
// blank means only white space as Python's str.isspace sees it. Its range is -1.0 to 2.0.
func Structural(in Input) float64 {
	res := in.Output()
	score := structuralBest
	for _, tag := range []string{tagThink, tagThinkEnd, tagAnswer, tagAnswerEnd} {
		if strings.Count(res, tag) != 1 {
			score -= 0.5
		}
	}
	if strings.Count(res, tagThinkEnd) != 1 {
		score -= 0.5
	} else {
		_, after, _ := strings.Cut(res, tagThinkEnd)
		between, _, _ := strings.Cut(after, tagAnswer)
		if !isBlank(between) {
			score -= 0.5
		}
	}
	if strings.Count(res, tagAnswerEnd) != 1 {
		score -= 0.5
	} else {
		_, after, _ := strings.Cut(res, tagAnswerEnd)
		if !isBlank(after) {
			score -= 0.5
		}
	}
	return score
}

// isPySpace reports whether r is white space for Python's str.isspace: Go's
// unicode.IsSpace plus the separators U+001C..U+001F.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// isBlank reports whether s holds only white space (as Python's strip sees it).
func isBlank(s string) bool {
	for _, r := range s {
		if !isPySpace(r) {
			return false
		}
	}
	return true
}
