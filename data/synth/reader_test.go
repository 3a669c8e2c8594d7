package synth_test

import (
	"context"
	"testing"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/data/synth"
)

// TestProjectReaderReadsOutput reads a written dataset with the project's
// dataset reader (package data): every row must be good, and the pairs must
// be the generated ones.
func TestProjectReaderReadsOutput(t *testing.T) {
	dir := t.TempDir()
	opts := synth.Options{Seed: 5, Width: 320, Height: 240}
	if err := synth.WriteDataset(context.Background(), dir, 12, 4, 5, opts, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(context.Background(), dir, data.Options{FullDecode: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []struct {
		name string
		n    int
	}{{"train", 12}, {"test", 4}} {
		o := opts
		o.Split = split.name
		want, err := synth.Generate(o, split.n)
		if err != nil {
			t.Fatal(err)
		}
		var rep data.Report
		i := 0
		for row, err := range ds.Rows(context.Background(), split.name, &rep) {
			if err != nil {
				t.Fatalf("%s: %v", split.name, err)
			}
			d := want[i]
			if row.DocID != d.ID || row.Width != d.Width || row.Height != d.Height || row.Content != d.Content || len(row.QA) != len(d.QA) {
				t.Errorf("%s row %d: read %s %dx%d with %d pairs, want %s", split.name, i, row.DocID, row.Width, row.Height, len(row.QA), d.ID)
			} else {
				for j, p := range row.QA {
					if p.Question != d.QA[j].Question || p.Answer != d.QA[j].Answer {
						t.Errorf("%s row %d pair %d: %q / %q, want %q / %q", split.name, i, j, p.Question, p.Answer, d.QA[j].Question, d.QA[j].Answer)
					}
				}
			}
			i++
		}
		if rep.BadRows() != 0 || rep.DroppedPairs != 0 || i != split.n {
			t.Errorf("%s: %d good rows, report %s", split.name, i, rep.String())
		}
	}
}
