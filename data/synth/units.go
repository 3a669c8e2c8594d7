package synth

import (
	"strconv"
	"strings"
)

// Unit says how a figure is written: currency, scale word and decimals.
type Unit struct {
	// Symbol is the currency written before the number ("$", "€", "£",
	// "¥", "CHF "), or "" for a plain count.
	Symbol string
	// Scale is "", "thousand", "million" or "billion": the figures drawn
	// are in that many units.
	Scale string
	// Dec is the number of decimals (0 to 2).
	Dec int
}

// pow10 returns 10^n for small n.
func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// Number writes v (a count of 10^-Dec units) with thousands separators and
// Dec decimals, e.g. 123456 with Dec 1 → "12,345.6"; negatives get '-'.
func (u Unit) Number(v int64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	p := pow10(u.Dec)
	whole, frac := v/p, v%p
	s := groupThousands(strconv.FormatInt(whole, 10))
	if u.Dec > 0 {
		f := strconv.FormatInt(frac, 10)
		s += "." + strings.Repeat("0", u.Dec-len(f)) + f
	}
	if neg {
		s = "-" + s
	}
	return s
}

// Cell writes v as a statement shows it: accounting negatives in parentheses.
func (u Unit) Cell(v int64) string {
	if v < 0 {
		return "(" + u.Number(-v) + ")"
	}
	return u.Number(v)
}

// Answer writes v as a full answer: currency, number, scale word,
// e.g. "$79 million", "-€1,234.5 thousand", "1,200".
func (u Unit) Answer(v int64) string {
	s := u.Symbol + u.Number(v)
	if v < 0 {
		s = "-" + u.Symbol + u.Number(-v)
	}
	if u.Scale != "" {
		s += " " + u.Scale
	}
	return s
}

// Note is the unit note of a chart or table, e.g. "in $ millions", or "" for
// plain counts.
func (u Unit) Note() string {
	sym := strings.TrimSpace(u.Symbol)
	switch {
	case sym == "" && u.Scale == "":
		return ""
	case sym == "":
		return "in " + u.Scale + "s"
	case u.Scale == "":
		return "in " + sym
	}
	return "in " + sym + " " + u.Scale + "s"
}

func groupThousands(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// percent writes 100·num/den with one decimal ("12.5%", "-3.0%"), rounding
// halves away from zero. den must not be 0.
func percent(num, den int64) string {
	// Work in integers: tenths of a percent = round(1000·num/den).
	n, d := 1000*num, den
	if d < 0 {
		n, d = -n, -d
	}
	q := n / d
	r := n % d
	if 2*abs64(r) >= d {
		if n < 0 {
			q--
		} else {
			q++
		}
	}
	return Unit{Dec: 1}.Number(q) + "%"
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
