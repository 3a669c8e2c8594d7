package synth

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/rewards"
)

func genDocs(t testing.TB, opts Options, n int) []Doc {
	t.Helper()
	docs, err := Generate(opts, n)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestDeterministic(t *testing.T) {
	a := genDocs(t, Options{Seed: 7, Split: "train"}, 6)
	g, err := NewGenerator(Options{Seed: 7, Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	// Document 5 alone equals document 5 of the batch: it depends only on its index.
	d5, err := g.Doc(5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d5.PNG, a[5].PNG) || d5.Content != a[5].Content || fmt.Sprint(d5.QA) != fmt.Sprint(a[5].QA) {
		t.Error("document 5 differs between a batch and a single call")
	}
	b := genDocs(t, Options{Seed: 8, Split: "train"}, 6)
	c := genDocs(t, Options{Seed: 7, Split: "test"}, 6)
	for i := range a {
		if a[i].Content == b[i].Content || a[i].Content == c[i].Content {
			t.Errorf("document %d is the same for another seed or split", i)
		}
	}
}

// TestAnswersFromTable recomputes every answer from the figures of the
// document's table, independently of the generator's own arithmetic, and
// checks that the figures asked about are shown in the document's text.
func TestAnswersFromTable(t *testing.T) {
	kinds := map[string]int{}
	ops := map[string]int{}
	exact := rewards.Accuracy{RelTol: -1}
	for _, level := range []Level{Normal, Easy} {
		for _, d := range genDocs(t, Options{Seed: 3, Level: level, Split: "train"}, 120) {
			kinds[d.Kind]++
			tb := d.Table
			if len(d.QA) < 2 {
				t.Errorf("%s: only %d QA pairs", d.ID, len(d.QA))
			}
			for _, q := range d.QA {
				ops[q.Op]++
				want, numeric := recompute(t, d, q)
				if !numeric {
					if q.Answer != want {
						t.Errorf("%s: %q: answer %q, recomputed %q", d.ID, q.Question, q.Answer, want)
					}
					if !strings.Contains(d.Content, q.Answer) {
						t.Errorf("%s: answer %q is not in the document text", d.ID, q.Answer)
					}
					continue
				}
				// The answer must mean exactly the recomputed number for the accuracy reward.
				if !exact.Match(q.Answer, want) {
					t.Errorf("%s: %q: answer %q does not match the recomputed %q", d.ID, q.Question, q.Answer, want)
				}
				if q.Op == "value" && !strings.Contains(d.Content, tb.UnitOf(q.Args[1]).Cell(tb.Cells[q.Args[0]][q.Args[1]])) {
					t.Errorf("%s: the figure asked about is not in the text", d.ID)
				}
			}
		}
	}
	for _, k := range []string{"bar", "hbar", "line", "table", "income", "invoice"} {
		if kinds[k] == 0 {
			t.Errorf("no %s document in 240", k)
		}
	}
	for _, op := range []string{"value", "max", "min", "diff", "change", "total", "coltotal", "maxrow", "ratio", "count", "text", "invtotal", "invtax"} {
		if ops[op] == 0 {
			t.Errorf("no %q question in 240 documents", op)
		}
	}
	t.Logf("kinds %v; ops %v", kinds, ops)
}

// recompute returns the expected answer of q: a label (numeric false) or a
// plain number written with its currency and scale (numeric true).
func recompute(t *testing.T, d Doc, q QA) (string, bool) {
	tb := d.Table
	a := q.Args
	plain := func(v float64, u Unit) string {
		s := strings.TrimSpace(u.Symbol) + " " + fmt.Sprintf("%.*f", u.Dec, v)
		if u.Scale != "" {
			s += " " + u.Scale
		}
		return strings.TrimSpace(s)
	}
	val := func(r, c int) float64 { return float64(tb.Cells[r][c]) / math.Pow(10, float64(tb.UnitOf(c).Dec)) }
	pct := func(x float64) string { return fmt.Sprintf("%.1f%%", math.Round(x*10+math.Copysign(1e-9, x))/10) }
	row := func(r int) []float64 {
		var out []float64
		for c := range tb.Cells[r] {
			out = append(out, val(r, c))
		}
		return out
	}
	best := func(xs []float64, better func(a, b float64) bool) int {
		k := 0
		for i := range xs {
			if better(xs[i], xs[k]) {
				k = i
			}
		}
		return k
	}
	gt := func(a, b float64) bool { return a > b }
	lt := func(a, b float64) bool { return a < b }
	sumf := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s
	}
	col := func(c int) []float64 {
		var out []float64
		for r := range tb.Cells {
			out = append(out, val(r, c))
		}
		return out
	}
	switch q.Op {
	case "value":
		return plain(val(a[0], a[1]), tb.UnitOf(a[1])), true
	case "max":
		return tb.ColLabels[best(row(a[0]), gt)], false
	case "min":
		return tb.ColLabels[best(row(a[0]), lt)], false
	case "maxrow":
		return tb.RowLabels[best(col(a[0]), gt)], false
	case "diff":
		return plain(val(a[0], a[2])-val(a[0], a[1]), tb.Unit), true
	case "change":
		return pct((val(a[0], a[2]) - val(a[0], a[1])) / val(a[0], a[1]) * 100), true
	case "ratio":
		return pct(val(a[0], a[2]) / val(a[1], a[2]) * 100), true
	case "total":
		return plain(sumf(row(a[0])), tb.Unit), true
	case "coltotal":
		return plain(sumf(col(a[0])), tb.UnitOf(a[0])), true
	case "count":
		return fmt.Sprint(len(tb.ColLabels)), true
	case "invtax", "invtotal":
		sub := sumf(col(invAmount))
		u := tb.UnitOf(invAmount)
		p := math.Pow(10, float64(u.Dec))
		tax := math.Floor(sub*p*float64(a[0])/10000+0.5) / p
		if q.Op == "invtax" {
			return plain(tax, u), true
		}
		return plain(sub+tax, u), true
	case "text":
		return q.Answer, false
	}
	t.Fatalf("%s: unknown op %q", d.ID, q.Op)
	return "", false
}

func TestImages(t *testing.T) {
	for _, c := range []struct {
		opts Options
		w, h int
	}{
		{Options{}, DefaultWidth, DefaultHeight},
		{Options{Level: Easy}, EasyWidth, EasyHeight},
		{Options{Width: 320, Height: 200}, 320, 200},
		{Options{Width: 1024, Height: 768, Seed: 2}, 1024, 768},
	} {
		for _, d := range genDocs(t, c.opts, 5) {
			img, err := png.Decode(bytes.NewReader(d.PNG))
			if err != nil {
				t.Fatalf("%s: %v", d.ID, err)
			}
			if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h || d.Width != c.w || d.Height != c.h {
				t.Errorf("%s: image %v, want %d×%d", d.ID, b, c.w, c.h)
			}
			if inkFraction(img) < 0.01 {
				t.Errorf("%s: image is nearly blank", d.ID)
			}
		}
	}
}

// inkFraction is the share of pixels that differ from the top-left one.
func inkFraction(img image.Image) float64 {
	b := img.Bounds()
	bg := img.At(b.Min.X, b.Min.Y)
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if img.At(x, y) != bg {
				n++
			}
		}
	}
	return float64(n) / float64((b.Dx()/2)*(b.Dy()/2))
}

func TestEasy(t *testing.T) {
	for _, d := range genDocs(t, Options{Level: Easy, Seed: 1}, 30) {
		if n := len(d.Table.ColLabels); n < 2 || n > 4 {
			t.Errorf("%s: %d bars", d.ID, n)
		}
		for _, v := range d.Table.Cells[0] {
			if v < 1 || v > 9 {
				t.Errorf("%s: value %d out of 1..9", d.ID, v)
			}
		}
	}
}

func TestOptionErrors(t *testing.T) {
	if _, err := NewGenerator(Options{Width: 112, Height: 112, Level: Easy}); err != nil {
		t.Errorf("easy 112×112: %v", err)
	}
	for _, o := range []Options{{Width: 100, Height: 100}, {Width: 112, Height: 112}, {Width: 100, Height: 100, Level: Easy}, {Width: 5000, Height: 500}, {Level: 9}} {
		if _, err := NewGenerator(o); err == nil {
			t.Errorf("NewGenerator(%+v) succeeded", o)
		}
	}
	if _, err := Generate(Options{}, -1); err == nil {
		t.Error("Generate(-1) succeeded")
	}
}

func TestDefault(t *testing.T) {
	train, test, err := Default(Easy)
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != DefaultTrainSize || len(test) != DefaultTestSize {
		t.Fatalf("sizes %d, %d", len(train), len(test))
	}
	seen := map[string]bool{}
	for _, d := range append(train, test...) {
		if seen[d.ID] {
			t.Errorf("duplicate id %s", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestUnitFormatting(t *testing.T) {
	for _, c := range []struct {
		u    Unit
		v    int64
		want string
	}{
		{Unit{Symbol: "$", Scale: "million"}, 79, "$79 million"},
		{Unit{Symbol: "€", Scale: "thousand", Dec: 1}, -12345, "-€1,234.5 thousand"},
		{Unit{Symbol: "CHF ", Dec: 2}, 123456789, "CHF 1,234,567.89"},
		{Unit{}, 1000000, "1,000,000"},
		{Unit{Dec: 2}, 5, "0.05"},
	} {
		if got := c.u.Answer(c.v); got != c.want {
			t.Errorf("Answer(%d) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := (Unit{Dec: 1}).Cell(-25); got != "(2.5)" {
		t.Errorf("Cell(-25) = %q", got)
	}
	for _, c := range []struct {
		num, den int64
		want     string
	}{{1, 8, "12.5%"}, {-1, 8, "-12.5%"}, {1, 3, "33.3%"}, {2, 3, "66.7%"}, {1, 2000, "0.1%"}, {-1, 2001, "0.0%"}, {5, -8, "-62.5%"}} {
		if got := percent(c.num, c.den); got != c.want && !(c.want == "0.0%" && got == "-0.0%") {
			t.Errorf("percent(%d, %d) = %q, want %q", c.num, c.den, got, c.want)
		}
	}
}

func BenchmarkDocNormal(b *testing.B) {
	g, err := NewGenerator(Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if _, err := g.Doc(i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDocEasy(b *testing.B) {
	g, err := NewGenerator(Options{Seed: 1, Level: Easy})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if _, err := g.Doc(i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkDefaultEasy(b *testing.B) {
	for b.Loop() {
		if _, _, err := Default(Easy); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAnswersUnderAccuracyReward checks the answers against the project's
// accuracy reward as a model would write them: short forms ("$79M") match,
// figures 5% off do not.
func TestAnswersUnderAccuracyReward(t *testing.T) {
	acc := rewards.Accuracy{}
	short := map[string]string{"thousand": "K", "million": "M", "billion": "B"}
	checked := 0
	for _, d := range genDocs(t, Options{Seed: 21, Split: "test"}, 60) {
		for _, q := range d.QA {
			if !acc.Match(q.Answer, q.Answer) {
				t.Errorf("%s: answer %q does not match itself", d.ID, q.Answer)
			}
			if q.Op != "value" && q.Op != "total" && q.Op != "diff" {
				continue
			}
			u := d.Table.UnitOf(0)
			if q.Op == "value" {
				u = d.Table.UnitOf(q.Args[1])
			}
			var v int64
			switch q.Op {
			case "value":
				v = d.Table.Cells[q.Args[0]][q.Args[1]]
			case "total":
				v = sum(d.Table.Cells[q.Args[0]])
			case "diff":
				v = d.Table.Cells[q.Args[0]][q.Args[2]] - d.Table.Cells[q.Args[0]][q.Args[1]]
			}
			x := float64(v) / math.Pow(10, float64(u.Dec))
			form := fmt.Sprintf("%s%g%s", strings.TrimSpace(u.Symbol), x, short[u.Scale])
			if x < 0 {
				form = fmt.Sprintf("(%s%g%s)", strings.TrimSpace(u.Symbol), -x, short[u.Scale])
			}
			if !acc.Match(form, q.Answer) {
				t.Errorf("%s: %q does not match the answer %q", d.ID, form, q.Answer)
			}
			off := fmt.Sprintf("%s%g%s", strings.TrimSpace(u.Symbol), x*1.05, short[u.Scale])
			if acc.Match(off, q.Answer) {
				t.Errorf("%s: %q (5%% off) matches the answer %q", d.ID, off, q.Answer)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Errorf("only %d numeric answers checked", checked)
	}
}
