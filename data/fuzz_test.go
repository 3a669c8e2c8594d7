package data_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/internal/shared"
)

// FuzzParquet feeds mutated parquet files to the dataset reader: opening and
// reading every row must end in rows that keep the reader's promises (an
// image with a size, at least one QA pair) or in an error, never a panic.
// Seeds: a small synthetic dataset, and the Sujet fixture's test split where
// the shared folder is present.
func FuzzParquet(f *testing.F) {
	dir := f.TempDir()
	opts := synth.Options{Seed: 1, Level: synth.Easy, Width: 112, Height: 112}
	if err := synth.WriteDataset(context.Background(), dir, 3, 1, 2, opts, nil); err != nil {
		f.Fatal(err)
	}
	for _, file := range []string{synth.TrainFile, synth.TestFile} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err == nil {
			f.Add(b)
		}
	}
	if root, err := shared.Find(); err == nil {
		if b, err := os.ReadFile(filepath.Join(root, "fixtures", "sujet-parquet", "data", "test-00000-of-00001.parquet")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			readAll(t, content)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("reading a %d-byte parquet file took over 10 s", len(content))
		}
	})
}

// readAll opens content as a parquet file and reads every row of it.
func readAll(t *testing.T, content []byte) {
	{
		p := filepath.Join(t.TempDir(), "train.parquet")
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		ds, err := data.Open(ctx, p, data.Options{FullDecode: true, PixelLimit: 1 << 20})
		if err != nil {
			return
		}
		for _, split := range ds.Splits() {
			var rep data.Report
			for row, err := range ds.Rows(ctx, split, &rep) {
				if err != nil {
					break
				}
				if len(row.Image) == 0 || row.Width <= 0 || row.Height <= 0 || len(row.QA) == 0 {
					t.Errorf("row %s: %d image bytes, %dx%d, %d QA pairs", row.DocID, len(row.Image), row.Width, row.Height, len(row.QA))
				}
			}
		}
	}
}
