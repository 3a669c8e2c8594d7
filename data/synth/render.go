package synth

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// fonts holds the parsed Go fonts and the faces made from them, by size.
// A fonts value belongs to one generator and is not safe for concurrent use.
type fonts struct {
	regular, bold *opentype.Font
	faces         map[faceKey]font.Face
}

type faceKey struct {
	bold bool
	size int
}

func newFonts() (*fonts, error) {
	r, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, fmt.Errorf("synth: parsing the Go regular font: %w", err)
	}
	b, err := opentype.Parse(gobold.TTF)
	if err != nil {
		return nil, fmt.Errorf("synth: parsing the Go bold font: %w", err)
	}
	return &fonts{regular: r, bold: b, faces: map[faceKey]font.Face{}}, nil
}

// face returns the face of the given pixel size (at least 6).
func (f *fonts) face(size float64, bold bool) font.Face {
	k := faceKey{bold, max(6, int(math.Round(size)))}
	if fc, ok := f.faces[k]; ok {
		return fc
	}
	src := f.regular
	if bold {
		src = f.bold
	}
	fc, err := opentype.NewFace(src, &opentype.FaceOptions{Size: float64(k.size), DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		// The embedded fonts are valid and the size positive; this cannot happen.
		panic(fmt.Sprintf("synth: font face of size %d: %v", k.size, err))
	}
	f.faces[k] = fc
	return fc
}

// canvas is an image being drawn.
type canvas struct {
	img   *image.RGBA
	fonts *fonts
}

func newCanvas(w, h int, bg color.Color, f *fonts) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	return &canvas{img: img, fonts: f}
}

// fillRect fills the rectangle [x0,x1)×[y0,y1).
func (c *canvas) fillRect(x0, y0, x1, y1 int, col color.Color) {
	r := image.Rect(x0, y0, x1, y1).Intersect(c.img.Bounds())
	draw.Draw(c.img, r, image.NewUniform(col), image.Point{}, draw.Over)
}

// hline and vline draw axis-parallel lines of the given thickness.
func (c *canvas) hline(x0, x1, y, thick int, col color.Color) {
	c.fillRect(min(x0, x1), y-thick/2, max(x0, x1)+1, y-thick/2+thick, col)
}

func (c *canvas) vline(x, y0, y1, thick int, col color.Color) {
	c.fillRect(x-thick/2, min(y0, y1), x-thick/2+thick, max(y0, y1)+1, col)
}

// line draws a straight line of the given thickness between two points.
func (c *canvas) line(x0, y0, x1, y1 float64, thick float64, col color.Color) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	r := int(math.Max(1, thick/2))
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		x, y := x0+(x1-x0)*t, y0+(y1-y0)*t
		c.disc(x, y, float64(r), col)
	}
}

// disc fills a disc of radius r centred on (x, y).
func (c *canvas) disc(x, y, r float64, col color.Color) {
	for yy := int(y - r); yy <= int(y+r); yy++ {
		for xx := int(x - r); xx <= int(x+r); xx++ {
			dx, dy := float64(xx)-x, float64(yy)-y
			if dx*dx+dy*dy <= r*r+0.5 && image.Pt(xx, yy).In(c.img.Bounds()) {
				c.img.Set(xx, yy, col)
			}
		}
	}
}

// align says where text is anchored horizontally.
type align int

const (
	left align = iota
	center
	right
)

// textWidth is the advance width of s in pixels.
func (c *canvas) textWidth(s string, size float64, bold bool) int {
	return font.MeasureString(c.fonts.face(size, bold), s).Ceil()
}

// text draws s with its baseline at y, anchored at x as a says, and returns its width.
func (c *canvas) text(s string, x, y int, size float64, bold bool, a align, col color.Color) int {
	face := c.fonts.face(size, bold)
	w := font.MeasureString(face, s).Ceil()
	switch a {
	case center:
		x -= w / 2
	case right:
		x -= w
	}
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
	return w
}

// fitSize returns the largest size ≤ size at which s fits in width pixels (at least 6).
func (c *canvas) fitSize(s string, size float64, bold bool, width int) float64 {
	for size > 6 && c.textWidth(s, size, bold) > width {
		size--
	}
	return size
}

// rgb is a colour from a 0xRRGGBB value.
func rgb(v uint32) color.RGBA {
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

// mix blends a toward white by t in [0,1].
func lighten(a color.RGBA, t float64) color.RGBA {
	f := func(x uint8) uint8 { return uint8(float64(x) + (255-float64(x))*t) }
	return color.RGBA{f(a.R), f(a.G), f(a.B), 255}
}
