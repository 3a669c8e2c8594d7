package imageproc

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

// readNPY reads a little-endian float32, C-order .npy file.
func readNPY(path string) ([]float32, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, nil, fmt.Errorf("%s: not a .npy file", path)
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, nil, fmt.Errorf("%s: unsupported .npy version %d", path, b[6])
	}
	header := string(b[off : off+hlen])
	if !strings.Contains(header, "'descr': '<f4'") || !strings.Contains(header, "'fortran_order': False") {
		return nil, nil, fmt.Errorf("%s: want little-endian float32 C-order, header %s", path, header)
	}
	m := regexp.MustCompile(`'shape': \(([0-9, ]*)\)`).FindStringSubmatch(header)
	if m == nil {
		return nil, nil, fmt.Errorf("%s: no shape in header %s", path, header)
	}
	var shape []int
	n := 1
	for _, s := range strings.Split(m[1], ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil {
			return nil, nil, err
		}
		shape = append(shape, d)
		n *= d
	}
	data := b[off+hlen:]
	if len(data) != 4*n {
		return nil, nil, fmt.Errorf("%s: %d data bytes for shape %v", path, len(data), shape)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out, shape, nil
}

type fixtureCase struct {
	Image        *string  `json:"image"`
	Width        int      `json:"width"`
	Height       int      `json:"height"`
	MinPixels    int      `json:"min_pixels"`
	MaxPixels    int      `json:"max_pixels"`
	Grid         [][3]int `json:"image_grid_thw"`
	Shape        [2]int   `json:"pixel_values_shape"`
	Mean         float64  `json:"pixel_values_mean"`
	Std          float64  `json:"pixel_values_std"`
	PixelValuesN *string  `json:"pixel_values_npy"`
}

func loadCases(t *testing.T) []fixtureCase {
	var f struct {
		Cases []fixtureCase `json:"cases"`
	}
	b, err := os.ReadFile(shared.Fixture(t, "image", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	return f.Cases
}

func modelConfig(t *testing.T) Config {
	c, err := LoadConfig(shared.Asset(t, "preprocessor_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFixtureGrids checks image_grid_thw for every fixture case, including the
// large ones given only by size.
func TestFixtureGrids(t *testing.T) {
	base := modelConfig(t)
	for _, c := range loadCases(t) {
		cfg := base
		cfg.MinPixels, cfg.MaxPixels = c.MinPixels, c.MaxPixels
		grid, err := cfg.Grid(c.Height, c.Width)
		if err != nil {
			t.Errorf("%dx%d: %v", c.Width, c.Height, err)
			continue
		}
		if len(c.Grid) != 1 || grid != c.Grid[0] {
			t.Errorf("%dx%d [%d,%d]: grid %v, want %v", c.Width, c.Height, c.MinPixels, c.MaxPixels, grid, c.Grid)
		}
		if n := grid[0] * grid[1] * grid[2]; n != c.Shape[0] || c.Shape[1] != 1176 {
			t.Errorf("%dx%d: %d patches, fixture shape %v", c.Width, c.Height, n, c.Shape)
		}
	}
}

// TestFixturePixelValues runs the whole pipeline on every fixture PNG and
// compares with transformers' pixel_values.
func TestFixturePixelValues(t *testing.T) {
	base := modelConfig(t)
	ran, skipped, want := 0, 0, 0
	for _, c := range loadCases(t) {
		if c.Image == nil {
			continue
		}
		if c.PixelValuesN != nil {
			want++
		}
		t.Run(*c.Image, func(t *testing.T) {
			defer func() {
				if t.Skipped() {
					skipped++
				}
			}()
			cfg := base
			cfg.MinPixels, cfg.MaxPixels = c.MinPixels, c.MaxPixels
			p, err := New(cfg, DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.PreprocessFiles(shared.Fixture(t, "image", *c.Image))
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Grids) != 1 || b.Grids[0] != c.Grid[0] {
				t.Fatalf("grid %v, want %v", b.Grids, c.Grid)
			}
			if b.NumPatches() != c.Shape[0] || b.PatchDim != c.Shape[1] {
				t.Fatalf("shape [%d %d], want %v", b.NumPatches(), b.PatchDim, c.Shape)
			}
			var sum, sq float64
			for _, v := range b.PixelValues {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			n := float64(len(b.PixelValues))
			mean := sum / n
			std := math.Sqrt(sq/n - mean*mean)
			if math.Abs(mean-c.Mean) > 0.004 || math.Abs(std-c.Std) > 0.004 {
				t.Errorf("mean %.6f std %.6f, want %.6f %.6f", mean, std, c.Mean, c.Std)
			}
			if c.PixelValuesN == nil {
				return
			}
			want, shape, err := readNPY(shared.Fixture(t, "image", *c.PixelValuesN))
			if err != nil {
				t.Fatal(err)
			}
			if len(shape) != 2 || shape[0] != c.Shape[0] || shape[1] != c.Shape[1] {
				t.Fatalf("npy shape %v", shape)
			}
			var maxAbs, sumAbs float64
			worst := 0
			for i, w := range want {
				d := math.Abs(float64(b.PixelValues[i] - w))
				sumAbs += d
				if d > maxAbs {
					maxAbs, worst = d, i
				}
			}
			meanAbs := sumAbs / float64(len(want))
			t.Logf("max abs %.3g (at row %d col %d), mean abs %.3g", maxAbs, worst/c.Shape[1], worst%c.Shape[1], meanAbs)
			if maxAbs > 0.031 || meanAbs > 0.004 {
				t.Errorf("pixel values differ from transformers: max abs %.4f (limit 0.031), mean abs %.5f (limit 0.004)", maxAbs, meanAbs)
			}
			ran++
		})
	}
	if want == 0 {
		t.Error("the image fixtures list no pixel_values file: nothing was compared with transformers")
	} else if ran+skipped != want && !t.Failed() {
		t.Errorf("%d of %d pixel-value fixtures compared", ran, want)
	}
}
