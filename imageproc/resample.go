package imageproc

import (
	"fmt"
	"math"
)

// RGB is an 8-bit RGB image: Pix holds Width·Height pixels row by row, 3 bytes
// (R, G, B) each.
type RGB struct {
	Width, Height int
	Pix           []uint8
}

// NewRGB returns a black width×height image.
func NewRGB(width, height int) *RGB {
	return &RGB{Width: width, Height: height, Pix: make([]uint8, 3*width*height)}
}

// The resampler reproduces Pillow's Image.resize(size, BICUBIC) with no
// reducing_gap: a separable convolution, horizontal pass first, with the
// cubic kernel (a = -0.5) stretched by the downscale factor when shrinking
// (antialiasing), weights normalized per output pixel and turned into 22-bit
// fixed point, and the intermediate image rounded and clipped to 8 bits.
const (
	precisionBits = 32 - 8 - 2
	bicubicA      = -0.5
	bicubicRadius = 2.0
)

// bicubic is the cubic convolution kernel with a = -0.5.
func bicubic(x float64) float64 {
	x = math.Abs(x)
	switch {
	case x < 1:
		return ((bicubicA+2)*x-(bicubicA+3))*x*x + 1
	case x < 2:
		return (((x-5)*x+8)*x - 4) * bicubicA
	}
	return 0
}

// kernel holds, for each output position, the first input index, the tap count
// and ksize fixed-point weights.
type kernel struct {
	ksize  int
	start  []int
	count  []int
	weight []int32
}

// newKernel computes the resampling weights mapping inSize samples to outSize.
func newKernel(inSize, outSize int) kernel {
	scale := float64(inSize) / float64(outSize)
	filterScale := math.Max(scale, 1)
	support := bicubicRadius * filterScale
	ksize := int(math.Ceil(support))*2 + 1
	k := kernel{ksize: ksize, start: make([]int, outSize), count: make([]int, outSize), weight: make([]int32, outSize*ksize)}
	w := make([]float64, ksize)
	for o := range outSize {
		center := (float64(o) + 0.5) * scale
		lo := int(center - support + 0.5) // truncation toward zero, then clamped
		if lo < 0 {
			lo = 0
		}
		hi := int(center + support + 0.5)
		if hi > inSize {
			hi = inSize
		}
		n := hi - lo
		sum := 0.0
		for i := range n {
			w[i] = bicubic((float64(i+lo) - center + 0.5) / filterScale)
			sum += w[i]
		}
		row := k.weight[o*ksize : (o+1)*ksize]
		for i := range n {
			v := w[i]
			if sum != 0 {
				v /= sum
			}
			if v < 0 {
				row[i] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				row[i] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		k.start[o], k.count[o] = lo, n
	}
	return k
}

// clip8 turns a fixed-point accumulator into an 8-bit value.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// Resize returns src resized to width×height with Pillow's bicubic filter
// (Image.resize(..., Image.BICUBIC)); the result is identical to Pillow's for
// 8-bit RGB images.
func Resize(src *RGB, width, height int) (*RGB, error) {
	if src == nil || src.Width <= 0 || src.Height <= 0 || len(src.Pix) != 3*src.Width*src.Height {
		return nil, fmt.Errorf("imageproc: cannot resize an empty or malformed image")
	}
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("imageproc: cannot resize to %dx%d", width, height)
	}
	needH := width != src.Width
	needV := height != src.Height
	if !needH && !needV {
		out := &RGB{Width: width, Height: height, Pix: append([]uint8(nil), src.Pix...)}
		return out, nil
	}
	kv := newKernel(src.Height, height)
	img := src
	if needH {
		kh := newKernel(src.Width, width)
		// Only the input rows the vertical pass reads need the horizontal pass.
		first := kv.start[0]
		last := kv.start[height-1] + kv.count[height-1]
		if !needV {
			first, last = 0, src.Height
		}
		tmp := NewRGB(width, last-first)
		resampleH(tmp, src, first, kh)
		if needV {
			for i := range kv.start {
				kv.start[i] -= first
			}
		}
		img = tmp
	}
	if !needV {
		return img, nil
	}
	out := NewRGB(width, height)
	resampleV(out, img, kv)
	return out, nil
}

// resampleH fills dst (dst.Height rows) from src rows first.. with kernel k along x.
func resampleH(dst, src *RGB, first int, k kernel) {
	const half = int32(1) << (precisionBits - 1)
	for y := range dst.Height {
		in := src.Pix[(first+y)*src.Width*3 : (first+y+1)*src.Width*3]
		out := dst.Pix[y*dst.Width*3 : (y+1)*dst.Width*3]
		for x := range dst.Width {
			w := k.weight[x*k.ksize : x*k.ksize+k.count[x]]
			p := in[k.start[x]*3:]
			r, g, b := half, half, half
			for i, c := range w {
				r += int32(p[3*i]) * c
				g += int32(p[3*i+1]) * c
				b += int32(p[3*i+2]) * c
			}
			out[3*x], out[3*x+1], out[3*x+2] = clip8(r), clip8(g), clip8(b)
		}
	}
}

// resampleV fills dst from src with kernel k along y.
func resampleV(dst, src *RGB, k kernel) {
	const half = int32(1) << (precisionBits - 1)
	stride := src.Width * 3
	acc := make([]int32, stride)
	for y := range dst.Height {
		w := k.weight[y*k.ksize : y*k.ksize+k.count[y]]
		for i := range acc {
			acc[i] = half
		}
		for i, c := range w {
			row := src.Pix[(k.start[y]+i)*stride : (k.start[y]+i+1)*stride]
			for j, v := range row {
				acc[j] += int32(v) * c
			}
		}
		out := dst.Pix[y*stride : (y+1)*stride]
		for j, a := range acc {
			out[j] = clip8(a)
		}
	}
}
