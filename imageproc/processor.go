package imageproc

import (
	"fmt"
	"os"
)

// Processor turns images into Qwen2-VL pixel_values and image_grid_thw.
// It holds no mutable state and may be used from several goroutines.
type Processor struct {
	cfg    Config
	decode DecodeOptions
	// lut maps an 8-bit channel value to its rescaled, normalized float32.
	lut [3][256]float32
}

// New returns a processor for cfg; opts limits image decoding.
func New(cfg Config, opts DecodeOptions) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, decode: opts}
	for c := range 3 {
		mean, std := cfg.ImageMean[c], cfg.ImageStd[c]
		for v := range 256 {
			// rescale in float64 then cast, normalize in float32, as transformers does.
			x := float32(float64(v) * (1.0 / 255))
			p.lut[c][v] = (x - mean) / std
		}
	}
	return p, nil
}

// Config returns the processor's settings.
func (p *Processor) Config() Config { return p.cfg }

// Batch is the processor's output for one or more images.
type Batch struct {
	// PixelValues is the row-major [NumPatches, PatchDim] float32 matrix,
	// the images' patches one after another.
	PixelValues []float32
	// PatchDim is 3·temporal_patch_size·patch_size² (1176 for Qwen2-VL).
	PatchDim int
	// Grids holds each image's image_grid_thw (t, h, w) in patches.
	Grids [][3]int
}

// NumPatches returns the number of rows of PixelValues.
func (b *Batch) NumPatches() int {
	if b.PatchDim == 0 {
		return 0
	}
	return len(b.PixelValues) / b.PatchDim
}

// GridTHW returns Grids flattened row-major, the [images, 3] int64 image_grid_thw tensor.
func (b *Batch) GridTHW() []int64 {
	out := make([]int64, 0, 3*len(b.Grids))
	for _, g := range b.Grids {
		out = append(out, int64(g[0]), int64(g[1]), int64(g[2]))
	}
	return out
}

// Process resizes, normalizes and patchifies one RGB image, returning its
// [t·h·w, PatchDim] pixel values and its grid (t, h, w).
func (p *Processor) Process(img *RGB) ([]float32, [3]int, error) {
	b, err := p.Preprocess(img)
	if err != nil {
		return nil, [3]int{}, err
	}
	return b.PixelValues, b.Grids[0], nil
}

// plan validates img and returns its resized size and grid.
func (p *Processor) plan(img *RGB) (rh, rw int, grid [3]int, err error) {
	if img == nil || img.Width <= 0 || img.Height <= 0 || len(img.Pix) != 3*img.Width*img.Height {
		return 0, 0, grid, fmt.Errorf("imageproc: empty or malformed image")
	}
	c := p.cfg
	rh, rw, err = SmartResize(img.Height, img.Width, c.Factor(), c.MinPixels, c.MaxPixels)
	if err != nil {
		return 0, 0, grid, err
	}
	return rh, rw, [3]int{1, rh / c.PatchSize, rw / c.PatchSize}, nil
}

// patchify cuts a resized image into flattened patches in transformers' order
// and writes them to out (grid h·w rows of 3·T·P·P values): rows by
// (merge-window row, merge-window column, row in window, column in window),
// columns by (channel, frame, y in patch, x in patch). The still image fills
// every one of the temporal_patch_size frames.
func (p *Processor) patchify(img *RGB, grid [3]int, out []float32) {
	c := p.cfg
	P, T, M := c.PatchSize, c.TemporalPatchSize, c.MergeSize
	gh, gw := grid[1], grid[2]
	dim := c.PatchDim()
	row := 0
	for bh := 0; bh < gh/M; bh++ {
		for bw := 0; bw < gw/M; bw++ {
			for mh := range M {
				for mw := range M {
					py0 := (bh*M + mh) * P
					px0 := (bw*M + mw) * P
					dst := out[row*dim : (row+1)*dim]
					for ch := range 3 {
						lut := &p.lut[ch]
						base := ch * T * P * P
						frame := dst[base : base+P*P]
						for y := range P {
							src := img.Pix[((py0+y)*img.Width+px0)*3+ch:]
							f := frame[y*P : (y+1)*P]
							for x := range f {
								f[x] = lut[src[3*x]]
							}
						}
						for t := 1; t < T; t++ {
							copy(dst[base+t*P*P:base+(t+1)*P*P], frame)
						}
					}
					row++
				}
			}
		}
	}
}

// Preprocess processes several images into one batch, in order.
func (p *Processor) Preprocess(images ...*RGB) (*Batch, error) {
	dim := p.cfg.PatchDim()
	b := &Batch{PatchDim: dim, Grids: make([][3]int, len(images))}
	sizes := make([][2]int, len(images))
	total := 0
	for i, img := range images {
		rh, rw, grid, err := p.plan(img)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		sizes[i] = [2]int{rh, rw}
		b.Grids[i] = grid
		total += grid[0] * grid[1] * grid[2]
	}
	b.PixelValues = make([]float32, total*dim)
	start := 0
	for i, img := range images {
		resized, err := Resize(img, sizes[i][1], sizes[i][0])
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		g := b.Grids[i]
		n := g[0] * g[1] * g[2] * dim
		p.patchify(resized, g, b.PixelValues[start:start+n])
		start += n
	}
	return b, nil
}

// DecodeImage checks encoded image data's size against the decode limit and
// smart_resize's aspect-ratio rule before decoding it to RGB.
func (p *Processor) DecodeImage(data []byte) (*RGB, error) {
	_, w, h, err := DecodeConfig(data)
	if err != nil {
		return nil, err
	}
	if _, _, err := SmartResize(h, w, p.cfg.Factor(), p.cfg.MinPixels, p.cfg.MaxPixels); err != nil {
		return nil, err
	}
	return Decode(data, p.decode)
}

// PreprocessBytes decodes and processes encoded images (PNG, JPEG, GIF, WebP, BMP).
func (p *Processor) PreprocessBytes(data ...[]byte) (*Batch, error) {
	imgs := make([]*RGB, len(data))
	for i, d := range data {
		img, err := p.DecodeImage(d)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		imgs[i] = img
	}
	return p.Preprocess(imgs...)
}

// PreprocessFiles reads, decodes and processes image files.
func (p *Processor) PreprocessFiles(paths ...string) (*Batch, error) {
	imgs := make([]*RGB, len(paths))
	for i, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("imageproc: %w", err)
		}
		img, err := p.DecodeImage(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		imgs[i] = img
	}
	b, err := p.Preprocess(imgs...)
	if err != nil {
		return nil, fmt.Errorf("%w (files %v)", err, paths)
	}
	return b, nil
}
