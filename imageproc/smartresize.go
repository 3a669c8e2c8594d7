package imageproc

import (
	"fmt"
	"math"
)

// MaxAspectRatio is the largest long-side/short-side ratio smart_resize accepts.
const MaxAspectRatio = 200

// SmartResize returns the size (height, width) Qwen2-VL resizes a height×width
// image to, as transformers' smart_resize computes it: both sides multiples of
// factor, the area within [minPixels, maxPixels] where possible, the aspect
// ratio kept as closely as possible. Images whose aspect ratio exceeds 200 are
// refused, as transformers does.
func SmartResize(height, width, factor, minPixels, maxPixels int) (int, int, error) {
	if height <= 0 || width <= 0 {
		return 0, 0, fmt.Errorf("imageproc: image size %dx%d (width x height) is empty", width, height)
	}
	if factor <= 0 {
		return 0, 0, fmt.Errorf("imageproc: resize factor %d must be positive", factor)
	}
	h, w := float64(height), float64(width)
	if ratio := math.Max(h, w) / math.Min(h, w); ratio > MaxAspectRatio {
		return 0, 0, fmt.Errorf("imageproc: image of %dx%d (width x height) has aspect ratio %.1f; Qwen2-VL requires the absolute aspect ratio to be at most %d (crop or pad the image)", width, height, ratio, MaxAspectRatio)
	}
	f := float64(factor)
	// Python's round() rounds halves to even.
	hBar := int(math.RoundToEven(h/f)) * factor
	wBar := int(math.RoundToEven(w/f)) * factor
	switch {
	case hBar*wBar > maxPixels:
		beta := math.Sqrt(h * w / float64(maxPixels))
		hBar = max(factor, int(math.Floor(h/beta/f))*factor)
		wBar = max(factor, int(math.Floor(w/beta/f))*factor)
	case hBar*wBar < minPixels:
		beta := math.Sqrt(float64(minPixels) / (h * w))
		hBar = int(math.Ceil(h*beta/f)) * factor
		wBar = int(math.Ceil(w*beta/f)) * factor
	}
	return hBar, wBar, nil
}

// Grid returns image_grid_thw (t, h, w) in patches for a still image of the
// given size under c.
func (c Config) Grid(height, width int) ([3]int, error) {
	rh, rw, err := SmartResize(height, width, c.Factor(), c.MinPixels, c.MaxPixels)
	if err != nil {
		return [3]int{}, err
	}
	return [3]int{1, rh / c.PatchSize, rw / c.PatchSize}, nil
}

// PatchDim returns the length of one flattened patch row of pixel_values:
// 3·temporal_patch_size·patch_size² (1176 for Qwen2-VL).
func (c Config) PatchDim() int { return 3 * c.TemporalPatchSize * c.PatchSize * c.PatchSize }

// NumImageTokens returns the number of <|image_pad|> tokens an image of the
// given grid takes in the prompt: t·h·w / merge_size².
func (c Config) NumImageTokens(grid [3]int) int {
	return grid[0] * grid[1] * grid[2] / (c.MergeSize * c.MergeSize)
}
