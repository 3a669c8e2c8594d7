package rewards

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// date is a calendar date; day is 0 for a month ("March 2023").
type date struct{ year, month, day int }

const monthRE = `(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?`

var months = map[string]int{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}

// datePatterns are tried in order; each yields the readings of one written date.
var datePatterns = []struct {
	re   *regexp.Regexp
	read func(g []string) []date
}{
	{regexp.MustCompile(`\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b`), func(g []string) []date {
		return []date{{atoi(g[1]), atoi(g[2]), atoi(g[3])}}
	}},
	{regexp.MustCompile(`\b(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})\b`), func(g []string) []date {
		y := year2(g[3])
		a, b := atoi(g[1]), atoi(g[2])
		return []date{{y, a, b}, {y, b, a}} // month/day (US) or day/month
	}},
	{regexp.MustCompile(`(?i)\b` + monthRE + `\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b`), func(g []string) []date {
		return []date{{atoi(g[3]), month(g[1]), atoi(g[2])}}
	}},
	{regexp.MustCompile(`(?i)\b(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?[\s-]+` + monthRE + `,?[\s-]+(\d{4}|\d{2})\b`), func(g []string) []date {
		return []date{{year2(g[3]), month(g[2]), atoi(g[1])}}
	}},
	{regexp.MustCompile(`(?i)\b` + monthRE + `,?\s+(\d{4})\b`), func(g []string) []date {
		return []date{{atoi(g[2]), month(g[1]), 0}}
	}},
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func month(s string) int { return months[strings.ToLower(s)[:3]] }

// year2 reads a 2- or 4-digit year (2-digit: 70..99 → 19xx, else 20xx).
func year2(s string) int {
	y := atoi(s)
	if len(s) == 2 {
		if y >= 70 {
			return 1900 + y
		}
		return 2000 + y
	}
	return y
}

func (d date) valid() bool {
	return d.year >= 1000 && d.year <= 2999 && d.month >= 1 && d.month <= 12 && d.day >= 0 && d.day <= 31
}

// foundDate is one written date and its possible readings.
type foundDate struct {
	start, end int
	readings   []date
}

// findDates returns the dates written in s in text order; where written
// dates overlap, the longest is kept.
func findDates(s string) []foundDate {
	var all []foundDate
	for _, p := range datePatterns {
		for _, m := range p.re.FindAllStringSubmatchIndex(s, -1) {
			g := make([]string, len(m)/2)
			for i := range g {
				if m[2*i] >= 0 {
					g[i] = s[m[2*i]:m[2*i+1]]
				}
			}
			var ok []date
			for _, d := range p.read(g) {
				if d.valid() {
					ok = append(ok, d)
				}
			}
			if len(ok) > 0 {
				all = append(all, foundDate{start: m[0], end: m[1], readings: ok})
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].start != all[j].start {
			return all[i].start < all[j].start
		}
		return all[i].end > all[j].end
	})
	var found []foundDate
	for _, d := range all {
		if n := len(found); n > 0 && d.start < found[n-1].end {
			if d.end-d.start > found[n-1].end-found[n-1].start {
				found[n-1] = d // a longer date overlapping the last one replaces it
			}
			continue
		}
		found = append(found, d)
	}
	return found
}

// sameDate reports whether two written dates can be read as the same date.
func sameDate(a, b foundDate) bool {
	for _, x := range a.readings {
		for _, y := range b.readings {
			if x == y {
				return true
			}
		}
	}
	return false
}
