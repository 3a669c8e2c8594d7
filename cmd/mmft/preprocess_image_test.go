package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
	"github.com/mmft-go/mmft/safetensors"
)

func runPreprocessCLI(stdin []byte, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := (&cli{ctx: context.Background(), stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb}).main(args)
	return code, out.String(), errb.String()
}

// TestPreprocessImageCommand runs the command on two fixture images with the
// model's config and checks the printed grids and the written tensors.
func TestPreprocessImageCommand(t *testing.T) {
	cfgPath := shared.Asset(t, "preprocessor_config.json")
	img0 := shared.Fixture(t, "image", "public_0_100x73.png")
	img3 := shared.Fixture(t, "image", "public_3_20x200.png")
	out := filepath.Join(t.TempDir(), "pv.safetensors")
	stdinData, err := os.ReadFile(img3)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPreprocessCLI(stdinData, "preprocess-image", "--config", cfgPath, "--out", out, img0, "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout %q", stdout)
	}
	var l0, l1 preprocessImageLine
	if err := json.Unmarshal([]byte(lines[0]), &l0); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &l1); err != nil {
		t.Fatal(err)
	}
	if l0.GridTHW != [3]int{1, 6, 8} || l0.Width != 100 || l0.Height != 73 || l0.ImageTokens != 12 || l0.Patches != 48 {
		t.Errorf("first line %+v", l0)
	}
	if l1.GridTHW != [3]int{1, 14, 2} || l1.File != "-" || l1.ResizedWidth != 28 || l1.ResizedHeight != 196 {
		t.Errorf("second line %+v", l1)
	}
	f, err := safetensors.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pv, ok := f.Tensor("pixel_values")
	if !ok || pv.DType != safetensors.F32 || pv.Shape[0] != 48+28 || pv.Shape[1] != 1176 {
		t.Fatalf("pixel_values %v %v", pv.DType, pv.Shape)
	}
	g, _ := f.Tensor("image_grid_thw")
	grid, err := safetensors.ToInt64(g)
	if err != nil || len(grid) != 6 || grid[1] != 6 || grid[4] != 14 {
		t.Errorf("image_grid_thw %v %v", grid, err)
	}

	// --max-pixels overrides the config: the 300x90 fixture case uses 40000.
	code, stdout, stderr = runPreprocessCLI(nil, "preprocess-image", "--config", cfgPath, "--max-pixels", "40000", shared.Fixture(t, "image", "public_2_300x90.png"))
	if code != 0 || !strings.Contains(stdout, `"image_grid_thw":[1,6,22]`) {
		t.Errorf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

func TestPreprocessImageErrors(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.txt")
	os.WriteFile(notImage, []byte("just some text, not an image at all"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"preprocess-image"}, 2, "no image files"},
		{[]string{"preprocess-image", "--model", dir, "--config", "x.json", "a.png"}, 2, "not both"},
		{[]string{"preprocess-image", "--model", dir, notImage}, 1, "no preprocessor_config.json"},
		{[]string{"preprocess-image", notImage}, 1, "unknown image format"},
		{[]string{"preprocess-image", filepath.Join(dir, "absent.png")}, 1, "absent.png"},
		{[]string{"preprocess-image", "--max-pixels", "10", notImage}, 1, "below min_pixels 3136 (min_pixels/max_pixels as set by --min-pixels/--max-pixels)"},
		// A huge area is refused before anything is allocated.
		{[]string{"preprocess-image", "--min-pixels", "999999999999", "--max-pixels", "999999999999", notImage}, 1, "the largest image this processor resizes to"},
	}
	for _, c := range cases {
		code, _, stderr := runPreprocessCLI(nil, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	exif6, err := filepath.Abs(filepath.Join("..", "..", "imageproc", "testdata", "exif6.png"))
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPreprocessCLI(nil, "preprocess-image", "--exif-orientation", exif6)
	if code != 0 || !strings.Contains(stdout, `"width":24,"height":32`) {
		t.Errorf("--exif-orientation: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runPreprocessCLI(nil, "preprocess-image", "--help")
	if code != 0 || !strings.Contains(stdout, "--max-pixels") {
		t.Errorf("--help: exit %d %q", code, stdout)
	}
}
