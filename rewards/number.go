package rewards

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// quantity is one number found in an answer, with its decorations.
type quantity struct {
	mantissa float64 // the written number, signed, before the scale word
	value    float64 // mantissa times the scale
	scaled   bool    // a scale word or suffix (thousand, M, bn, ...) was written
	percent  bool    // '%', "percent", "percentage points", ...
	currency string  // ISO-like code ("USD", "EUR", ...), "¥" (JPY or CNY) or ""
	year     bool    // a bare integer 1900..2100 with no decoration: probably a year
	start    int     // byte span in the normalized text
	end      int
}

// quantityRE matches a number with an optional sign or parentheses, currency
// before or after, scale word and percent sign. Spans are checked afterwards
// so that numbers glued to letters ("Q3", "FY2023", "3rd") are not taken.
var quantityRE = regexp.MustCompile(`(?i)(\(\s*)?(-\s*)?(us\$|c\$|a\$|hk\$|[$€£¥₹]|usd|eur|gbp|jpy|cny|rmb|chf|cad|aud|inr)?\s*(-\s*)?` +
	`(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:\.\d{3})+,\d+|\d+(?:\.\d+)?|\.\d+)` +
	`(?:\s*(thousand|million|billion|trillion|mln|mn|mm|bn|tn|k|m|b)\b)?` +
	`(?:\s*(%|percent\b|per cent\b|pct\b|percentage points?\b|pp\b))?` +
	`(?:\s*(usd|eur|gbp|jpy|cny|rmb|chf|cad|aud|inr|dollars?|euros?|pounds?|yen|yuan)\b)?` +
	`(\s*\))?`)

var scales = map[string]float64{
	"thousand": 1e3, "k": 1e3,
	"million": 1e6, "mln": 1e6, "mn": 1e6, "mm": 1e6, "m": 1e6,
	"billion": 1e9, "bn": 1e9, "b": 1e9,
	"trillion": 1e12, "tn": 1e12,
}

var currencies = map[string]string{
	"$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD",
	"c$": "CAD", "cad": "CAD", "a$": "AUD", "aud": "AUD", "hk$": "HKD",
	"€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
	"£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP",
	"¥": "¥", "jpy": "JPY", "yen": "JPY", "cny": "CNY", "rmb": "CNY", "yuan": "CNY",
	"₹": "INR", "inr": "INR", "chf": "CHF",
}

// sameCurrency reports whether two currency marks can name the same currency
// (an absent mark matches any).
func sameCurrency(a, b string) bool {
	if a == "" || b == "" || a == b {
		return true
	}
	yen := func(x, y string) bool { return x == "¥" && (y == "JPY" || y == "CNY") }
	return yen(a, b) || yen(b, a)
}

// normalizeText replaces the Unicode minus and dashes by '-' and unusual
// spaces by ' ', so that the regular expressions see one spelling.
func normalizeText(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\u2212', '\u2013', '\u2014', '\u2012', '\uFE63', '\uFF0D':
			return '-'
		case '\u00A0', '\u2009', '\u202F', '\u2007', '\u2002', '\u2003':
			return ' '
		case '\uFF04':
			return '$'
		}
		return r
	}, s)
}

// quantities returns every number of s (already normalized) in order.
func quantities(s string) []quantity {
	var qs []quantity
	for _, m := range quantityRE.FindAllStringSubmatchIndex(s, -1) {
		group := func(i int) string {
			if m[2*i] < 0 {
				return ""
			}
			return s[m[2*i]:m[2*i+1]]
		}
		start, end := m[0], m[1]
		for start < end && (s[start] == ' ' || s[start] == '\t' || s[start] == '\n') {
			start++ // the optional groups let a match begin with white space
		}
		rangeDash := false
		// A number glued to a letter or digit is a label (Q3, FY2023, A1), not
		// an amount; a '-' glued to one is a range (2019-2020), not a sign.
		if r, _ := utf8.DecodeLastRuneInString(s[:start]); start > 0 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_') {
			if group(1) != "" || group(2) == "" {
				continue
			}
			rangeDash, start = true, m[5]
		}
		if r, _ := utf8.DecodeRuneInString(s[end:]); end < len(s) && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') {
			continue
		}
		numText := group(5)
		v, ok := parseNumber(numText)
		if !ok {
			continue
		}
		q := quantity{start: start, end: end}
		open, close := group(1) != "", group(9) != ""
		neg := group(2) != "" || group(4) != ""
		yearLike := len(numText) == 4 && group(3) == "" && group(6) == "" && group(7) == "" && group(8) == "" &&
			v >= 1900 && v <= 2100 && math.Trunc(v) == v
		if open && close && !(yearLike && !neg) {
			neg = true
		} else if open {
			// A lone '(' belongs to the text around, not to the number.
			q.start = m[3]
		} else if close {
			q.end = m[18]
		}
		if rangeDash {
			neg = group(4) != ""
		}
		if neg {
			v = -v
		}
		q.mantissa, q.value = v, v
		if sc := strings.ToLower(group(6)); sc != "" {
			q.scaled = true
			q.value = v * scales[sc]
		}
		q.percent = group(7) != ""
		cur := strings.ToLower(group(3))
		if cur == "" {
			cur = strings.ToLower(group(8))
		}
		q.currency = currencies[cur]
		q.year = yearLike && !neg
		qs = append(qs, q)
	}
	return qs
}

// parseNumber parses a written number: "1,234.5", "1.234,5" (European), "12", ".5".
func parseNumber(s string) (float64, bool) {
	if strings.Count(s, ",") > 0 && strings.Contains(s, ".") && strings.LastIndex(s, ",") > strings.LastIndex(s, ".") {
		s = strings.ReplaceAll(s, ".", "")
		s = strings.Replace(s, ",", ".", 1)
	} else {
		s = strings.ReplaceAll(s, ",", "")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// close reports whether got is within relTol of want (relative to want; an
// absolute 1e-9 when want is 0).
func closeTo(got, want, relTol float64) bool {
	diff := math.Abs(got - want)
	if want == 0 {
		return diff <= 1e-9
	}
	return diff <= relTol*math.Abs(want)+1e-12
}
