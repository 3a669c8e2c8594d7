package data

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/internal/shared"
)

type expectedFile struct {
	Rows      int      `json:"rows"`
	RowGroups int      `json:"row_groups"`
	DocIDs    []string `json:"doc_ids"`
	QACounts  []*int   `json:"qa_counts"`
}

func loadExpected(t *testing.T) (dir string, exp map[string]expectedFile) {
	t.Helper()
	dir = shared.Fixture(t, "sujet-parquet")
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return dir, exp
}

// badReasonOf names the reason the fixture's bad rows must be reported with:
// its README lists corrupt image bytes, a malformed literal, a null image and
// an empty list; expected.json marks the malformed literal with a null count
// and the empty list with 0.
func badReasonOf(docID string, qaCount *int) Reason {
	switch {
	case qaCount == nil:
		return BadQA
	case *qaCount == 0:
		return EmptyQA
	case docID == "bad_image":
		return BadImage
	case docID == "null_image":
		return NullImage
	}
	return ""
}

func TestFixtureRows(t *testing.T) {
	dir, exp := loadExpected(t)
	ctx := context.Background()
	for _, full := range []bool{false, true} {
		ds, err := Open(ctx, dir, Options{FullDecode: full})
		if err != nil {
			t.Fatal(err)
		}
		if got := ds.Splits(); !reflect.DeepEqual(got, []string{"test", "train"}) {
			t.Fatalf("splits = %v", got)
		}
		for _, split := range ds.Splits() {
			files := ds.Files(split)
			if len(files) != 1 {
				t.Fatalf("split %s: files %v", split, files)
			}
			e, ok := exp[filepath.Base(files[0])]
			if !ok {
				t.Fatalf("no expectation for %s", files[0])
			}
			var rep Report
			var gotIDs []string
			var gotCounts []int
			for row, err := range ds.Rows(ctx, split, &rep) {
				if err != nil {
					t.Fatal(err)
				}
				gotIDs = append(gotIDs, row.DocID)
				gotCounts = append(gotCounts, len(row.QA))
				if len(row.Image) == 0 || row.Width == 0 || row.Height == 0 || row.Format == "" {
					t.Errorf("%s: image not filled: %d bytes %dx%d %q", row.DocID, len(row.Image), row.Width, row.Height, row.Format)
				}
				for _, p := range row.QA {
					if strings.Contains(p.Question, "<image>") || p.Question != strings.TrimSpace(p.Question) || p.Question == "" || p.Answer == "" {
						t.Errorf("%s: pair not cleaned: %+v", row.DocID, p)
					}
				}
			}
			var wantIDs []string
			var wantCounts []int
			wantBad := map[Reason][]string{}
			var wantPairs int64
			for i, id := range e.DocIDs {
				if r := badReasonOf(id, e.QACounts[i]); r != "" {
					wantBad[r] = append(wantBad[r], id)
					continue
				}
				wantIDs = append(wantIDs, id)
				wantCounts = append(wantCounts, *e.QACounts[i])
				wantPairs += int64(*e.QACounts[i])
			}
			if !reflect.DeepEqual(gotIDs, wantIDs) || !reflect.DeepEqual(gotCounts, wantCounts) {
				t.Errorf("split %s: good rows %v %v, want %v %v", split, gotIDs, gotCounts, wantIDs, wantCounts)
			}
			if rep.Rows != int64(e.Rows) || rep.Good != int64(len(wantIDs)) || rep.Pairs != wantPairs || rep.DroppedPairs != 0 {
				t.Errorf("split %s: report rows %d good %d pairs %d dropped %d; want %d %d %d 0",
					split, rep.Rows, rep.Good, rep.Pairs, rep.DroppedPairs, e.Rows, len(wantIDs), wantPairs)
			}
			gotBad := map[Reason][]string{}
			for _, b := range rep.Bad {
				if int64(len(b.Examples)) != b.Count {
					t.Errorf("%s: %d examples for %d rows", b.Reason, len(b.Examples), b.Count)
				}
				for _, ex := range b.Examples {
					gotBad[b.Reason] = append(gotBad[b.Reason], ex.DocID)
					if ex.Detail == "" || ex.File != filepath.Base(files[0]) {
						t.Errorf("bad row %+v lacks detail or file", ex)
					}
				}
			}
			if !reflect.DeepEqual(gotBad, wantBad) {
				t.Errorf("split %s: bad rows %v, want %v\n%s", split, gotBad, wantBad, rep.String())
			}
			s, err := openShard(files[0])
			if err != nil {
				t.Fatal(err)
			}
			if n := len(s.pf.RowGroups()); n != e.RowGroups {
				t.Errorf("%s: %d row groups, want %d", files[0], n, e.RowGroups)
			}
			s.Close()
		}
	}
}

func TestFixtureFirstRow(t *testing.T) {
	dir, _ := loadExpected(t)
	ds, err := Open(context.Background(), filepath.Join(dir, "data", "train-00000-of-00001.parquet"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for row, err := range ds.Rows(context.Background(), "train", nil) {
		if err != nil {
			t.Fatal(err)
		}
		want := []QAPair{
			{"What was the revenue in Q1?", "$23M"},
			{"What was the revenue in Q2?", "$63M"},
			{"What's the company's highest quarterly revenue?", "63 million dollars"},
			{`Which quarter is labelled "Q3"?`, "The third quarter"},
		}
		if row.DocID != "doc_00100" || row.ImagePath != "doc_00100.png" || row.Format != "png" ||
			!strings.HasPrefix(row.Content, "A bar chart of quarterly revenue.") || !reflect.DeepEqual(row.QA[:4], want) {
			t.Errorf("first row: %+v", row)
		}
		break
	}
}
