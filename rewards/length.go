package rewards

import "fmt"

// OverlongPenalty returns DAPO's soft overlong punishment on the number of
// completion tokens L = len(CompletionIDs): 0 while L ≤ maxTokens − buffer,
// falling linearly to −1 at L = maxTokens, and −1 beyond. It needs
// 0 < buffer ≤ maxTokens.
func OverlongPenalty(maxTokens, buffer int) (Func, error) {
	if maxTokens <= 0 || buffer <= 0 || buffer > maxTokens {
		return nil, fmt.Errorf("overlong penalty: need 0 < buffer (%d) ≤ max tokens (%d)", buffer, maxTokens)
	}
	soft := maxTokens - buffer
	return func(in Input) float64 {
		l := len(in.CompletionIDs)
		switch {
		case l <= soft:
			return 0
		case l <= maxTokens:
			return float64(soft-l) / float64(buffer)
		}
		return -1
	}, nil
}
