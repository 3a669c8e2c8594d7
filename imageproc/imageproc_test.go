package imageproc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pattern is the deterministic test image also generated on the Pillow side
// (testdata/pil_resize.json was produced by Pillow 9.4 from the same formula).
func pattern(w, h int) *RGB {
	img := NewRGB(w, h)
	for y := range h {
		for x := range w {
			for c := range 3 {
				img.Pix[(y*w+x)*3+c] = uint8((x*7 + y*13 + c*101 + ((x*y)%17)*9) % 256)
			}
		}
	}
	return img
}

// TestResizeMatchesPillow checks Resize byte for byte against Pillow's
// Image.resize(BICUBIC) output (as SHA-256) for up-, down- and one-axis resizes.
func TestResizeMatchesPillow(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "pil_resize.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		W, H, OW, OH int
		SHA256       string
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		out, err := Resize(pattern(c.W, c.H), c.OW, c.OH)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(out.Pix)
		if got := hex.EncodeToString(sum[:]); got != c.SHA256 {
			t.Errorf("%dx%d -> %dx%d differs from Pillow", c.W, c.H, c.OW, c.OH)
		}
	}
}

// TestDecodeMatchesPIL decodes test images of every supported format and mode
// (written by Pillow 9.4, plus 16-bit PNGs written by Go) and compares with
// PIL's Image.open(f).convert("RGB"). Everything but JPEG must match exactly
// (lossy WebP included: its colour conversion and upsampling follow libwebp);
// JPEG's inverse DCT is Go's, not libjpeg-turbo's, so JPEGs must agree within
// a few levels.
func TestDecodeMatchesPIL(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "modes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var modes map[string]string
	if err := json.Unmarshal(b, &modes); err != nil {
		t.Fatal(err)
	}
	lossy := map[string]struct{ maxAbs, meanAbs float64 }{
		"rgb.jpg":       {4, 0.2},
		"rgb444.jpg":    {4, 0.2},
		"gray.jpg":      {2, 0.1},
		"cmyk.jpg":      {2, 0.1},
		"narrow420.jpg": {4, 0.3},
		"odd420.jpg":    {4, 0.2},
	}
	for name, mode := range modes {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("testdata", name+".rgb"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(data, DecodeOptions{})
		if err != nil {
			t.Errorf("%s (PIL mode %s): %v", name, mode, err)
			continue
		}
		if len(img.Pix) != len(want) {
			t.Errorf("%s: %dx%d", name, img.Width, img.Height)
			continue
		}
		var maxAbs, sum float64
		for i := range want {
			d := math.Abs(float64(img.Pix[i]) - float64(want[i]))
			sum += d
			maxAbs = math.Max(maxAbs, d)
		}
		mean := sum / float64(len(want))
		tol, isLossy := lossy[name]
		switch {
		case !isLossy && maxAbs != 0:
			t.Errorf("%s (PIL mode %s): differs from PIL's convert(\"RGB\"): max abs %v, mean abs %.3f", name, mode, maxAbs, mean)
		case isLossy && (maxAbs > tol.maxAbs || mean > tol.meanAbs):
			t.Errorf("%s (PIL mode %s): max abs %v mean abs %.3f, tolerance %v", name, mode, maxAbs, mean, tol)
		case isLossy:
			t.Logf("%s: max abs %v, mean abs %.3f against PIL", name, maxAbs, mean)
		}
	}
}

func encodePNG(t testing.TB, m image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBadInput(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "rgb.png"))
	if err != nil {
		t.Fatal(err)
	}
	jpg, _ := os.ReadFile(filepath.Join("testdata", "rgb.jpg"))
	wide := encodePNG(t, image.NewGray(image.Rect(0, 0, 100000, 10)))
	big := encodePNG(t, image.NewGray(image.Rect(0, 0, 3000, 3000)))
	p, err := New(DefaultConfig(), DecodeOptions{MaxPixels: 4_000_000})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"empty", "empty", nil},
		{"unknown format", "unknown image format", []byte("GIF89 is not what this is, just text that goes on")},
		{"truncated png", "truncated or corrupt", good[:len(good)/2]},
		{"truncated png header", "truncated or corrupt", good[:20]},
		{"truncated jpeg", "truncated or corrupt", jpg[:len(jpg)/2]},
		{"aspect ratio", "aspect ratio", wide},
		{"decompression bomb", "exceeds the 4000000-pixel limit", big},
		{"garbage after magic", "", append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0xff}, 64)...)},
	}
	for _, c := range cases {
		_, err := p.PreprocessBytes(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// A 1x1 image is upscaled to the minimum, as transformers does.
	one := encodePNG(t, image.NewRGBA(image.Rect(0, 0, 1, 1)))
	b, err := p.PreprocessBytes(one)
	if err != nil {
		t.Fatal(err)
	}
	if b.Grids[0] != [3]int{1, 4, 4} {
		t.Errorf("1x1 grid %v, want [1 4 4]", b.Grids[0])
	}
	// The bomb check happens before decoding: a header claiming a huge size is refused.
	hdr := encodePNG(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	copy(hdr[16:24], []byte{0, 1, 0, 0, 0, 1, 0, 0}) // 65536 x 65536 in IHDR (CRC now wrong)
	if _, err := Decode(hdr, DecodeOptions{}); err == nil {
		t.Error("forged IHDR accepted")
	}
}

func TestSmartResize(t *testing.T) {
	cases := []struct {
		h, w, min, max int
		wantH, wantW   int
		err            string
	}{
		{73, 100, 3136, 12845056, 84, 112, ""},
		{200, 20, 3136, 12845056, 196, 28, ""},
		{1, 1, 3136, 12845056, 56, 56, ""},
		{10, 2000, 3136, 12845056, 28, 812, ""}, // rounds to 0 rows, then scaled up to min_pixels
		{10, 2001, 3136, 12845056, 0, 0, "aspect ratio"},
		{3508, 2480, 25088, 401408, 728, 532, ""},
		{42, 42, 1, 1 << 30, 56, 56, ""},   // 1.5 rounds to even: 2
		{70, 70, 1, 1 << 30, 56, 56, ""},   // 2.5 rounds to even: 2
		{98, 98, 1, 1 << 30, 112, 112, ""}, // 3.5 rounds to even: 4
		{0, 5, 3136, 12845056, 0, 0, "empty"},
		{100000, 600, 3136, 784, 336, 28, ""}, // the width floors to 0 and is clamped to one factor
	}
	for _, c := range cases {
		h, w, err := SmartResize(c.h, c.w, 28, c.min, c.max)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%dx%d: error %v, want %q", c.w, c.h, err, c.err)
			}
			continue
		}
		if err != nil || h != c.wantH || w != c.wantW {
			t.Errorf("SmartResize(%d, %d) = %d, %d, %v; want %d, %d", c.h, c.w, h, w, err, c.wantH, c.wantW)
		}
	}
}

func TestConfig(t *testing.T) {
	if d := DefaultConfig(); d.PatchDim() != 1176 || d.Factor() != 28 || d.NumImageTokens([3]int{1, 6, 8}) != 12 {
		t.Errorf("Qwen2-VL defaults: patch dim %d, factor %d, tokens of (1,6,8) %d; want 1176, 28, 12", d.PatchDim(), d.Factor(), d.NumImageTokens([3]int{1, 6, 8}))
	}
	c, err := ParseConfig([]byte(`{"size": {"shortest_edge": 100, "longest_edge": 200000}, "patch_size": 14}`))
	if err != nil || c.MinPixels != 100 || c.MaxPixels != 200000 || c.MergeSize != 2 {
		t.Errorf("size form: %+v %v", c, err)
	}
	c, err = ParseConfig([]byte(`{"size": {"shortest_edge": 100, "longest_edge": 200000}, "min_pixels": 3136, "max_pixels": 401408}`))
	if err != nil || c.MinPixels != 3136 || c.MaxPixels != 401408 {
		t.Errorf("min_pixels should override size: %+v %v", c, err)
	}
	bad := map[string]string{
		`{"image_mean": [0.5, 0.5]}`:                               "image_mean has 2 values",
		`{"image_std": [0, 1, 1]}`:                                 "image_std[0]",
		`{"patch_size": 0}`:                                        "patch_size",
		`{"min_pixels": 5000, "max_pixels": 10}`:                   "below min_pixels",
		`{"min_pixels": 999999999999, "max_pixels": 999999999999}`: "the largest image this processor resizes to",
		`{"do_normalize": false}`:                                  "do_normalize=false",
		`{"rescale_factor": 1}`:                                    "rescale_factor",
		`not json`:                                                 "not valid JSON",
	}
	for in, want := range bad {
		if _, err := ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	if _, err := LoadModelConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no preprocessor_config.json") {
		t.Errorf("missing config: %v", err)
	}
}

// TestPatchOrder checks the patch layout on a synthetic image where each pixel
// encodes its own coordinates: row r, column col of pixel_values must hold the
// pixel transformers' reshape/transpose puts there.
func TestPatchOrder(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ImageMean = [3]float32{0, 0, 0}
	cfg.ImageStd = [3]float32{1, 1, 1}
	p, err := New(cfg, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 112 x 56: no resize, grid 1 x 4 x 8.
	const W, H = 112, 56
	img := NewRGB(W, H)
	for y := range H {
		for x := range W {
			img.Pix[(y*W+x)*3+0] = uint8(x)
			img.Pix[(y*W+x)*3+1] = uint8(y)
			img.Pix[(y*W+x)*3+2] = uint8(x ^ y)
		}
	}
	b, err := p.Preprocess(img, img)
	if err != nil {
		t.Fatal(err)
	}
	if b.Grids[0] != [3]int{1, 4, 8} || b.NumPatches() != 64 || b.PatchDim != 1176 {
		t.Fatalf("grids %v patches %d dim %d", b.Grids, b.NumPatches(), b.PatchDim)
	}
	if got := b.GridTHW(); len(got) != 6 || got[5] != 8 {
		t.Errorf("GridTHW %v", got)
	}
	if n := cfg.NumImageTokens(b.Grids[0]); n != 8 {
		t.Errorf("tokens %d, want 8", n)
	}
	gh, gw, M, P := 4, 8, 2, 14
	for r := range gh * gw {
		// row r -> (bh, bw, mh, mw)
		mw := r % M
		mh := (r / M) % M
		bw := (r / (M * M)) % (gw / M)
		bh := r / (M * M * (gw / M))
		for col := range 1176 {
			px := col % P
			py := (col / P) % P
			// t := (col / (P * P)) % 2 (both frames hold the same image)
			ch := col / (2 * P * P)
			y := (bh*M+mh)*P + py
			x := (bw*M+mw)*P + px
			want := float32(float64(img.Pix[(y*W+x)*3+ch]) / 255)
			for _, off := range []int{0, 32} { // second image follows the first
				got := b.PixelValues[(off+r)*1176+col]
				if math.Abs(float64(got-want)) > 1e-6 {
					t.Fatalf("row %d col %d: %v, want %v", off+r, col, got, want)
				}
			}
		}
	}
}

func TestToRGBAlphaAndPalette(t *testing.T) {
	// Alpha is dropped without compositing: a fully transparent red pixel stays red.
	m := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	m.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 0})
	m.SetNRGBA(1, 0, color.NRGBA{10, 20, 30, 128})
	img, err := Decode(encodePNG(t, m), DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Pix, []byte{255, 0, 0, 10, 20, 30}) {
		t.Errorf("RGBA -> RGB = %v", img.Pix)
	}
}

func BenchmarkPreprocessDocument(b *testing.B) {
	// A 1700x2200 document-like page: white with dark text-like strokes.
	const W, H = 1700, 2200
	img := NewRGB(W, H)
	for i := range img.Pix {
		img.Pix[i] = 250
	}
	for y := 100; y < H-100; y += 40 {
		for x := 100; x < W-100; x++ {
			if (x/9)%7 != 0 {
				for dy := range 12 {
					o := ((y+dy)*W + x) * 3
					v := uint8(20 + (x*y)%40)
					img.Pix[o], img.Pix[o+1], img.Pix[o+2] = v, v, v
				}
			}
		}
	}
	for _, bc := range []struct {
		name string
		max  int
	}{{"max_pixels=12845056", 12845056}, {"max_pixels=401408", 401408}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxPixels = bc.max
			p, err := New(cfg, DecodeOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Preprocess(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecode feeds mutated images of every format to Decode: it must return an
// image of the size its header claims or an error, never panic.
func FuzzDecode(f *testing.F) {
	entries, _ := os.ReadDir("testdata")
	for _, e := range entries {
		if n := e.Name(); !strings.HasSuffix(n, ".rgb") && !strings.HasSuffix(n, ".json") {
			if b, err := os.ReadFile(filepath.Join("testdata", n)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, DecodeOptions{MaxPixels: 1 << 20, ApplyEXIFOrientation: true})
		if err != nil {
			return
		}
		if img.Width <= 0 || img.Height <= 0 || len(img.Pix) != 3*img.Width*img.Height {
			t.Fatalf("bad image %dx%d with %d bytes", img.Width, img.Height, len(img.Pix))
		}
	})
}

// TestEXIFOrientation checks all eight orientations against PIL's
// ImageOps.exif_transpose (PNG eXIf chunks and a JPEG APP1 segment), and that
// orientation is ignored unless asked for, as Qwen2VLImageProcessor does.
func TestEXIFOrientation(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "exif.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sizes map[string][2]int
	if err := json.Unmarshal(b, &sizes); err != nil {
		t.Fatal(err)
	}
	for name, size := range sizes {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("testdata", name+".exif.rgb"))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Decode(data, DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if plain.Width != 32 || plain.Height != 24 {
			t.Errorf("%s: orientation applied by default (%dx%d)", name, plain.Width, plain.Height)
		}
		img, err := Decode(data, DecodeOptions{ApplyEXIFOrientation: true})
		if err != nil {
			t.Fatal(err)
		}
		if img.Width != size[0] || img.Height != size[1] {
			t.Errorf("%s: %dx%d, want %v", name, img.Width, img.Height, size)
			continue
		}
		maxAbs := 0
		for i := range want {
			maxAbs = max(maxAbs, int(math.Abs(float64(img.Pix[i])-float64(want[i]))))
		}
		limit := 0
		if strings.HasSuffix(name, ".jpg") {
			limit = 4 // Go's inverse DCT is not libjpeg-turbo's
		}
		if maxAbs > limit {
			t.Errorf("%s: differs from PIL's exif_transpose by up to %d levels", name, maxAbs)
		}
	}
}
