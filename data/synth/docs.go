package synth

import (
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// builder draws one document.
type builder struct {
	rng    *rand.Rand
	w, h   int
	fonts  *fonts
	easy   bool
	canvas *canvas
	ink    color.RGBA // text colour
	pal    []color.RGBA
}

// start makes the canvas with a random page colour and palette.
func (b *builder) start() {
	bg := rgb(pick(b.rng, backgrounds))
	b.canvas = newCanvas(b.w, b.h, bg, b.fonts)
	b.ink = rgb(pick(b.rng, []uint32{0x000000, 0x1a1a1a, 0x222b36}))
	for _, c := range pick(b.rng, palettes) {
		b.pal = append(b.pal, rgb(c))
	}
}

func (b *builder) company() string {
	return pick(b.rng, companyStems) + " " + pick(b.rng, companyKinds)
}

// unit picks a currency unit (or a plain count unit for count metrics).
func (b *builder) unit(m metric) Unit {
	if m.count {
		return Unit{Scale: pick(b.rng, []string{"", "", "thousand"}), Dec: 0}
	}
	sym := pick(b.rng, currencySymbols)
	u := Unit{Symbol: sym, Scale: pick(b.rng, []string{"million", "million", "thousand", "billion"}), Dec: b.rng.IntN(2)}
	if u.Scale == "billion" {
		u.Dec = 1
	}
	if sym == "¥" {
		u.Dec = 0
		if u.Scale == "thousand" {
			u.Scale = "million"
		}
	}
	return u
}

// series returns n figures in unit u (counts of 10^-dec units) following a random walk,
// pairwise distinct so that the largest and smallest are unique.
func (b *builder) series(n int, m metric, u Unit) []int64 {
	p := pow10(u.Dec)
	for {
		base := 20 + b.rng.Float64()*880
		if b.rng.IntN(3) == 0 {
			base = 5 + b.rng.Float64()*95
		}
		if u.Scale == "billion" {
			base /= 8 // keep company figures plausible: a few to ~100 billion
		}
		vs := make([]int64, n)
		x := base
		for i := range vs {
			vs[i] = int64(math.Round(x * float64(p)))
			x *= 0.85 + b.rng.Float64()*0.42
		}
		if m.signed && b.rng.IntN(4) == 0 {
			k := b.rng.IntN(n)
			vs[k] = -vs[k] / 3
		}
		if distinct(vs) && !slices.Contains(vs, 0) {
			return vs
		}
	}
}

func distinct(vs []int64) bool {
	seen := map[int64]bool{}
	for _, v := range vs {
		if seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

// categories returns n column labels of one kind and the kind's names (singular, plural).
func (b *builder) categories(n int) (labels []string, kind, plural string) {
	switch b.rng.IntN(3) {
	case 0:
		n = min(n, 4)
		for i := range n {
			labels = append(labels, fmt.Sprintf("Q%d", i+1))
		}
		return labels, "quarter", "quarters"
	case 1:
		y0 := 2012 + b.rng.IntN(12)
		for i := range n {
			labels = append(labels, fmt.Sprint(y0+i))
		}
		return labels, "year", "years"
	}
	return pickN(b.rng, segments, n), "segment", "segments"
}

// seriesQA makes the questions about one row of figures (a chart's series).
func seriesQA(rng *rand.Rand, t *Table, row int, m metric, kind, plural string) []QA {
	what, was := m.name, m.verb()
	vals := t.Cells[row]
	labels := t.ColLabels
	u := t.Unit
	n := len(vals)
	in := func(l string) string {
		if kind == "segment" {
			return "for the " + l + " segment"
		}
		return "in " + l
	}
	var qs []QA
	c := rng.IntN(n)
	qs = append(qs, QA{Question: askValue(rng, m, in(labels[c])), Answer: u.Answer(vals[c]), Op: "value", Args: []int{row, c}})
	c2 := (c + 1 + rng.IntN(n-1)) % n
	qs = append(qs, QA{Question: askValue(rng, m, in(labels[c2])), Answer: u.Answer(vals[c2]), Op: "value", Args: []int{row, c2}})
	hi, lo := argmax(vals), argmin(vals)
	qs = append(qs, QA{Question: pick(rng, []string{fmt.Sprintf("Which %s had the highest %s?", kind, what), fmt.Sprintf("In which %s %s the %s largest?", kind, was, what)}), Answer: labels[hi], Op: "max", Args: []int{row}})
	qs = append(qs, QA{Question: fmt.Sprintf("Which %s had the lowest %s?", kind, what), Answer: labels[lo], Op: "min", Args: []int{row}})
	a, bb := rng.IntN(n), 0
	for bb = rng.IntN(n); bb == a; bb = rng.IntN(n) {
	}
	if vals[a] > vals[bb] {
		a, bb = bb, a
	}
	qs = append(qs, QA{Question: fmt.Sprintf("How much higher %s the %s %s than %s?", was, what, in(labels[bb]), in(labels[a])),
		Answer: u.Answer(vals[bb] - vals[a]), Op: "diff", Args: []int{row, a, bb}})
	if kind != "segment" && vals[0] > 0 {
		qs = append(qs, QA{Question: fmt.Sprintf("What was the percentage change in %s from %s to %s?", what, labels[0], labels[n-1]),
			Answer: percent(vals[n-1]-vals[0], vals[0]), Op: "change", Args: []int{row, 0, n - 1}})
	}
	var sum int64
	for _, v := range vals {
		sum += v
	}
	qs = append(qs, QA{Question: fmt.Sprintf("What was the total %s across all %d %s shown?", what, n, plural), Answer: u.Answer(sum), Op: "total", Args: []int{row}})
	qs = append(qs, QA{Question: fmt.Sprintf("How many %s are shown in the chart?", plural), Answer: fmt.Sprint(n), Op: "count"})
	return choose(rng, qs, 4+rng.IntN(2))
}

// askValue phrases a look-up question in one of a few ways.
func askValue(rng *rand.Rand, m metric, where string) string {
	was, what := m.verb(), m.name
	switch k := rng.IntN(3); {
	case k == 1:
		return fmt.Sprintf("According to the chart, what %s the %s %s?", was, what, where)
	case k == 2 && !m.count:
		return fmt.Sprintf("How much %s the %s %s?", was, what, where)
	}
	return fmt.Sprintf("What %s the %s %s?", was, what, where)
}

// choose keeps k of qs (all when fewer), in their order.
func choose(rng *rand.Rand, qs []QA, k int) []QA {
	if len(qs) <= k {
		return qs
	}
	keep := rng.Perm(len(qs))[:k]
	mark := make([]bool, len(qs))
	for _, i := range keep {
		mark[i] = true
	}
	var out []QA
	for i, q := range qs {
		if mark[i] {
			out = append(out, q)
		}
	}
	return out
}

func argmax(vs []int64) int {
	k := 0
	for i, v := range vs {
		if v > vs[k] {
			k = i
		}
	}
	return k
}

func argmin(vs []int64) int {
	k := 0
	for i, v := range vs {
		if v < vs[k] {
			k = i
		}
	}
	return k
}

// title draws a title and subtitle at the top and returns the y below them.
func (b *builder) title(title, subtitle string) int {
	c := b.canvas
	size := max(12, float64(b.h)/19)
	pad := b.h / 40
	al := pick(b.rng, []align{left, center})
	x := pad * 2
	if al == center {
		x = b.w / 2
	}
	size = c.fitSize(title, size, true, b.w-4*pad)
	y := pad + int(size)
	c.text(title, x, y, size, true, al, b.ink)
	if subtitle != "" {
		ss := c.fitSize(subtitle, max(9, float64(b.h)/28), false, b.w-4*pad)
		y += int(ss*1.5) + 2
		c.text(subtitle, x, y, ss, false, al, lighten(b.ink, 0.25))
	}
	return y + pad
}

// niceStep returns a round tick step (1, 2 or 5 × 10^k) for a span of about n ticks.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// axisRange returns the tick range covering the values (in display units).
func axisRange(vals []float64) (lo, hi, step float64) {
	mn, mx := 0.0, 0.0
	for _, v := range vals {
		mn, mx = math.Min(mn, v), math.Max(mx, v)
	}
	if mx == mn {
		mx = mn + 1
	}
	step = niceStep(mx-mn, 5)
	lo = math.Floor(mn/step) * step
	hi = math.Ceil(mx/step) * step
	// Leave room for the value labels beyond the longest bars.
	if hi-mx < step/3 {
		hi += step
	}
	if mn < 0 && mn-lo < step/3 {
		lo -= step
	}
	return lo, hi, step
}

func tickLabel(v, step float64) string {
	if step >= 1 {
		s := groupThousands(fmt.Sprintf("%.0f", math.Abs(v)))
		if v < 0 {
			s = "-" + s
		}
		return s
	}
	return fmt.Sprintf("%g", math.Round(v/step)*step)
}

// display converts figures to floats in display units.
func display(vs []int64, dec int) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = float64(v) / float64(pow10(dec))
	}
	return out
}

// chartTitles returns the title and subtitle lines of a chart.
func chartTitles(company string, m metric, u Unit, kind string, year int) (string, string) {
	by := "by " + kind
	if kind == "quarter" {
		by = fmt.Sprintf("by quarter, FY%d", year)
	}
	sub := m.title + " " + by
	if note := u.Note(); note != "" {
		sub += " (" + note + ")"
	}
	return company, sub
}

// barChart draws a vertical or horizontal bar chart of one series.
func (b *builder) barChart() Doc {
	b.start()
	m := pick(b.rng, metrics)
	u := b.unit(m)
	n := 3 + b.rng.IntN(4)
	labels, kind, plural := b.categories(n)
	n = len(labels)
	vals := b.series(n, m, u)
	company := b.company()
	year := 2015 + b.rng.IntN(10)
	title, sub := chartTitles(company, m, u, kind, year)
	t := Table{RowLabels: []string{m.title}, ColLabels: labels, Cells: [][]int64{vals}, Unit: u}
	top := b.title(title, sub)
	horizontal := b.rng.IntN(3) == 0
	b.drawBars(t, top, horizontal)
	d := Doc{Kind: "bar", Table: t}
	if horizontal {
		d.Kind = "hbar"
	}
	d.Content = chartContent(title, sub, t)
	d.QA = seriesQA(b.rng, &t, 0, m, kind, plural)
	return d
}

// drawBars draws row 0 of t as bars below y=top, with the value on each bar.
func (b *builder) drawBars(t Table, top int, horizontal bool) {
	c := b.canvas
	vals := t.Cells[0]
	dv := display(vals, t.Unit.Dec)
	lo, hi, step := axisRange(dv)
	fs := max(9, float64(b.h)/30)
	if b.easy {
		fs = float64(b.h) / 14
	}
	pad := b.h / 30
	grid := b.rng.IntN(3) > 0
	barCol := b.pal[0]
	multi := b.rng.IntN(4) == 0
	axisCol := lighten(b.ink, 0.2)
	gridCol := lighten(b.ink, 0.85)
	tickW := 0
	for v := lo; v <= hi+step/2; v += step {
		tickW = max(tickW, c.textWidth(tickLabel(v, step), fs, false))
	}
	if !horizontal {
		x0, x1 := pad+tickW+pad/2, b.w-pad*2
		y0, y1 := top+int(fs), b.h-pad-int(fs*1.6)
		scale := func(v float64) int { return y1 - int(math.Round((v-lo)/(hi-lo)*float64(y1-y0))) }
		for v := lo; v <= hi+step/2; v += step {
			y := scale(v)
			if grid {
				c.hline(x0, x1, y, 1, gridCol)
			}
			c.text(tickLabel(v, step), x0-pad/3, y+int(fs/3), fs, false, right, axisCol)
		}
		slot := float64(x1-x0) / float64(len(vals))
		bw := int(slot * (0.5 + 0.25*b.rng.Float64()))
		for i, v := range dv {
			cx := x0 + int(slot*(float64(i)+0.5))
			col := barCol
			if multi {
				col = b.pal[i%len(b.pal)]
			}
			ya, yb := scale(0), scale(v)
			c.fillRect(cx-bw/2, min(ya, yb), cx-bw/2+bw, max(ya, yb), col)
			lab := t.Unit.Cell(vals[i])
			ly := yb - pad/3
			if v < 0 {
				ly = yb + int(fs) + pad/3
			}
			c.text(lab, cx, ly, c.fitSize(lab, fs, true, int(slot)-2), true, center, b.ink)
			ls := c.fitSize(t.ColLabels[i], fs, false, int(slot)-4)
			c.text(t.ColLabels[i], cx, y1+int(fs*1.3)+2, ls, false, center, b.ink)
		}
		c.hline(x0, x1, scale(0), 2, axisCol)
		c.vline(x0, y0, y1, 2, axisCol)
		return
	}
	labW := 0
	for _, l := range t.ColLabels {
		labW = max(labW, c.textWidth(l, fs, false))
	}
	labW = min(labW, b.w/3)
	x0, x1 := pad+labW+pad/2, b.w-pad*2-c.textWidth(t.Unit.Cell(vals[argmax(vals)]), fs, true)
	y0, y1 := top, b.h-pad-int(fs*1.6)
	scale := func(v float64) int { return x0 + int(math.Round((v-lo)/(hi-lo)*float64(x1-x0))) }
	for v := lo; v <= hi+step/2; v += step {
		x := scale(v)
		if grid {
			c.vline(x, y0, y1, 1, gridCol)
		}
		c.text(tickLabel(v, step), x, y1+int(fs*1.3)+2, fs, false, center, axisCol)
	}
	slot := float64(y1-y0) / float64(len(vals))
	bh := int(slot * (0.5 + 0.25*b.rng.Float64()))
	for i, v := range dv {
		cy := y0 + int(slot*(float64(i)+0.5))
		col := barCol
		if multi {
			col = b.pal[i%len(b.pal)]
		}
		xa, xb := scale(0), scale(v)
		c.fillRect(min(xa, xb), cy-bh/2, max(xa, xb), cy-bh/2+bh, col)
		lab := t.Unit.Cell(vals[i])
		if v >= 0 {
			c.text(lab, xb+pad/3, cy+int(fs/3), fs, true, left, b.ink)
		} else {
			c.text(lab, xa+pad/3, cy+int(fs/3), fs, true, left, b.ink)
		}
		ls := c.fitSize(t.ColLabels[i], fs, false, labW)
		c.text(t.ColLabels[i], x0-pad/2, cy+int(fs/3), ls, false, right, b.ink)
	}
	c.vline(scale(0), y0, y1, 2, axisCol)
	c.hline(x0, x1, y1, 2, axisCol)
}

// lineChart draws one or two series over years (or quarters) with markers and value labels.
func (b *builder) lineChart() Doc {
	b.start()
	c := b.canvas
	nSeries := 1 + b.rng.IntN(2)
	var ms []metric
	if nSeries == 1 {
		ms = []metric{pick(b.rng, metrics)}
	} else {
		ms = pick(b.rng, metricPairs)
	}
	u := b.unit(ms[0])
	n := 4 + b.rng.IntN(3)
	y0 := 2010 + b.rng.IntN(13)
	var labels []string
	for i := range n {
		labels = append(labels, fmt.Sprint(y0+i))
	}
	t := Table{ColLabels: labels, Unit: u}
	t.RowLabels = append(t.RowLabels, ms[0].title)
	t.Cells = append(t.Cells, b.series(n, ms[0], u))
	if nSeries == 2 {
		// The second figure is a part of the first (a margin of it), distinct from it.
		t.RowLabels = append(t.RowLabels, ms[1].title)
		for {
			row := make([]int64, n)
			for i, v := range t.Cells[0] {
				row[i] = v * int64(8+b.rng.IntN(38)) / 100
			}
			if distinct(row) && !slices.Contains(row, 0) {
				t.Cells = append(t.Cells, row)
				break
			}
		}
	}
	company := b.company()
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.title
	}
	sub := strings.Join(names, " and ") + fmt.Sprintf(", %s–%s", labels[0], labels[n-1])
	if note := u.Note(); note != "" {
		sub += " (" + note + ")"
	}
	top := b.title(company, sub)
	fs := max(9, float64(b.h)/32)
	pad := b.h / 30
	var all []float64
	for _, row := range t.Cells {
		all = append(all, display(row, u.Dec)...)
	}
	lo, hi, step := axisRange(all)
	tickW := 0
	for v := lo; v <= hi+step/2; v += step {
		tickW = max(tickW, c.textWidth(tickLabel(v, step), fs, false))
	}
	legendH := 0
	if nSeries > 1 {
		legendH = int(fs * 1.8)
	}
	x0, x1 := pad+tickW+pad/2, b.w-pad*3
	ya, yb := top+int(fs)+legendH, b.h-pad-int(fs*1.6)
	scaleY := func(v float64) float64 { return float64(yb) - (v-lo)/(hi-lo)*float64(yb-ya) }
	scaleX := func(i int) float64 { return float64(x0) + (float64(i)+0.5)*float64(x1-x0)/float64(n) }
	axisCol := lighten(b.ink, 0.2)
	for v := lo; v <= hi+step/2; v += step {
		y := int(scaleY(v))
		c.hline(x0, x1, y, 1, lighten(b.ink, 0.85))
		c.text(tickLabel(v, step), x0-pad/3, y+int(fs/3), fs, false, right, axisCol)
	}
	c.hline(x0, x1, yb, 2, axisCol)
	c.vline(x0, ya, yb, 2, axisCol)
	for i, l := range labels {
		c.text(l, int(scaleX(i)), yb+int(fs*1.3)+2, fs, false, center, b.ink)
	}
	for s, row := range t.Cells {
		col := b.pal[s]
		dv := display(row, u.Dec)
		for i := 1; i < n; i++ {
			c.line(scaleX(i-1), scaleY(dv[i-1]), scaleX(i), scaleY(dv[i]), float64(b.h)/160+1, col)
		}
		for i, v := range dv {
			c.disc(scaleX(i), scaleY(v), float64(b.h)/90+2, col)
			lab := u.Cell(row[i])
			dy := -int(fs * 0.7)
			if nSeries > 1 {
				other := display(t.Cells[1-s], u.Dec)[i]
				if v < other && scaleY(v)-scaleY(other) < fs*2 {
					dy = int(fs * 1.5) // below the point when the other series' label is just above
				}
			}
			c.text(lab, int(scaleX(i)), int(scaleY(v))+dy, fs*0.95, true, center, col)
		}
		if nSeries > 1 {
			lx := x0 + s*(x1-x0)/2 + pad
			ly := top + int(fs)
			c.fillRect(lx, ly-int(fs/2), lx+int(fs*1.5), ly-int(fs/2)+int(fs/2.5), col)
			c.text(t.RowLabels[s], lx+int(fs*2), ly, fs, false, left, b.ink)
		}
	}
	row := b.rng.IntN(nSeries)
	d := Doc{Kind: "line", Table: t}
	d.Content = chartContent(company, sub, t)
	d.QA = seriesQA(b.rng, &t, row, ms[row], "year", "years")
	return d
}

// chartContent is the text of a chart: title, subtitle, then "label: value" lines per series.
func chartContent(title, sub string, t Table) string {
	var sb strings.Builder
	sb.WriteString(title + "\n" + sub + "\n")
	for r, row := range t.Cells {
		if len(t.Cells) > 1 {
			sb.WriteString(t.RowLabels[r] + "\n")
		}
		for c, v := range row {
			fmt.Fprintf(&sb, "%s: %s\n", t.ColLabels[c], t.Unit.Cell(v))
		}
	}
	return strings.TrimRight(sb.String(), "\n")
}

// easyBar draws 2–4 bars of small whole numbers with large labels.
func (b *builder) easyBar() Doc {
	b.start()
	n := 2 + b.rng.IntN(3)
	labels := pickN(b.rng, pick(b.rng, easyLabels), n)
	var vals []int64
	for _, v := range b.rng.Perm(9)[:n] {
		vals = append(vals, int64(v+1))
	}
	t := Table{RowLabels: []string{"Value"}, ColLabels: labels, Cells: [][]int64{vals}, Unit: Unit{}}
	title := pick(b.rng, []string{"Sales", "Orders", "Visits", "Units", "Scores"})
	c := b.canvas
	fs := float64(b.h) / 11
	c.text(title, b.w/2, int(fs)+b.h/40, fs, true, center, b.ink)
	b.drawBars(t, int(fs*1.6), false)
	d := Doc{Kind: "bar", Table: t, Content: chartContent(title, "", t)}
	d.Content = strings.Replace(d.Content, "\n\n", "\n", 1)
	for i, l := range labels {
		d.QA = append(d.QA, QA{Question: fmt.Sprintf("What is the value of %s?", l), Answer: fmt.Sprint(vals[i]), Op: "value", Args: []int{0, i}})
	}
	d.QA = append(d.QA, QA{Question: "Which bar is the tallest?", Answer: labels[argmax(vals)], Op: "max", Args: []int{0}})
	return d
}
