package data_test

import (
	"context"
	"testing"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/data/synth"
)

// TestReadsSynthDataset checks that the reader takes data/synth's files (the
// same Sujet layout, written by parquet-go instead of pyarrow) without losing
// a row or a pair.
func TestReadsSynthDataset(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := synth.WriteDataset(ctx, dir, 24, 8, 5, synth.Options{Seed: 3}, nil); err != nil {
		t.Fatal(err)
	}
	train, err := synth.Generate(synth.Options{Seed: 3, Split: "train"}, 24)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(ctx, dir, data.Options{FullDecode: true})
	if err != nil {
		t.Fatal(err)
	}
	var rep data.Report
	i := 0
	for row, err := range ds.Rows(ctx, "train", &rep) {
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(train) {
			t.Fatalf("more rows than generated documents")
		}
		doc := train[i]
		if row.DocID != doc.ID || len(row.QA) != len(doc.QA) {
			t.Fatalf("row %d: %s with %d pairs, want %s with %d", i, row.DocID, len(row.QA), doc.ID, len(doc.QA))
		}
		for j, p := range row.QA {
			if p.Question != doc.QA[j].Question || p.Answer != doc.QA[j].Answer {
				t.Errorf("%s pair %d: %+v, want %+v", row.DocID, j, p, doc.QA[j])
			}
		}
		i++
	}
	if i != 24 || rep.BadRows() != 0 || rep.DroppedPairs != 0 {
		t.Errorf("read %d rows; report %s", i, rep.String())
	}
	s, err := data.NewSampler(ds, "test", data.SamplerOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Len(ctx); err != nil || n != 8 {
		t.Errorf("test split: %d samples, %v", n, err)
	}
}
