package rewards

import (
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// MaxAnswerLen is the longest predicted answer, in bytes, that Match considers.
const MaxAnswerLen = 2000

// DefaultRelTol is the relative tolerance of Accuracy for numbers: 1%.
const DefaultRelTol = 0.01

// Accuracy is the answer-accuracy reward for financial questions: 1 when the
// text of the completion's '<answer>…</answer>' (the last complete pair of
// Prefill + Completion) matches the gold Answer, else 0 (also 0 when there is
// no answer pair).
//
// Matching (see Match) understands numbers written with thousands separators,
// currency signs and codes ($ € £ ¥ ₹, USD, EUR, ...), percent, negatives in
// parentheses or with '-', scale words (thousand/million/billion/trillion,
// k/M/B/bn/mn/mm/tn), years, and dates in several formats; everything else is
// compared as normalized text.
type Accuracy struct {
	// RelTol is the relative tolerance for numbers: 0 means DefaultRelTol, a
	// negative value means exact equality.
	RelTol float64
}

// Score is the reward: 1 when the answer in the output matches in.Answer, else 0.
func (a Accuracy) Score(in Input) float64 {
	pred, ok := ExtractAnswer(in.Output())
	if !ok {
		return 0
	}
	if a.Match(pred, in.Answer) {
		return 1
	}
	return 0
}

func (a Accuracy) tol() float64 {
	switch {
	case a.RelTol == 0:
		return DefaultRelTol
	case a.RelTol < 0:
		return 0
	}
	return a.RelTol
}

// Match reports whether the predicted answer pred matches the gold answer.
// The gold answer decides the kind of comparison:
//
//   - a date (2023-03-31, 03/31/2023, 31/03/2023, March 31, 2023, 31 Mar 2023,
//     31-Mar-23; a month: March 2023): pred must contain a date with a reading
//     equal to one of the gold's (day/month order is ambiguous both ways);
//   - a year (2023, FY2023): the years written in pred must be exactly that one;
//   - a number (one number, possibly with currency, scale, percent, and
//     filler words; or an equation, whose last '=' gives the result): the
//     number of pred, taken after its last '=' when it has one, else its only
//     number, else the first or the last of its numbers of the same kind
//     (percent, currency) as the gold, must be within the relative tolerance.
//     Values are compared with their scales (79M = 79,000,000); when only
//     one side wrote a scale, the written numbers are also compared ("79" for
//     "$79M", as when a question says "in millions"). Currencies must agree
//     when both are written. A percent matches the same number without '%'.
//     A negative gold matches a positive number with a word of decrease
//     ("a decline of 5%" for "-5%"), and the other way round;
//   - text otherwise: equal after normalization (case, accents, punctuation,
//     articles a/an/the, white space, quarter names such as "third quarter" =
//     "Q3"), also after dropping a lead-in ("the answer is") from pred and
//     trailing generic nouns ("segment", "region", ...) from both; a yes/no
//     gold matches a pred that starts with that word.
//
// An equal normalized text always matches. A pred longer than MaxAnswerLen
// bytes never matches (no financial answer is that long, and it bounds the work).
func (a Accuracy) Match(pred, gold string) bool {
	if len(pred) > MaxAnswerLen {
		return false
	}
	pred, gold = normalizeText(strings.TrimSpace(pred)), normalizeText(strings.TrimSpace(gold))
	np, ng := normalizeWords(pred), normalizeWords(gold)
	if np == ng {
		return true
	}
	if ng == "" || np == "" {
		return false
	}
	if gd, ok := wholeDate(gold); ok {
		for _, pd := range findDates(pred) {
			if sameDate(pd, gd) {
				return true
			}
		}
		return false
	}
	if gq, ok := numericAnswer(gold, pred); ok {
		if gq.year {
			return yearsIn(pred) == yearsIn(gold)
		}
		for _, pq := range candidates(pred, gq) {
			if a.sameQuantity(pq, gq, pred, gold) {
				return true
			}
		}
		return false
	}
	if ng == "yes" || ng == "no" {
		first, _, _ := strings.Cut(np, " ")
		return first == ng
	}
	return stripGeneric(stripLeadIn(np)) == stripGeneric(ng)
}

// leadIns are phrases a model puts before its answer.
var leadIns = []string{"final answer is ", "final answer ", "answer is ", "answer ", "it is ", "it was ", "they are ", "they were "}

// stripLeadIn removes one lead-in phrase from normalized text.
func stripLeadIn(s string) string {
	for _, l := range leadIns {
		if rest, ok := strings.CutPrefix(s, l); ok {
			return rest
		}
	}
	return s
}

// genericTail are nouns that may follow a label without changing it
// ("North America segment" for "North America").
var genericTail = wordSet("segment segments region division business unit company line item category")

// stripGeneric removes trailing generic nouns from normalized text.
func stripGeneric(s string) string {
	words := strings.Fields(s)
	for len(words) > 1 && genericTail[words[len(words)-1]] {
		words = words[:len(words)-1]
	}
	return strings.Join(words, " ")
}

// sameQuantity compares two numbers as Match documents.
func (a Accuracy) sameQuantity(p, g quantity, pred, gold string) bool {
	if !sameCurrency(p.currency, g.currency) {
		return false
	}
	if p.percent != g.percent {
		// A bare number for a percent (or the reverse); no scale may be involved.
		if p.scaled || g.scaled || (p.currency != "" || g.currency != "") {
			return false
		}
	}
	pv, pm := p.value, p.mantissa
	if g.value < 0 && pv > 0 && hasDecreaseWord(pred) || pv < 0 && g.value > 0 && hasDecreaseWord(gold) {
		pv, pm = -pv, -pm
	}
	tol := a.tol()
	if closeTo(pv, g.value, tol) {
		return true
	}
	return p.scaled != g.scaled && closeTo(pm, g.mantissa, tol)
}

var decreaseRE = regexp.MustCompile(`(?i)\b(decrease[sd]?|declin(e|ed|es|ing)|drop(ped|s)?|fell|fall(s|en)?|down|lower|loss(es)?|negative|reduc(ed|tion)|shrank|contract(ed|ion))\b`)

func hasDecreaseWord(s string) bool { return decreaseRE.MatchString(s) }

// wholeDate returns the date of s when s is just a date (with filler words).
func wholeDate(s string) (foundDate, bool) {
	ds := findDates(s)
	if len(ds) != 1 {
		return foundDate{}, false
	}
	rest := s[:ds[0].start] + " " + s[ds[0].end:]
	if !onlyFiller(rest, "") {
		return foundDate{}, false
	}
	return ds[0], true
}

// numericAnswer returns the number of a gold answer that is one number (with
// filler words, or words also present in pred) or an equation's result.
func numericAnswer(gold, pred string) (quantity, bool) {
	qs := quantities(resultPart(gold))
	if len(qs) != 1 {
		return quantity{}, false
	}
	part := resultPart(gold)
	rest := part[:qs[0].start] + " " + part[qs[0].end:]
	if !onlyFiller(rest, pred) {
		return quantity{}, false
	}
	return qs[0], true
}

// resultPart returns the text after the last '=' that holds a number, or s.
func resultPart(s string) string {
	parts := strings.Split(s, "=")
	for i := len(parts) - 1; i > 0; i-- {
		if len(quantities(parts[i])) > 0 {
			return parts[i]
		}
	}
	return s
}

// candidates returns the numbers of pred to try against the gold number g.
func candidates(pred string, g quantity) []quantity {
	qs := quantities(resultPart(pred))
	if len(qs) <= 1 {
		return qs
	}
	var same []quantity
	for _, q := range qs {
		if q.year && !g.year {
			continue
		}
		if q.percent == g.percent && (g.currency == "" || q.currency != "") {
			same = append(same, q)
		}
	}
	if len(same) == 0 {
		for _, q := range qs {
			if !q.year || g.year {
				same = append(same, q)
			}
		}
	}
	if len(same) <= 1 {
		return same
	}
	return []quantity{same[0], same[len(same)-1]}
}

var yearRE = regexp.MustCompile(`(?i)(?:^|[^0-9])(19\d\d|20\d\d|2100)(?:[^0-9]|$)`)

// yearsIn returns the distinct years written in s, sorted and joined.
func yearsIn(s string) string {
	seen := map[string]bool{}
	var ys []string
	for _, m := range yearRE.FindAllStringSubmatch(s, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			ys = append(ys, m[1])
		}
	}
	for i := 1; i < len(ys); i++ {
		for j := i; j > 0 && ys[j] < ys[j-1]; j-- {
			ys[j], ys[j-1] = ys[j-1], ys[j]
		}
	}
	return strings.Join(ys, ",")
}

// fillerWords may surround a number or date in a gold answer without making
// it text.
var fillerWords = wordSet(`approximately approx about around roughly nearly almost circa ca some
		total of by was is were are be in at on and to from for as it its amount value
		increase increased decrease decreased decline declined growth grew rise rose fell drop dropped up down
		change changed net positive negative gain loss fy fiscal year financial ended ending end
		per share shares unit units each times x usd eur gbp dollars euros pounds yen`)

func wordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// onlyFiller reports whether every word of rest is a filler word or a word of pred.
func onlyFiller(rest, pred string) bool {
	predWords := map[string]bool{}
	for _, w := range strings.Fields(normalizeWords(pred)) {
		predWords[w] = true
	}
	for _, w := range strings.Fields(normalizeWords(rest)) {
		if !fillerWords[w] && !predWords[w] {
			return false
		}
	}
	return true
}

var (
	quarterRE = regexp.MustCompile(`\b(?:(first|1st|one)|(second|2nd|two)|(third|3rd|three)|(fourth|4th|four))\s+quarter\b|\bquarter\s+([1-4])\b`)
	articleRE = regexp.MustCompile(`\b(a|an|the)\b`)
	// thousandsRE finds a thousands separator between digits.
	thousandsRE = regexp.MustCompile(`(\d),(\d{3})`)
	// parenNegRE finds an accounting negative such as "(1234)" or "($3.1m)".
	parenNegRE = regexp.MustCompile(`\(\s*([$€£¥]?\s*\d[\d.]*\s*[a-z%]*)\s*\)`)
	accentsT   = transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
)

// normalizeWords lower-cases s, removes accents, punctuation and the articles
// a/an/the, spells quarters as q1..q4 and collapses white space.
func normalizeWords(s string) string {
	if t, _, err := transform.String(accentsT, s); err == nil {
		s = t
	}
	s = strings.ToLower(s)
	for thousandsRE.MatchString(s) {
		s = thousandsRE.ReplaceAllString(s, "$1$2")
	}
	s = parenNegRE.ReplaceAllString(s, "-$1")
	s = quarterRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := quarterRE.FindStringSubmatch(m)
		for i := 1; i <= 4; i++ {
			if sub[i] != "" {
				return " q" + string(rune('0'+i)) + " "
			}
		}
		return " q" + sub[5] + " "
	})
	s = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '%' || r == '$' || r == '€' || r == '£' || r == '¥' {
			return r
		}
		if r == '.' || r == '-' {
			return r
		}
		return ' '
	}, s)
	// Dots and dashes only matter inside numbers ("1.5", "-3").
	fields := strings.Fields(s)
	for i, f := range fields {
		f = strings.TrimRight(f, ".-")
		if !strings.HasPrefix(f, "-") || len(f) < 2 || f[1] < '0' || f[1] > '9' {
			f = strings.TrimLeft(f, ".-")
		}
		if !strings.ContainsAny(f, "0123456789") {
			f = strings.NewReplacer(".", "", "-", " ").Replace(f)
		}
		fields[i] = f
	}
	s = strings.Join(fields, " ")
	s = articleRE.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}
