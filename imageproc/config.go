// Package imageproc is the Qwen2-VL image processor: it decodes images,
// converts them to RGB as PIL's convert("RGB") does, resizes them with
// smart_resize and PIL-exact bicubic resampling, rescales and normalizes them,
// and cuts them into the flattened [patches, 3·T·P·P] pixel_values with the
// image_grid_thw that Hugging Face's Qwen2VLImageProcessor returns.
package imageproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config holds the processor settings of a preprocessor_config.json.
type Config struct {
	// MinPixels and MaxPixels bound the resized image's area (smart_resize).
	MinPixels int
	MaxPixels int
	// PatchSize is the vision encoder's spatial patch size (14).
	PatchSize int
	// TemporalPatchSize is the number of frames per patch (2); a still image is repeated to fill them.
	TemporalPatchSize int
	// MergeSize is the side of the window of patches merged into one LLM token (2).
	MergeSize int
	// ImageMean and ImageStd normalize each RGB channel after rescaling by 1/255.
	ImageMean [3]float32
	ImageStd  [3]float32
}

// DefaultConfig returns Qwen2VLImageProcessor's defaults (as in Qwen2-VL-2B-Instruct
// apart from MaxPixels, which the model's preprocessor_config.json raises to 12845056).
func DefaultConfig() Config {
	return Config{
		MinPixels:         56 * 56,
		MaxPixels:         28 * 28 * 1280,
		PatchSize:         14,
		TemporalPatchSize: 2,
		MergeSize:         2,
		ImageMean:         [3]float32{0.48145466, 0.4578275, 0.40821073},
		ImageStd:          [3]float32{0.26862954, 0.26130258, 0.27577711},
	}
}

// Factor returns PatchSize·MergeSize, the multiple both resized sides are rounded to.
func (c Config) Factor() int { return c.PatchSize * c.MergeSize }

// Validate reports settings the processor cannot work with, among them a
// max_pixels above DefaultMaxDecodePixels (the resized image would be a
// decompression bomb of its own).
func (c Config) Validate() error {
	switch {
	case c.PatchSize <= 0:
		return fmt.Errorf("imageproc: patch_size %d must be positive", c.PatchSize)
	case c.TemporalPatchSize <= 0:
		return fmt.Errorf("imageproc: temporal_patch_size %d must be positive", c.TemporalPatchSize)
	case c.MergeSize <= 0:
		return fmt.Errorf("imageproc: merge_size %d must be positive", c.MergeSize)
	case c.MinPixels <= 0:
		return fmt.Errorf("imageproc: min_pixels %d must be positive", c.MinPixels)
	case c.MaxPixels < c.MinPixels:
		return fmt.Errorf("imageproc: max_pixels %d is below min_pixels %d", c.MaxPixels, c.MinPixels)
	case c.MaxPixels > DefaultMaxDecodePixels:
		// The resized image, and so pixel_values, is allocated at about this size.
		return fmt.Errorf("imageproc: max_pixels %d is over %d, the largest image this processor resizes to (Pillow's decompression-bomb limit; Qwen2-VL's configs use at most 12845056)", c.MaxPixels, DefaultMaxDecodePixels)
	}
	for i, s := range c.ImageStd {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("imageproc: image_std[%d] = %v must be a positive number", i, s)
		}
		if m := c.ImageMean[i]; m != m || math.IsInf(float64(m), 0) {
			return fmt.Errorf("imageproc: image_mean[%d] = %v must be a finite number", i, m)
		}
	}
	return nil
}

// fileConfig is the JSON form of preprocessor_config.json. Newer transformers
// versions also write size {"shortest_edge", "longest_edge"} for the pixel bounds.
type fileConfig struct {
	MinPixels         *int      `json:"min_pixels"`
	MaxPixels         *int      `json:"max_pixels"`
	PatchSize         *int      `json:"patch_size"`
	TemporalPatchSize *int      `json:"temporal_patch_size"`
	MergeSize         *int      `json:"merge_size"`
	ImageMean         []float64 `json:"image_mean"`
	ImageStd          []float64 `json:"image_std"`
	Size              *struct {
		ShortestEdge *int `json:"shortest_edge"`
		LongestEdge  *int `json:"longest_edge"`
	} `json:"size"`
	RescaleFactor *float64 `json:"rescale_factor"`
	DoResize      *bool    `json:"do_resize"`
	DoRescale     *bool    `json:"do_rescale"`
	DoNormalize   *bool    `json:"do_normalize"`
	DoConvertRGB  *bool    `json:"do_convert_rgb"`
}

// ParseConfig reads preprocessor_config.json content; absent fields keep
// DefaultConfig's values, and min_pixels/max_pixels take precedence over size,
// as in transformers.
func ParseConfig(data []byte) (Config, error) {
	var f fileConfig
	if err := json.Unmarshal(data, &f); err != nil {
		return Config{}, fmt.Errorf("imageproc: preprocessor config is not valid JSON: %w", err)
	}
	c := DefaultConfig()
	if f.Size != nil {
		if f.Size.ShortestEdge != nil {
			c.MinPixels = *f.Size.ShortestEdge
		}
		if f.Size.LongestEdge != nil {
			c.MaxPixels = *f.Size.LongestEdge
		}
	}
	setInt := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	setInt(&c.MinPixels, f.MinPixels)
	setInt(&c.MaxPixels, f.MaxPixels)
	setInt(&c.PatchSize, f.PatchSize)
	setInt(&c.TemporalPatchSize, f.TemporalPatchSize)
	setInt(&c.MergeSize, f.MergeSize)
	setVec := func(dst *[3]float32, src []float64, name string) error {
		if src == nil {
			return nil
		}
		if len(src) != 3 {
			return fmt.Errorf("imageproc: %s has %d values; an RGB processor needs 3", name, len(src))
		}
		for i, v := range src {
			dst[i] = float32(v)
		}
		return nil
	}
	if err := setVec(&c.ImageMean, f.ImageMean, "image_mean"); err != nil {
		return Config{}, err
	}
	if err := setVec(&c.ImageStd, f.ImageStd, "image_std"); err != nil {
		return Config{}, err
	}
	// This processor always resizes, rescales by 1/255, normalizes and converts to RGB,
	// as Qwen2-VL's configs do; refuse configs that ask for something else rather than
	// silently producing different values.
	if f.RescaleFactor != nil && math.Abs(*f.RescaleFactor-1.0/255) > 1e-9 {
		return Config{}, fmt.Errorf("imageproc: rescale_factor %v is not supported (only 1/255)", *f.RescaleFactor)
	}
	for name, b := range map[string]*bool{"do_resize": f.DoResize, "do_rescale": f.DoRescale, "do_normalize": f.DoNormalize, "do_convert_rgb": f.DoConvertRGB} {
		if b != nil && !*b {
			return Config{}, fmt.Errorf("imageproc: %s=false is not supported by this processor", name)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads a preprocessor_config.json file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("imageproc: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// LoadModelConfig reads preprocessor_config.json from a model folder.
func LoadModelConfig(dir string) (Config, error) {
	p := filepath.Join(dir, "preprocessor_config.json")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("imageproc: model folder %s has no preprocessor_config.json; pass the config file itself or a Qwen2-VL model folder", dir)
	}
	return LoadConfig(p)
}
