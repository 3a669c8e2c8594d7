package synth

import (
	"fmt"
	"strings"
)

// tableSpec is a table to draw: a header row and body rows of cells.
type tableSpec struct {
	header []string
	rows   [][]string
	bold   map[int]bool // body rows drawn in bold with a rule above (totals)
	indent map[int]bool // body rows whose first cell is indented
}

// drawTable draws spec from y=top down, fitting it in the page, and returns the y below it.
func (b *builder) drawTable(spec tableSpec, top int) int {
	c := b.canvas
	pad := b.h / 30
	nRows := len(spec.rows) + 1
	avail := b.h - top - pad
	fs := min(float64(b.h)/(18+6*b.rng.Float64()), float64(avail)/float64(nRows)/1.7)
	cols := len(spec.header)
	widths := func(fs float64) ([]int, int) {
		w := make([]int, cols)
		for r := -1; r < len(spec.rows); r++ {
			row := spec.header
			if r >= 0 {
				row = spec.rows[r]
			}
			for i, s := range row {
				cw := c.textWidth(s, fs, r < 0 || spec.bold[r])
				if i == 0 && r >= 0 && spec.indent[r] {
					cw += int(fs)
				}
				w[i] = max(w[i], cw)
			}
		}
		total := 0
		for i := range w {
			w[i] += int(fs * 1.2)
			total += w[i]
		}
		return w, total
	}
	w, total := widths(fs)
	for fs > 7 && total > b.w-2*pad {
		fs--
		w, total = widths(fs)
	}
	// Spread the spare width over the first column (labels) and the gaps.
	spare := b.w - 2*pad - total
	if spare > 0 {
		w[0] += spare / 3
	}
	_, total = widths(fs)
	x0 := pad
	if spare > 0 {
		x0 = (b.w - (total + spare/3)) / 2
	}
	rowH := int(fs * 1.7)
	headerCol := b.pal[0]
	stripe := b.rng.IntN(2) == 0
	filledHeader := b.rng.IntN(2) == 0
	y := top
	xEnd := x0
	for _, cw := range w {
		xEnd += cw
	}
	for r := -1; r < len(spec.rows); r++ {
		row := spec.header
		bold := r < 0
		ink := b.ink
		if r < 0 && filledHeader {
			c.fillRect(x0, y, xEnd, y+rowH, headerCol)
			ink = rgb(0xffffff)
		} else if r >= 0 {
			row = spec.rows[r]
			bold = spec.bold[r]
			if stripe && r%2 == 1 {
				c.fillRect(x0, y, xEnd, y+rowH, lighten(b.pal[0], 0.9))
			}
			if bold {
				c.hline(x0, xEnd, y, 1, b.ink)
			}
		}
		base := y + rowH/2 + int(fs/3)
		x := x0
		for i, s := range row {
			if i == 0 {
				ind := int(fs * 0.4)
				if r >= 0 && spec.indent[r] {
					ind += int(fs)
				}
				c.text(s, x+ind, base, fs, bold, left, ink)
			} else {
				c.text(s, x+w[i]-int(fs*0.4), base, fs, bold, right, ink)
			}
			x += w[i]
		}
		y += rowH
		if r < 0 && !filledHeader {
			c.hline(x0, xEnd, y, 2, b.ink)
		}
	}
	c.hline(x0, xEnd, y, 1, lighten(b.ink, 0.5))
	return y
}

// tableContent is the text of a table: title lines then " | "-separated rows.
func tableContent(lines []string, spec tableSpec, tail ...string) string {
	var sb strings.Builder
	for _, l := range lines {
		if l != "" {
			sb.WriteString(l + "\n")
		}
	}
	sb.WriteString(strings.Join(spec.header, " | ") + "\n")
	for _, r := range spec.rows {
		sb.WriteString(strings.Join(r, " | ") + "\n")
	}
	for _, l := range tail {
		sb.WriteString(l + "\n")
	}
	return strings.TrimRight(sb.String(), "\n")
}

// figureTable is a table of one metric by segment (rows) and year (columns).
func (b *builder) figureTable() Doc {
	b.start()
	m := pick(b.rng, metrics)
	u := b.unit(m)
	nr, nc := 3+b.rng.IntN(3), 2+b.rng.IntN(3)
	rows := pickN(b.rng, segments, nr)
	y0 := 2012 + b.rng.IntN(12)
	var cols []string
	for i := range nc {
		cols = append(cols, fmt.Sprint(y0+i))
	}
	t := Table{RowLabels: rows, ColLabels: cols, Unit: u}
	for range nr {
		t.Cells = append(t.Cells, b.series(nc, metric{}, u))
	}
	// Columns must have a unique largest row for "which segment" questions.
	for c := range nc {
		col := column(t.Cells, c)
		for !distinct(col) {
			t.Cells[b.rng.IntN(nr)][c] += pow10(u.Dec)
			col = column(t.Cells, c)
		}
	}
	company := b.company()
	sub := m.title + " by segment"
	if note := u.Note(); note != "" {
		sub += " (" + note + ")"
	}
	top := b.title(company, sub)
	spec := tableSpec{header: append([]string{"Segment"}, cols...), bold: map[int]bool{}}
	for r := range nr {
		cells := []string{rows[r]}
		for c := range nc {
			cells = append(cells, u.Cell(t.Cells[r][c]))
		}
		spec.rows = append(spec.rows, cells)
	}
	showTotal := b.rng.IntN(2) == 0
	if showTotal {
		cells := []string{"Total"}
		for c := range nc {
			cells = append(cells, u.Cell(sum(column(t.Cells, c))))
		}
		spec.bold[len(spec.rows)] = true
		spec.rows = append(spec.rows, cells)
	}
	b.drawTable(spec, top)
	d := Doc{Kind: "table", Table: t, Content: tableContent([]string{company, sub}, spec)}
	what, was := m.name, m.verb()
	r, c := b.rng.IntN(nr), b.rng.IntN(nc)
	last := nc - 1
	var qs []QA
	qs = append(qs, QA{Question: fmt.Sprintf("What %s the %s of the %s segment in %s?", was, what, rows[r], cols[c]), Answer: u.Answer(t.Cells[r][c]), Op: "value", Args: []int{r, c}})
	r2 := (r + 1) % nr
	qs = append(qs, QA{Question: fmt.Sprintf("What %s the %s of the %s segment in %s?", was, what, rows[r2], cols[last]), Answer: u.Answer(t.Cells[r2][last]), Op: "value", Args: []int{r2, last}})
	qs = append(qs, QA{Question: fmt.Sprintf("What was the total %s of all segments in %s?", what, cols[last]), Answer: u.Answer(sum(column(t.Cells, last))), Op: "coltotal", Args: []int{last}})
	qs = append(qs, QA{Question: fmt.Sprintf("Which segment had the highest %s in %s?", what, cols[last]), Answer: rows[argmax(column(t.Cells, last))], Op: "maxrow", Args: []int{last}})
	if t.Cells[r][0] > 0 {
		qs = append(qs, QA{Question: fmt.Sprintf("What was the percentage change in the %s segment's %s from %s to %s?", rows[r], what, cols[0], cols[last]),
			Answer: percent(t.Cells[r][last]-t.Cells[r][0], t.Cells[r][0]), Op: "change", Args: []int{r, 0, last}})
	}
	qs = append(qs, QA{Question: fmt.Sprintf("By how much did the %s of the %s segment change from %s to %s?", what, rows[r2], cols[0], cols[last]),
		Answer: u.Answer(t.Cells[r2][last] - t.Cells[r2][0]), Op: "diff", Args: []int{r2, 0, last}})
	d.QA = choose(b.rng, qs, 4+b.rng.IntN(2))
	return d
}

func column(cells [][]int64, c int) []int64 {
	out := make([]int64, len(cells))
	for r := range cells {
		out[r] = cells[r][c]
	}
	return out
}

func sum(vs []int64) int64 {
	var s int64
	for _, v := range vs {
		s += v
	}
	return s
}

// Rows of an income statement.
const (
	isRevenue = iota
	isCost
	isGross
	isOpex
	isOperating
	isInterest
	isPretax
	isTax
	isNet
	isRows
)

// incomeStatement is a two- or three-year statement of income whose subtotals add up.
func (b *builder) incomeStatement() Doc {
	b.start()
	u := b.unit(metric{})
	if u.Scale == "" {
		u.Scale = "million"
	}
	nc := 2 + b.rng.IntN(2)
	yr := 2014 + b.rng.IntN(11)
	var cols []string
	for i := range nc {
		cols = append(cols, fmt.Sprint(yr-i)) // latest year first, as statements do
	}
	labels := []string{"Revenue", "Cost of revenue", "Gross profit", "Operating expenses", "Operating income",
		"Interest expense", "Income before income taxes", "Income tax expense", "Net income"}
	if b.rng.IntN(2) == 0 {
		labels[isRevenue], labels[isCost] = "Net sales", "Cost of sales"
	}
	t := Table{RowLabels: labels, ColLabels: cols, Unit: u, Cells: make([][]int64, isRows)}
	for r := range t.Cells {
		t.Cells[r] = make([]int64, nc)
	}
	p := pow10(u.Dec)
	lo, hi := 50.0, 5000.0 // millions
	switch u.Scale {
	case "thousand":
		lo, hi = 2000, 90000
	case "billion":
		lo, hi = 1, 300
	}
	rev := int64((lo + b.rng.Float64()*(hi-lo)) * float64(p))
	for c := range nc {
		if c > 0 {
			rev = rev * int64(80+b.rng.IntN(30)) / 100
		}
		cost := rev * int64(30+b.rng.IntN(45)) / 100
		gross := rev - cost
		opex := gross * int64(40+b.rng.IntN(70)) / 100
		op := gross - opex
		interest := rev * int64(1+b.rng.IntN(4)) / 100
		pretax := op - interest
		tax := int64(0)
		if pretax > 0 {
			tax = pretax * int64(15+b.rng.IntN(16)) / 100
		}
		for r, v := range []int64{rev, cost, gross, opex, op, interest, pretax, tax, pretax - tax} {
			t.Cells[r][c] = v
		}
	}
	company := b.company()
	title := "Consolidated Statement of Income"
	month := b.rng.IntN(12)
	sub := fmt.Sprintf("For the years ended %s %d", monthNames[month], daysIn(month))
	if note := u.Note(); note != "" {
		sub += " (" + note + ")"
	}
	top := b.title(company, title+" — "+sub)
	spec := tableSpec{header: append([]string{""}, cols...), bold: map[int]bool{isGross: true, isOperating: true, isPretax: true, isNet: true},
		indent: map[int]bool{isCost: true, isOpex: true, isInterest: true, isTax: true}}
	for r := range isRows {
		cells := []string{labels[r]}
		for c := range nc {
			cells = append(cells, u.Cell(t.Cells[r][c]))
		}
		spec.rows = append(spec.rows, cells)
	}
	b.drawTable(spec, top)
	d := Doc{Kind: "income", Table: t, Content: tableContent([]string{company, title, sub}, spec)}
	c := b.rng.IntN(nc)
	lc := strings.ToLower
	var qs []QA
	for _, r := range []int{isRevenue, isGross, isOperating, isNet, isTax} {
		qs = append(qs, QA{Question: fmt.Sprintf("What was the %s of %s in %s?", lc(labels[r]), company, cols[c]), Answer: u.Answer(t.Cells[r][c]), Op: "value", Args: []int{r, c}})
	}
	qs = choose(b.rng, qs, 2)
	if t.Cells[isRevenue][c] > 0 {
		qs = append(qs, QA{Question: fmt.Sprintf("What was the gross margin in %s?", cols[c]), Answer: percent(t.Cells[isGross][c], t.Cells[isRevenue][c]), Op: "ratio", Args: []int{isGross, isRevenue, c}})
	}
	qs = append(qs, QA{Question: fmt.Sprintf("What was the percentage change in %s from %s to %s?", lc(labels[isRevenue]), cols[nc-1], cols[0]),
		Answer: percent(t.Cells[isRevenue][0]-t.Cells[isRevenue][nc-1], t.Cells[isRevenue][nc-1]), Op: "change", Args: []int{isRevenue, nc - 1, 0}})
	qs = append(qs, QA{Question: fmt.Sprintf("How much did operating expenses change from %s to %s?", cols[nc-1], cols[0]),
		Answer: u.Answer(t.Cells[isOpex][0] - t.Cells[isOpex][nc-1]), Op: "diff", Args: []int{isOpex, nc - 1, 0}})
	d.QA = choose(b.rng, qs, 4+b.rng.IntN(2))
	return d
}

func daysIn(month int) int {
	switch month {
	case 1:
		return 28
	case 3, 5, 8, 10:
		return 30
	}
	return 31
}

// Invoice columns.
const (
	invQty = iota
	invPrice
	invAmount
)

// invoice is an invoice with line items, subtotal, tax and total.
func (b *builder) invoice() Doc {
	b.start()
	sym := pick(b.rng, currencySymbols)
	money := Unit{Symbol: sym, Dec: 2}
	if sym == "¥" {
		money.Dec = 0
	}
	n := 2 + b.rng.IntN(4)
	items := pickN(b.rng, invoiceItems, n)
	t := Table{RowLabels: items, ColLabels: []string{"Qty", "Unit price", "Amount"}, Unit: money,
		ColUnits: []Unit{{}, money, money}}
	for {
		t.Cells = t.Cells[:0]
		for range n {
			qty := int64(1 + b.rng.IntN(20))
			price := int64(5+b.rng.IntN(995)) * pow10(money.Dec)
			if money.Dec > 0 && b.rng.IntN(2) == 0 {
				price += int64(b.rng.IntN(100))
			}
			if sym == "¥" {
				price *= 100
			}
			t.Cells = append(t.Cells, []int64{qty, price, qty * price})
		}
		if distinct(column(t.Cells, invAmount)) {
			break
		}
	}
	rate := int64(pick(b.rng, []int{500, 700, 800, 1000, 1900, 2000, 2100}))
	subtotal := sum(column(t.Cells, invAmount))
	tax := taxOf(subtotal, rate)
	total := subtotal + tax
	seller, buyer := b.company(), b.company()
	for buyer == seller {
		buyer = b.company()
	}
	year, month := 2015+b.rng.IntN(11), b.rng.IntN(12)
	number := fmt.Sprintf("INV-%d-%04d", year, b.rng.IntN(10000))
	day := 1 + b.rng.IntN(daysIn(month))
	date := pick(b.rng, []string{
		fmt.Sprintf("%s %d, %d", monthNames[month], day, year),
		fmt.Sprintf("%d %s %d", day, monthNames[month], year),
		fmt.Sprintf("%d-%02d-%02d", year, month+1, day),
	})
	top := b.title("INVOICE "+number, fmt.Sprintf("From %s to %s · Date: %s", seller, buyer, date))
	spec := tableSpec{header: []string{"Description", "Qty", "Unit price", "Amount"}, bold: map[int]bool{}}
	for r := range n {
		spec.rows = append(spec.rows, []string{items[r], fmt.Sprint(t.Cells[r][invQty]), money.Symbol + money.Number(t.Cells[r][invPrice]), money.Symbol + money.Number(t.Cells[r][invAmount])})
	}
	ratePct := Unit{Dec: 0}.Number(rate / 100)
	if rate%100 != 0 {
		ratePct = Unit{Dec: 1}.Number(rate / 10)
	}
	spec.bold[n] = true
	spec.rows = append(spec.rows,
		[]string{"Subtotal", "", "", money.Symbol + money.Number(subtotal)},
		[]string{"Tax (" + ratePct + "%)", "", "", money.Symbol + money.Number(tax)},
		[]string{"Total due", "", "", money.Symbol + money.Number(total)})
	spec.bold[n+2] = true
	b.drawTable(spec, top)
	d := Doc{Kind: "invoice", Table: t,
		Content: tableContent([]string{"INVOICE " + number, "From: " + seller, "To: " + buyer, "Date: " + date}, spec)}
	r := b.rng.IntN(n)
	qs := []QA{
		{Question: "What is the total amount due on the invoice?", Answer: money.Answer(total), Op: "invtotal", Args: []int{int(rate)}},
		{Question: fmt.Sprintf("What is the tax amount at %s%%?", ratePct), Answer: money.Answer(tax), Op: "invtax", Args: []int{int(rate)}},
		{Question: "What is the subtotal before tax?", Answer: money.Answer(subtotal), Op: "coltotal", Args: []int{invAmount}},
		{Question: fmt.Sprintf("How many units of %q were billed?", items[r]), Answer: fmt.Sprint(t.Cells[r][invQty]), Op: "value", Args: []int{r, invQty}},
		{Question: fmt.Sprintf("What is the unit price of %q?", items[r]), Answer: money.Answer(t.Cells[r][invPrice]), Op: "value", Args: []int{r, invPrice}},
		{Question: "Which line item has the largest amount?", Answer: items[argmax(column(t.Cells, invAmount))], Op: "maxrow", Args: []int{invAmount}},
		{Question: "What is the invoice number?", Answer: number, Op: "text"},
		{Question: "What is the date of the invoice?", Answer: date, Op: "text"},
		{Question: "Who issued the invoice?", Answer: seller, Op: "text"},
	}
	d.QA = choose(b.rng, qs, 4+b.rng.IntN(2))
	return d
}

// taxOf returns amount·rate/10000 (rate in basis points) rounded half up.
func taxOf(amount, rate int64) int64 { return (amount*rate + 5000) / 10000 }
