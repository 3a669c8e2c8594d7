package qwen2vl

import (
	"strings"
	"testing"
)

// TestRopeIndexRefusesBadGrids checks that grids which cannot describe the
// image tokens of a row are refused with an error naming the problem, before
// any position is computed: a zero or negative size (once reported as "more
// images than image_grid_thw lists"), and a grid far larger than the row
// (once emitted position by position, running out of memory).
func TestRopeIndexRefusesBadGrids(t *testing.T) {
	cfg := mediumConfig(1, 1)
	img, vs, ve := int32(cfg.ImageTokenID), int32(cfg.VisionStartTokenID), int32(cfg.VisionEndTokenID)
	ids := [][]int32{{5, vs, img, ve, 6}}
	if _, _, err := RopeIndex(cfg, ids, nil, []Grid{{1, 2, 2}}); err != nil {
		t.Fatalf("a fitting grid: %v", err)
	}
	for _, c := range []struct {
		grid Grid
		want string
	}{
		{Grid{0, 2, 2}, "must be positive"},
		{Grid{1, -2, 2}, "must be positive"},
		{Grid{1, 2, 8}, "the row ends first"},
		{Grid{1, 1 << 21, 1 << 21}, "the row ends first"},
		{Grid{1 << 31, 1 << 31, 1 << 31}, "the row ends first"},
		{Grid{1, 3, 2}, "not a multiple of the merge size"},
	} {
		_, _, err := RopeIndex(cfg, ids, nil, []Grid{c.grid})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("grid %v: error %v, want one saying %q", c.grid, err, c.want)
		}
	}
}
