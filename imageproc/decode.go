package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registers GIF
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"  // registers BMP
	_ "golang.org/x/image/webp" // registers WebP
)

// DefaultMaxDecodePixels is the largest image (width·height) Decode accepts by
// default: Pillow's decompression-bomb error threshold (2 × 89,478,485).
const DefaultMaxDecodePixels = 2 * 89_478_485

// ErrUnknownFormat is returned (wrapped) for data that is not PNG, JPEG, GIF, WebP or BMP.
var ErrUnknownFormat = errors.New("unknown image format (supported: PNG, JPEG, GIF, WebP, BMP)")

// DecodeOptions limits what Decode accepts.
type DecodeOptions struct {
	// MaxPixels refuses images with more pixels than this before decoding them
	// (decompression-bomb protection); 0 means DefaultMaxDecodePixels.
	MaxPixels int64
	// ApplyEXIFOrientation rotates/mirrors JPEG, PNG and WebP images as their
	// EXIF orientation tag says, like PIL's ImageOps.exif_transpose (which
	// transformers' load_image applies). Off by default: Qwen2VLImageProcessor
	// itself does not apply it.
	ApplyEXIFOrientation bool
}

// DecodeConfig returns the format name and size of encoded image data without decoding the pixels.
func DecodeConfig(data []byte) (format string, width, height int, err error) {
	if len(data) == 0 {
		return "", 0, 0, errors.New("imageproc: image data is empty")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("imageproc: corrupt image header: decoder failed: %v", r)
		}
	}()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, image.ErrFormat) {
			return "", 0, 0, fmt.Errorf("imageproc: %w", ErrUnknownFormat)
		}
		return "", 0, 0, fmt.Errorf("imageproc: reading image header: %w (truncated or corrupt file)", err)
	}
	return format, cfg.Width, cfg.Height, nil
}

// Decode decodes PNG, JPEG, GIF (first frame), WebP or BMP data and converts
// it to 8-bit RGB as PIL's Image.convert("RGB") does: palette entries are
// looked up, gray is replicated, alpha is dropped without compositing, CMYK is
// converted, 16-bit RGB keeps the high byte of each sample and 16-bit gray is
// clipped to 255 (PIL opens it as mode I;16). EXIF orientation is not applied,
// matching Hugging Face's image processor. The size is checked against
// opts.MaxPixels before any pixel is decoded.
func Decode(data []byte, opts DecodeOptions) (img *RGB, err error) {
	format, w, h, err := DecodeConfig(data)
	if err != nil {
		return nil, err
	}
	limit := opts.MaxPixels
	if limit <= 0 {
		limit = DefaultMaxDecodePixels
	}
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("imageproc: %s image has an empty size %dx%d", format, w, h)
	}
	if int64(w)*int64(h) > limit {
		return nil, fmt.Errorf("imageproc: %s image of %dx%d = %d pixels exceeds the %d-pixel limit (possible decompression bomb; raise the limit if the image is genuine)", format, w, h, int64(w)*int64(h), limit)
	}
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("imageproc: corrupt %s image: decoder failed: %v", format, r)
		}
	}()
	img, err = decodePixels(data, format, w, h)
	if err != nil {
		return nil, err
	}
	if opts.ApplyEXIFOrientation {
		img = orient(img, exifOrientation(format, data))
	}
	return img, nil
}

// decodePixels decodes data of the given format and header size to RGB.
func decodePixels(data []byte, format string, w, h int) (*RGB, error) {
	m, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("imageproc: decoding %s image: %w (truncated or corrupt file)", format, err)
	}
	b := m.Bounds()
	if format == "gif" && (b.Dx() != w || b.Dy() != h) {
		return nil, fmt.Errorf("imageproc: GIF's first frame covers %v of its %dx%d screen; frames smaller than the screen are not supported (convert the image to PNG)", b, w, h)
	}
	if b.Dx() != w || b.Dy() != h {
		return nil, fmt.Errorf("imageproc: %s image decoded to %dx%d but its header says %dx%d (corrupt file)", format, b.Dx(), b.Dy(), w, h)
	}
	if pm, ok := m.(*image.Paletted); ok && format == "gif" {
		restoreGIFPalette(pm, data)
	}
	if format == "webp" {
		switch y := m.(type) {
		case *image.YCbCr:
			return webpToRGB(y), nil
		case *image.NYCbCrA:
			return webpToRGB(&y.YCbCr), nil
		}
	}
	gray16Clip := format == "png" && pngIs16BitGray(data)
	return ToRGB(m, gray16Clip), nil
}

// pngIs16BitGray reports whether PNG data is 16-bit grayscale (color type 0 or 4,
// bit depth 16) from its IHDR chunk.
func pngIs16BitGray(data []byte) bool {
	// signature (8) + length (4) + "IHDR" (4) + width (4) + height (4) + depth (1) + color type (1)
	if len(data) < 26 || string(data[12:16]) != "IHDR" {
		return false
	}
	return data[24] == 16 && data[25] == 0
}

// ToRGB converts a decoded image to 8-bit RGB as PIL's convert("RGB") does (see
// Decode). gray16Clip selects PIL's handling of 16-bit grayscale (values above
// 255 become 255) for 16-bit images whose samples are gray; otherwise 16-bit
// samples keep their high byte.
func ToRGB(m image.Image, gray16Clip bool) *RGB {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB(w, h)
	p := out.Pix
	i := 0
	put := func(r, g, bl uint8) {
		p[i], p[i+1], p[i+2] = r, g, bl
		i += 3
	}
	hi16 := func(v uint16) uint8 {
		if gray16Clip {
			return uint8(min(v, 255))
		}
		return uint8(v >> 8)
	}
	switch m := m.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				put(row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 255 && a != 0 { // premultiplied: recover the stored colour
					r, g, bl = unpremul(r, a), unpremul(g, a), unpremul(bl, a)
				}
				put(r, g, bl)
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				put(row[x], row[x], row[x])
			}
		}
	case *image.Paletted:
		var pal [256][3]uint8
		for j, c := range m.Palette {
			if j >= 256 {
				break
			}
			pal[j] = nrgb(c)
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				c := pal[row[x]]
				put(c[0], c[1], c[2])
			}
		}
	case *image.YCbCr:
		ycbcrToRGB(m, p)
	case *image.NYCbCrA:
		ycbcrToRGB(&m.YCbCr, p)
	case *image.CMYK:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				put(cmykToRGB(row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]))
			}
		}
	case *image.Gray16:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				v := hi16(m.Gray16At(x, y).Y)
				put(v, v, v)
			}
		}
	case *image.NRGBA64:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := m.NRGBA64At(x, y)
				put(hi16(c.R), hi16(c.G), hi16(c.B))
			}
		}
	case *image.RGBA64:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBA64Model.Convert(m.RGBA64At(x, y)).(color.NRGBA64)
				put(hi16(c.R), hi16(c.G), hi16(c.B))
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := nrgb(m.At(x, y))
				put(c[0], c[1], c[2])
			}
		}
	}
	return out
}

// unpremul recovers an 8-bit straight-alpha channel from a premultiplied one.
func unpremul(c, a uint8) uint8 {
	return uint8(min(255, (uint32(c)*255+uint32(a)/2)/uint32(a)))
}

// nrgb returns the straight (non-premultiplied) RGB of c.
func nrgb(c color.Color) [3]uint8 {
	switch c := c.(type) {
	case color.NRGBA:
		return [3]uint8{c.R, c.G, c.B}
	case color.RGBA:
		if c.A == 255 || c.A == 0 {
			return [3]uint8{c.R, c.G, c.B}
		}
		return [3]uint8{unpremul(c.R, c.A), unpremul(c.G, c.A), unpremul(c.B, c.A)}
	case color.Gray:
		return [3]uint8{c.Y, c.Y, c.Y}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}

// cmykToRGB converts as PIL does for mode CMYK: each channel is
// (255-K)·(255-C)/255 with PIL's rounding.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := 255 - int(k)
	f := func(v uint8) uint8 {
		t := int(v)*nk + 128
		return uint8(nk - ((t>>8)+t)>>8)
	}
	return f(c), f(m), f(y)
}

// ycbcrToRGB converts a JPEG's YCbCr planes to RGB into p as libjpeg(-turbo)
// does by default: chroma subsampled 2x horizontally and/or vertically is
// upsampled with libjpeg's "fancy" triangle filter, then converted with its
// fixed-point coefficients. Other subsamplings (and components at most 2
// samples wide) replicate chroma.
func ycbcrToRGB(m *image.YCbCr, p []uint8) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	var hs, vs int
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio422:
		hs, vs = 2, 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 2, 2
	case image.YCbCrSubsampleRatio440:
		hs, vs = 1, 2
	}
	// libjpeg upsamples a horizontally subsampled component by replication when
	// it is at most 2 samples wide.
	if hs == 2 && (w+1)/2 <= 2 {
		hs = 0
	}
	if hs == 0 || (hs == 1 && vs == 1) {
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				ci := m.COffset(x, y)
				r, g, bl := jpegYCbCrToRGB(m.Y[m.YOffset(x, y)], m.Cb[ci], m.Cr[ci])
				p[i], p[i+1], p[i+2] = r, g, bl
				i += 3
			}
		}
		return
	}
	cw, ch := (w+hs-1)/hs, (h+vs-1)/vs
	cb := fancyUpsample(m.Cb, m.CStride, m.COffset(b.Min.X, b.Min.Y), cw, ch, hs, vs, w, h)
	cr := fancyUpsample(m.Cr, m.CStride, m.COffset(b.Min.X, b.Min.Y), cw, ch, hs, vs, w, h)
	i := 0
	for y := range h {
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		for x := range w {
			r, g, bl := jpegYCbCrToRGB(yrow[x], cb[y*w+x], cr[y*w+x])
			p[i], p[i+1], p[i+2] = r, g, bl
			i += 3
		}
	}
}

// fancyUpsample expands a cw×ch chroma plane (starting at off, rows stride
// apart) to w×h with libjpeg's fancy upsampling for factors hs, vs ∈ {1, 2}:
// each output sample weighs its nearest input sample 3/4 and the next nearest
// 1/4 along each upsampled axis, with libjpeg's alternating rounding biases;
// samples beyond the edges replicate the edge.
func fancyUpsample(plane []uint8, stride, off, cw, ch, hs, vs, w, h int) []uint8 {
	at := func(x, y int) int {
		x = min(max(x, 0), cw-1)
		y = min(max(y, 0), ch-1)
		return int(plane[off+y*stride+x])
	}
	out := make([]uint8, w*h)
	for y := range h {
		j := y / vs
		nb := j
		if vs == 2 {
			if y%2 == 0 {
				nb = j - 1
			} else {
				nb = j + 1
			}
		}
		row := out[y*w : (y+1)*w]
		switch {
		case hs == 2 && vs == 2:
			colsum := func(i int) int { return 3*at(i, j) + at(i, nb) }
			for x := range w {
				i := x / 2
				if x%2 == 0 {
					row[x] = uint8((3*colsum(i) + colsum(i-1) + 8) >> 4)
				} else {
					row[x] = uint8((3*colsum(i) + colsum(i+1) + 7) >> 4)
				}
			}
		case hs == 2:
			for x := range w {
				i := x / 2
				if x%2 == 0 {
					row[x] = uint8((3*at(i, j) + at(i-1, j) + 1) >> 2)
				} else {
					row[x] = uint8((3*at(i, j) + at(i+1, j) + 2) >> 2)
				}
			}
		default: // hs == 1, vs == 2
			bias := 1
			if y%2 == 1 {
				bias = 2
			}
			for x := range w {
				row[x] = uint8((3*at(x, j) + at(x, nb) + bias) >> 2)
			}
		}
	}
	return out
}

// jpegYCbCrToRGB is libjpeg's YCbCr→RGB conversion (16-bit fixed point, rounded).
func jpegYCbCrToRGB(yy, cb, cr uint8) (uint8, uint8, uint8) {
	const (
		scale = 16
		half  = 1 << (scale - 1)
	)
	fix := func(x float64) int { return int(x*(1<<scale) + 0.5) }
	y := int(yy)
	cbv := int(cb) - 128
	crv := int(cr) - 128
	r := y + ((fix(1.40200)*crv + half) >> scale)
	g := y + ((-fix(0.34414)*cbv - fix(0.71414)*crv + half) >> scale)
	bl := y + ((fix(1.77200)*cbv + half) >> scale)
	return clamp8(r), clamp8(g), clamp8(bl)
}

func clamp8(v int) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// webpToRGB converts lossy WebP's 4:2:0 YUV planes to RGB as libwebp (and so
// PIL) does: "fancy" chroma upsampling, weighting the four nearest chroma
// samples 9:3:3:1, and libwebp's fixed-point BT.601 limited-range conversion.
func webpToRGB(m *image.YCbCr) *RGB {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := NewRGB(w, h)
	if m.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		return ToRGB(m, false)
	}
	cw, ch := (w+1)/2, (h+1)/2
	off := m.COffset(b.Min.X, b.Min.Y)
	row := func(plane []uint8, j int) []uint8 {
		j = min(max(j, 0), ch-1)
		return plane[off+j*m.CStride : off+j*m.CStride+cw]
	}
	for y := range h {
		// Output row y lies between chroma rows k-1 and k; odd rows are nearer k-1.
		k := (y + 1) / 2
		nearTop := y%2 == 1
		if y == 0 {
			nearTop = true
		}
		tu, cu := row(m.Cb, k-1), row(m.Cb, k)
		tv, cv := row(m.Cr, k-1), row(m.Cr, k)
		if y == 0 {
			tu, tv = cu, cv
		}
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		o := out.Pix[y*w*3:]
		for x := range w {
			u := webpChroma(tu, cu, x, cw, nearTop)
			v := webpChroma(tv, cv, x, cw, nearTop)
			yy := int(yrow[x])
			o[3*x] = webpClip8(mulHi(yy, 19077) + mulHi(v, 26149) - 14234)
			o[3*x+1] = webpClip8(mulHi(yy, 19077) - mulHi(u, 6419) - mulHi(v, 13320) + 8708)
			o[3*x+2] = webpClip8(mulHi(yy, 19077) + mulHi(u, 33050) - 17685)
		}
	}
	return out
}

// webpChroma returns the upsampled chroma for output column x from chroma rows
// top and cur (cw samples each), nearer top when nearTop.
func webpChroma(top, cur []uint8, x, cw int, nearTop bool) int {
	j := (x + 1) / 2
	if x == 0 || j >= cw { // edge columns: vertical 3:1 blend only
		c := min(j, cw-1)
		if x == 0 {
			c = 0
		}
		t, l := int(top[c]), int(cur[c])
		if nearTop {
			return (3*t + l + 2) >> 2
		}
		return (3*l + t + 2) >> 2
	}
	tl, t := int(top[j-1]), int(top[j])
	l, c := int(cur[j-1]), int(cur[j])
	avg := tl + t + l + c + 8
	diag12 := (avg + 2*(t+l)) >> 3
	diag03 := (avg + 2*(tl+c)) >> 3
	left := x%2 == 1 // odd columns are nearer chroma column j-1
	switch {
	case nearTop && left:
		return (diag12 + tl) >> 1
	case nearTop:
		return (diag03 + t) >> 1
	case left:
		return (diag03 + l) >> 1
	default:
		return (diag12 + c) >> 1
	}
}

func mulHi(v, coeff int) int { return (v * coeff) >> 8 }

// webpClip8 is libwebp's clip of a 6-bit fixed-point value to 8 bits.
func webpClip8(v int) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

// restoreGIFPalette puts back the colour of the transparent palette entry,
// which Go's GIF decoder replaces by transparent black, from the first frame's
// colour table: PIL's convert("RGB") uses the table's colour.
func restoreGIFPalette(m *image.Paletted, data []byte) {
	table := gifFirstColorTable(data)
	if len(table) < len(m.Palette) {
		return
	}
	pal := make(color.Palette, len(m.Palette))
	for i := range pal {
		pal[i] = color.NRGBA{table[i][0], table[i][1], table[i][2], 255}
	}
	m.Palette = pal
}

// gifFirstColorTable returns the colour table of a GIF's first image (its
// local table, else the global one), or nil when the data cannot be walked.
func gifFirstColorTable(data []byte) [][3]uint8 {
	readTable := func(at int, flags byte) ([][3]uint8, int) {
		if flags&0x80 == 0 {
			return nil, at
		}
		n := 1 << ((flags & 7) + 1)
		if at+3*n > len(data) {
			return nil, -1
		}
		t := make([][3]uint8, n)
		for i := range t {
			t[i] = [3]uint8{data[at+3*i], data[at+3*i+1], data[at+3*i+2]}
		}
		return t, at + 3*n
	}
	if len(data) < 13 || string(data[:3]) != "GIF" {
		return nil
	}
	global, i := readTable(13, data[10])
	if i < 0 {
		return nil
	}
	for i < len(data) {
		switch data[i] {
		case 0x21: // extension: label, then sub-blocks
			i += 2
			for i < len(data) && data[i] != 0 {
				i += int(data[i]) + 1
			}
			i++
		case 0x2c: // image descriptor
			if i+10 > len(data) {
				return nil
			}
			local, j := readTable(i+10, data[i+9])
			if j < 0 {
				return nil
			}
			if local != nil {
				return local
			}
			return global
		default:
			return nil
		}
	}
	return nil
}
