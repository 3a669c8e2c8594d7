package report

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"
)

func TestChartSVGAndPNG(t *testing.T) {
	c := Chart{Title: "reward", XLabel: "step", YLabel: "mean reward", Series: []Series{
		{Name: "structural", X: []float64{1, 2, 3, 4}, Y: []float64{-0.5, 0, math.NaN(), 1}},
		{Name: "accuracy", X: []float64{1, 2, 3, 4}, Y: []float64{0, 0.1, 0.2, 0.4}},
	}}
	svg, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if !strings.Contains(s, "<svg") || !strings.Contains(s, "structural") || !strings.Contains(s, "mean reward") {
		t.Fatalf("SVG lacks the chart's parts: %.300s", s)
	}
	b, err := c.PNG(0)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// The picture is not blank: some pixel differs from the corner.
	r0, g0, b0, _ := img.At(0, 0).RGBA()
	varied := false
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y && !varied; y += 3 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 3 {
			r, g, bb, _ := img.At(x, y).RGBA()
			if r != r0 || g != g0 || bb != b0 {
				varied = true
				break
			}
		}
	}
	if !varied {
		t.Fatal("the PNG is blank")
	}
}

func TestChartRefusesBadSeries(t *testing.T) {
	if _, err := (Chart{}).SVG(); err == nil {
		t.Error("no series must be refused")
	}
	if _, err := (Chart{Series: []Series{{X: []float64{1}, Y: nil}}}).SVG(); err == nil {
		t.Error("mismatched lengths must be refused")
	}
	if _, err := (Chart{Series: []Series{{X: []float64{1}, Y: []float64{math.Inf(1)}}}}).SVG(); err == nil {
		t.Error("no finite point must be refused")
	}
}
