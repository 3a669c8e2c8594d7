package data

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

// TestImageTokensMatchProcessor checks the token count against the grids HF's
// Qwen2VLImageProcessor gave in fixtures/image: tokens = t·h·w / 4.
func TestImageTokensMatchProcessor(t *testing.T) {
	path := shared.Fixture(t, "image", "cases.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []struct {
			Width, Height int
			Min           int      `json:"min_pixels"`
			Max           int      `json:"max_pixels"`
			Grid          [][3]int `json:"image_grid_thw"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range f.Cases {
		g := c.Grid[0]
		want := g[0] * g[1] * g[2] / 4
		got, err := ImageTokens(c.Height, c.Width, c.Min, c.Max)
		if err != nil || got != want {
			t.Errorf("%dx%d [%d, %d]: %d tokens (%v), want %d", c.Width, c.Height, c.Min, c.Max, got, err, want)
		}
	}
	if _, err := ImageTokens(1, 300, 3136, 12845056); err == nil {
		t.Error("aspect ratio 300 accepted")
	}
}

func TestInspectFixture(t *testing.T) {
	dir, exp := loadExpected(t)
	ctx := context.Background()
	ds, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Inspect(ctx, ds, InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Splits) != 2 || sum.MinPixels != DefaultMinPixels || sum.MaxPixels != DefaultMaxPixels {
		t.Fatalf("summary %+v", sum)
	}
	for _, sp := range sum.Splits {
		e := exp[filepath.Base(sp.Files[0].Path)]
		if sp.Files[0].Rows != int64(e.Rows) || sp.Files[0].RowGroups != e.RowGroups || sp.Files[0].Bytes == 0 || sp.Report.Rows != int64(e.Rows) {
			t.Errorf("split %s: files %+v report %+v", sp.Name, sp.Files, sp.Report)
		}
		var imgs int64
		for _, n := range sp.Formats {
			imgs += n
		}
		if imgs != sp.Report.Good || sp.ImageTokens.Count != sp.Report.Good || sp.QuestionChars.Count != sp.Report.Pairs ||
			int64(sp.PairsPerImage.Sum) != sp.Report.Pairs || sp.ImageTokens.Min <= 0 || sp.Width.Min <= 0 {
			t.Errorf("split %s: inconsistent stats %+v", sp.Name, sp)
		}
		// Each image's tokens are those of its own size.
		for row, err := range ds.Rows(ctx, sp.Name, nil) {
			if err != nil {
				t.Fatal(err)
			}
			n, _ := ImageTokens(row.Height, row.Width, DefaultMinPixels, DefaultMaxPixels)
			if float64(n) < sp.ImageTokens.Min || float64(n) > sp.ImageTokens.Max {
				t.Errorf("%s: %d tokens outside [%v, %v]", row.DocID, n, sp.ImageTokens.Min, sp.ImageTokens.Max)
			}
		}
	}
	train := sum.Splits[1]
	if train.Name != "train" || train.Report.Good != 8 || train.Report.Pairs != 35 || train.Report.BadRows() != 4 {
		t.Errorf("train: %+v", train.Report)
	}
	// A tight max_pixels lowers the token counts.
	small, err := Inspect(ctx, ds, InspectOptions{Splits: []string{"train"}, MaxPixels: 28 * 28 * 10})
	if err != nil {
		t.Fatal(err)
	}
	if small.Splits[0].ImageTokens.Max > 10 || small.Splits[0].ImageTokens.Max >= train.ImageTokens.Max {
		t.Errorf("max_pixels 7840: tokens %+v vs %+v", small.Splits[0].ImageTokens, train.ImageTokens)
	}
	if _, err := Inspect(ctx, ds, InspectOptions{MinPixels: 5000, MaxPixels: 100}); err == nil {
		t.Error("min > max accepted")
	}
	if _, err := Inspect(ctx, ds, InspectOptions{Splits: []string{"dev"}}); err == nil {
		t.Error("unknown split accepted")
	}
}

func TestStats(t *testing.T) {
	s := statsOf([]float64{5, 1, 3, 2, 4})
	if s.Count != 5 || s.Min != 1 || s.Max != 5 || s.Mean != 3 || s.P50 != 3 || s.P90 != 5 || s.Sum != 15 {
		t.Errorf("%+v", s)
	}
	if (statsOf(nil) != Stats{}) {
		t.Error("empty stats")
	}
}

func TestInspectRefusesHugePixelBounds(t *testing.T) {
	ds, err := Open(context.Background(), shared.Fixture(t, "sujet-parquet"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Inspect(context.Background(), ds, InspectOptions{MinPixels: 1 << 50, MaxPixels: 1 << 50})
	if err == nil || !strings.Contains(err.Error(), "max_pixels") {
		t.Fatalf("huge pixel bounds: want a clear error, got %v", err)
	}
}
