package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Pattern is Qwen2's pre-tokenizer split pattern, as written in its
// tokenizer.json. The scanner in this file implements exactly this pattern
// (Oniguruma semantics: alternatives tried in order at each position, greedy
// quantifiers with backtracking, \s = Unicode White_Space, \p{L} letters,
// \p{N} numbers, (?i) with Unicode simple case folding).
const Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

func isL(r rune) bool {
	if r < utf8.RuneSelf {
		return (r|0x20) >= 'a' && (r|0x20) <= 'z'
	}
	return unicode.IsLetter(r)
}

func isN(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= '0' && r <= '9'
	}
	return unicode.IsNumber(r)
}

// isS reports Unicode White_Space, which is what \s matches in Oniguruma.
func isS(r rune) bool { return unicode.IsSpace(r) }

// isOther reports the class [^\s\p{L}\p{N}].
func isOther(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

// runeAt decodes the rune at s[i:]; it returns (-1, 0) at the end of s. An
// invalid byte decodes as utf8.RuneError of width 1 (an "other" character).
func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// foldsTo reports whether r matches the ASCII lower-case letter c under
// Unicode simple case folding (as (?i) does in Oniguruma).
func foldsTo(r rune, c byte) bool {
	if r == rune(c) || r == rune(c-'a'+'A') {
		return true
	}
	return c == 's' && r == 0x017F // LATIN SMALL LETTER LONG S folds to s
}

// contraction returns the byte length of a contraction suffix (s, t, re, ve,
// m, ll, d, any case) at s[i:], or 0.
func contraction(s string, i int) int {
	r1, w1 := runeAt(s, i)
	if w1 == 0 {
		return 0
	}
	switch {
	case foldsTo(r1, 's'), foldsTo(r1, 't'), foldsTo(r1, 'm'), foldsTo(r1, 'd'):
		return w1
	}
	r2, w2 := runeAt(s, i+w1)
	switch {
	case foldsTo(r1, 'r') && foldsTo(r2, 'e'),
		foldsTo(r1, 'v') && foldsTo(r2, 'e'),
		foldsTo(r1, 'l') && foldsTo(r2, 'l'):
		return w1 + w2
	}
	return 0
}

// matchLen returns the byte length of the pattern's match at s[i:], i < len(s).
// Every position matches (each rune is a letter, a number, white space or
// other), so the result is always at least one rune.
func matchLen(s string, i int) int {
	r, w := runeAt(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' {
		if n := contraction(s, i+w); n > 0 {
			return w + n
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return w + letterRun(s, i+w)
	}
	if r != '\r' && r != '\n' && !isN(r) {
		if r2, w2 := runeAt(s, i+w); w2 > 0 && isL(r2) {
			return w + w2 + letterRun(s, i+w+w2)
		}
	}
	// \p{N}
	if isN(r) {
		return w
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	j := i
	if r == ' ' {
		if r2, w2 := runeAt(s, i+w); w2 > 0 && isOther(r2) {
			j = i + w
		}
	}
	if r2, w2 := runeAt(s, j); w2 > 0 && isOther(r2) {
		j += w2
		for {
			r3, w3 := runeAt(s, j)
			if w3 == 0 || !isOther(r3) {
				break
			}
			j += w3
		}
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j - i
	}
	// Here r is white space. Find the maximal white-space run s[i:end].
	end, lastNL, lastW, runes := i, -1, 0, 0
	for {
		r3, w3 := runeAt(s, end)
		if w3 == 0 || !isS(r3) {
			break
		}
		if r3 == '\r' || r3 == '\n' {
			lastNL = end
		}
		end += w3
		lastW = w3
		runes++
	}
	// \s*[\r\n]+ : ends just after the run's last line break.
	if lastNL >= 0 {
		return lastNL + 1 - i
	}
	// \s+(?!\S) : the whole run at the end of text, else all but its last rune.
	if end == len(s) {
		return end - i
	}
	if runes >= 2 {
		return end - lastW - i
	}
	// \s+
	return end - i
}

// letterRun returns the byte length of the run of letters at s[i:].
func letterRun(s string, i int) int {
	j := i
	for {
		r, w := runeAt(s, j)
		if w == 0 || !isL(r) {
			return j - i
		}
		j += w
	}
}

// preTokenize calls emit with each pre-token of s, in order; the pieces
// concatenate to s.
func preTokenize(s string, emit func(piece string)) {
	for i := 0; i < len(s); {
		n := matchLen(s, i)
		emit(s[i : i+n])
		i += n
	}
}
