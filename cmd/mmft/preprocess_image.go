package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/internal/atomicfile"
	"github.com/mmft-go/mmft/safetensors"
)

// preprocessImageLine is the JSON line printed for each image.
type preprocessImageLine struct {
	File          string `json:"file"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	ResizedWidth  int    `json:"resized_width"`
	ResizedHeight int    `json:"resized_height"`
	GridTHW       [3]int `json:"image_grid_thw"`
	Patches       int    `json:"patches"`
	ImageTokens   int    `json:"image_tokens"`
}

func runPreprocessImage(c *cli, args []string) error {
	fs := c.newFlags("preprocess-image", "[--model DIR | --config preprocessor_config.json] [--min-pixels N] [--max-pixels N] [--out F.safetensors] FILE...",
		`Run the Qwen2-VL image processor (as Hugging Face's Qwen2VLImageProcessor with PIL)
on image files (PNG, JPEG, GIF, WebP, BMP; "-" reads one image from stdin). Prints one
JSON line per image with its size, resized size, image_grid_thw, patch count and the
number of <|image_pad|> tokens it takes. With --out, writes pixel_values (F32
[patches, 1176]) and image_grid_thw (I64 [images, 3]) to a safetensors file.

Settings come from the model folder's preprocessor_config.json (--model) or a config
file (--config); without either, transformers' Qwen2VLImageProcessor defaults are used
(min_pixels 3136, max_pixels 1003520).`)
	modelDir := fs.String("model", "", "model folder or Hub id holding preprocessor_config.json")
	configPath := fs.String("config", "", "preprocessor_config.json to read")
	minPixels := fs.Int("min-pixels", 0, "override min_pixels (0: from the config)")
	maxPixels := fs.Int("max-pixels", 0, "override max_pixels (0: from the config)")
	out := fs.String("out", "", "write pixel_values and image_grid_thw to this safetensors file")
	maxDecode := fs.Int64("max-decode-pixels", imageproc.DefaultMaxDecodePixels, "refuse images larger than this many pixels before decoding (decompression-bomb guard)")
	exif := fs.Bool("exif-orientation", false, "rotate images as their EXIF orientation says (PIL's exif_transpose; the HF processor does not)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if *modelDir != "" && *configPath != "" {
		fmt.Fprintln(c.stderr, "mmft preprocess-image: give --model or --config, not both")
		return errUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(c.stderr, "mmft preprocess-image: no image files given; run `mmft preprocess-image --help`")
		return errUsage
	}
	if *minPixels < 0 || *maxPixels < 0 || *maxDecode <= 0 {
		fmt.Fprintln(c.stderr, "mmft preprocess-image: --min-pixels and --max-pixels must be >= 0 and --max-decode-pixels > 0")
		return errUsage
	}
	if *out != "" {
		if err := atomicfile.CheckDest(*out); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	cfg := imageproc.DefaultConfig()
	var err error
	switch {
	case *modelDir != "":
		var dir string
		if dir, err = c.resolveModel(*modelDir, "preprocessor_config.json"); err == nil {
			cfg, err = imageproc.LoadModelConfig(dir)
		}
	case *configPath != "":
		cfg, err = imageproc.LoadConfig(*configPath)
	}
	if err != nil {
		return err
	}
	if *minPixels > 0 {
		cfg.MinPixels = *minPixels
	}
	if *maxPixels > 0 {
		cfg.MaxPixels = *maxPixels
	}
	proc, err := imageproc.New(cfg, imageproc.DecodeOptions{MaxPixels: *maxDecode, ApplyEXIFOrientation: *exif})
	if err != nil {
		if *minPixels > 0 || *maxPixels > 0 {
			return fmt.Errorf("%w (min_pixels/max_pixels as set by --min-pixels/--max-pixels)", err)
		}
		return err
	}
	imgs := make([]*imageproc.RGB, fs.NArg())
	usedStdin := false
	for i, path := range fs.Args() {
		var data []byte
		if path == "-" {
			if usedStdin {
				return fmt.Errorf("stdin (-) can be given only once")
			}
			usedStdin = true
			data, err = io.ReadAll(c.stdin)
		} else {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		img, err := proc.DecodeImage(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		imgs[i] = img
	}
	batch, err := proc.Preprocess(imgs...)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writePixelValues(*out, batch, cfg); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "wrote %s: pixel_values [%d %d], image_grid_thw [%d 3]\n", *out, batch.NumPatches(), batch.PatchDim, len(batch.Grids))
	}
	enc := json.NewEncoder(c.stdout)
	for i, path := range fs.Args() {
		g := batch.Grids[i]
		line := preprocessImageLine{
			File: path, Width: imgs[i].Width, Height: imgs[i].Height,
			ResizedWidth: g[2] * cfg.PatchSize, ResizedHeight: g[1] * cfg.PatchSize,
			GridTHW: g, Patches: g[0] * g[1] * g[2], ImageTokens: cfg.NumImageTokens(g),
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

// writePixelValues writes a batch's pixel_values and image_grid_thw as safetensors.
func writePixelValues(out string, batch *imageproc.Batch, cfg imageproc.Config) error {
	tensors := []safetensors.NamedTensor{
		safetensors.FromFloat32("pixel_values", []int{batch.NumPatches(), batch.PatchDim}, batch.PixelValues),
		safetensors.FromInt64("image_grid_thw", []int{len(batch.Grids), 3}, batch.GridTHW()),
	}
	meta := map[string]string{
		"format":     "pt",
		"min_pixels": fmt.Sprint(cfg.MinPixels),
		"max_pixels": fmt.Sprint(cfg.MaxPixels),
	}
	return safetensors.Write(out, tensors, meta)
}
