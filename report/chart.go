// Package report draws the training curves mmft shows and saves (reward,
// KL, completion length per step) as SVG or PNG line charts with gonum/plot,
// for `mmft train`'s report and the notebooks' live plots.
package report

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Series is one named curve: Y[i] at X[i]. Non-finite points are skipped.
type Series struct {
	Name string
	X, Y []float64
}

// Chart describes one line chart.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	// Width and Height in points (default 480×300).
	Width, Height float64
}

// palette colours the series in order.
var palette = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// build lays the chart out on a gonum plot.
func (c Chart) build() (*plot.Plot, error) {
	if len(c.Series) == 0 {
		return nil, errors.New("report: a chart needs at least one series")
	}
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Add(plotter.NewGrid())
	any := false
	for i, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("report: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		var pts plotter.XYs
		for k := range s.X {
			if isFinite(s.X[k]) && isFinite(s.Y[k]) {
				pts = append(pts, plotter.XY{X: s.X[k], Y: s.Y[k]})
			}
		}
		if len(pts) == 0 {
			continue
		}
		any = true
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("report: series %q: %w", s.Name, err)
		}
		line.Color = palette[i%len(palette)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		if len(pts) == 1 { // a single point draws no line: mark it
			sc, _ := plotter.NewScatter(pts)
			sc.Color = line.Color
			sc.Shape = draw.CircleGlyph{}
			p.Add(sc)
		}
		if s.Name != "" {
			p.Legend.Add(s.Name, line)
		}
	}
	if !any {
		return nil, errors.New("report: the chart has no finite point to draw")
	}
	p.Legend.Top = true
	return p, nil
}

func (c Chart) size() (vg.Length, vg.Length) {
	w, h := c.Width, c.Height
	if w <= 0 {
		w = 480
	}
	if h <= 0 {
		h = 300
	}
	return vg.Points(w), vg.Points(h)
}

// SVG renders the chart as an SVG document.
func (c Chart) SVG() ([]byte, error) {
	p, err := c.build()
	if err != nil {
		return nil, err
	}
	w, h := c.size()
	canvas := vgsvg.New(w, h)
	p.Draw(draw.New(canvas))
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("report: writing SVG: %w", err)
	}
	return buf.Bytes(), nil
}

// PNG renders the chart as a PNG image at dpi dots per inch (96 when 0).
func (c Chart) PNG(dpi int) ([]byte, error) {
	p, err := c.build()
	if err != nil {
		return nil, err
	}
	if dpi <= 0 {
		dpi = 96
	}
	w, h := c.size()
	canvas := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	p.Draw(draw.New(canvas))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("report: writing PNG: %w", err)
	}
	return buf.Bytes(), nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
