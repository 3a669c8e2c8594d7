package synth

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/mmft-go/mmft/data/pylit"
	"github.com/mmft-go/mmft/internal/shared"
)

func openParquet(t *testing.T, path string) *parquet.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("%s does not open as parquet: %v", path, err)
	}
	return pf
}

func TestWriteDataset(t *testing.T) {
	dir := t.TempDir()
	var calls int
	if err := WriteDataset(context.Background(), dir, 10, 5, 4, Options{Seed: 11, Width: 320, Height: 240}, func(string, int, int) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 15 {
		t.Errorf("progress called %d times, want 15", calls)
	}
	want, err := Generate(Options{Seed: 11, Width: 320, Height: 240, Split: "train"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file       string
		rows, rgs  int
		compareTo  []Doc
		hasRowsTag bool
	}{{TrainFile, 10, 3, want, true}, {TestFile, 5, 2, nil, true}} {
		pf := openParquet(t, filepath.Join(dir, c.file))
		if pf.NumRows() != int64(c.rows) || len(pf.RowGroups()) != c.rgs {
			t.Errorf("%s: %d rows in %d row groups, want %d in %d", c.file, pf.NumRows(), len(pf.RowGroups()), c.rows, c.rgs)
		}
		if kv, ok := pf.Lookup("huggingface"); !ok || kv != hfFeatures {
			t.Errorf("%s: huggingface metadata %q", c.file, kv)
		}
		rows := make([]sujetRow, c.rows)
		r := parquet.NewGenericReader[sujetRow](pf)
		n, err := r.Read(rows)
		if n != c.rows {
			t.Fatalf("%s: read %d rows: %v", c.file, n, err)
		}
		for i, row := range rows {
			if row.DocID == nil || row.Image == nil || row.Image.Path == nil || row.Content == nil || row.QAPairs == nil {
				t.Fatalf("%s row %d: a null field: %+v", c.file, i, row)
			}
			if _, err := png.Decode(bytes.NewReader(row.Image.Bytes)); err != nil {
				t.Errorf("%s row %d: image: %v", c.file, i, err)
			}
			v, err := pylit.Parse(*row.QAPairs)
			if err != nil {
				t.Fatalf("%s row %d: qa_pairs %q: %v", c.file, i, *row.QAPairs, err)
			}
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				t.Fatalf("%s row %d: qa_pairs is %T", c.file, i, v)
			}
			if c.compareTo == nil {
				continue
			}
			d := c.compareTo[i]
			if *row.DocID != d.ID || *row.Content != d.Content || !bytes.Equal(row.Image.Bytes, d.PNG) || len(list) != len(d.QA) {
				t.Errorf("%s row %d differs from the generated document %s", c.file, i, d.ID)
				continue
			}
			for j, item := range list {
				dict, ok := item.(pylit.Dict)
				if !ok {
					if p, ok2 := item.(*pylit.Dict); ok2 {
						dict, ok = *p, true
					}
				}
				q, _ := dict.Get("question")
				a, _ := dict.Get("answer")
				if !ok || q != d.QA[j].Question || a != d.QA[j].Answer {
					t.Errorf("%s row %d pair %d: got %v / %v, want %q / %q", c.file, i, j, q, a, d.QA[j].Question, d.QA[j].Answer)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Error(err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "data", ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestSchemaMatchesSujet compares the written schema with the one pyarrow
// wrote for the Sujet fixture.
func TestSchemaMatchesSujet(t *testing.T) {
	ref := openParquet(t, shared.Fixture(t, "sujet-parquet", "data", "test-00000-of-00001.parquet"))
	var buf bytes.Buffer
	docs := genDocs(t, Options{Level: Easy}, 2)
	if err := WriteParquet(&buf, docs, 0); err != nil {
		t.Fatal(err)
	}
	ours, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ours.Schema().String(), ref.Schema().String(); got != want {
		t.Errorf("schema:\n%s\nwant (Sujet fixture):\n%s", got, want)
	}
}

func TestQAPairsLiteralQuotes(t *testing.T) {
	qa := []QA{{Question: `What's the "Laptop" price?`, Answer: `$1,200`}, {Question: "Back\\slash\nnew line", Answer: "it's"}}
	lit, err := QAPairsLiteral(qa)
	if err != nil {
		t.Fatal(err)
	}
	// As Python's repr writes it.
	want := `[{'question': 'What\'s the "Laptop" price?', 'answer': '$1,200'}, {'question': 'Back\\slash\nnew line', 'answer': "it's"}]`
	if lit != want {
		t.Errorf("literal\n%s\nwant\n%s", lit, want)
	}
}
