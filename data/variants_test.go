package data

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func pngBytes(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeParquet[T any](t testing.TB, path string, rows []T, rowsPerGroup int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Image bytes as footer min/max bounds would only bloat the footer (pyarrow
	// drops statistics over 4 KiB), so skip them as a real writer should.
	w := parquet.NewGenericWriter[T](f, parquet.MaxRowsPerRowGroup(rowsPerGroup),
		parquet.SkipPageBounds("image", "bytes"), parquet.SkipPageBounds("image"))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every good row of split, failing the test on a stopping error.
func readAll(t *testing.T, ds *Dataset, split string) ([]Row, *Report) {
	t.Helper()
	var rep Report
	var rows []Row
	for r, err := range ds.Rows(context.Background(), split, &rep) {
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows, &rep
}

type hfImage struct {
	Bytes []byte `parquet:"bytes,optional"`
	Path  string `parquet:"path,optional"`
}

// sujetRow is the canonical layout, as data/synth and the Hub files have it.
type sujetRow struct {
	DocID   string   `parquet:"doc_id"`
	Image   *hfImage `parquet:"image,optional"`
	Content string   `parquet:"content"`
	QAPairs string   `parquet:"qa_pairs"`
}

type qaStruct struct {
	Question string `parquet:"question"`
	Answer   string `parquet:"answer"`
}

// listVariant stores the image as plain binary and the pairs as list<struct>.
type listVariant struct {
	DocID   string     `parquet:"doc_id"`
	Image   []byte     `parquet:"image"`
	QAPairs []qaStruct `parquet:"qa_pairs,list"`
}

// columnsVariant has one pair per row in question/answer columns and no doc_id.
type columnsVariant struct {
	Image    []byte  `parquet:"image"`
	Question string  `parquet:"question"`
	Answer   *string `parquet:"answer,optional"`
}

// repeatedVariant has repeated question/answer columns (lists of strings).
type repeatedVariant struct {
	DocID    string   `parquet:"doc_id"`
	Image    hfImage  `parquet:"image"`
	Question []string `parquet:"question,list"`
	Answer   []string `parquet:"answer,list"`
}

func TestVariantListOfStructs(t *testing.T) {
	dir := t.TempDir()
	img := pngBytes(t, 40, 30)
	writeParquet(t, filepath.Join(dir, "train-00000-of-00001.parquet"), []listVariant{
		{DocID: "a", Image: img, QAPairs: []qaStruct{{"<image> Q1?", "A1"}, {"Q2?", " A2 "}}},
		{DocID: "empty", Image: img, QAPairs: nil},
		{DocID: "blank", Image: img, QAPairs: []qaStruct{{"<image>", "x"}}},
		{DocID: "b", Image: img, QAPairs: []qaStruct{{"Q3?", "A3"}, {"", "lost"}}},
	}, 2)
	ds, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, rep := readAll(t, ds, "train")
	if len(rows) != 2 || rows[0].DocID != "a" || rows[1].DocID != "b" {
		t.Fatalf("rows %+v", rows)
	}
	if want := []QAPair{{"Q1?", "A1"}, {"Q2?", "A2"}}; !reflect.DeepEqual(rows[0].QA, want) {
		t.Errorf("pairs %+v, want %+v", rows[0].QA, want)
	}
	if rep.Count(EmptyQA) != 2 || rep.Pairs != 3 || rep.DroppedPairs != 1 || rows[0].Width != 40 || rows[0].Height != 30 {
		t.Errorf("report %+v, row %+v", rep, rows[0])
	}
}

func TestVariantQuestionAnswerColumns(t *testing.T) {
	dir := t.TempDir()
	img := pngBytes(t, 28, 28)
	ans := "42"
	writeParquet(t, filepath.Join(dir, "data", "test-00000-of-00001.parquet"), []columnsVariant{
		{Image: img, Question: "<image>What?", Answer: &ans},
		{Image: img, Question: "No answer?", Answer: nil},
	}, 10)
	ds, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, rep := readAll(t, ds, "test")
	if len(rows) != 1 || rows[0].DocID != "test-00000-of-00001.parquet#0" || !reflect.DeepEqual(rows[0].QA, []QAPair{{"What?", "42"}}) {
		t.Fatalf("rows %+v", rows)
	}
	if rep.Count(EmptyQA) != 1 {
		t.Errorf("report %s", rep)
	}
}

func TestVariantRepeatedColumns(t *testing.T) {
	dir := t.TempDir()
	img := pngBytes(t, 30, 30)
	writeParquet(t, filepath.Join(dir, "validation.parquet"), []repeatedVariant{
		{DocID: "r", Image: hfImage{Bytes: img, Path: "r.png"}, Question: []string{"q1", "q2"}, Answer: []string{"a1", "a2"}},
		{DocID: "mismatch", Image: hfImage{Bytes: img}, Question: []string{"q1", "q2"}, Answer: []string{"a1"}},
	}, 10)
	ds, err := Open(context.Background(), filepath.Join(dir, "validation.parquet"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, rep := readAll(t, ds, "validation")
	if len(rows) != 1 || !reflect.DeepEqual(rows[0].QA, []QAPair{{"q1", "a1"}, {"q2", "a2"}}) || rows[0].ImagePath != "r.png" {
		t.Fatalf("rows %+v", rows)
	}
	if rep.Count(BadQA) != 1 || !strings.Contains(rep.Bad[0].Examples[0].Detail, "2 questions but 1 answers") {
		t.Errorf("report %s", rep)
	}
}

func TestImageChecks(t *testing.T) {
	dir := t.TempDir()
	good := pngBytes(t, 56, 56)
	truncated := good[:len(good)-30] // header intact, data cut short
	qa := `[{'question': 'Q?', 'answer': 'A'}]`
	if err := os.WriteFile(filepath.Join(dir, "side.png"), pngBytes(t, 30, 20), 0o644); err != nil {
		t.Fatal(err)
	}
	writeParquet(t, filepath.Join(dir, "train-00000-of-00001.parquet"), []sujetRow{
		{DocID: "ok", Image: &hfImage{Bytes: good}, QAPairs: qa},
		{DocID: "truncated", Image: &hfImage{Bytes: truncated}, QAPairs: qa},
		{DocID: "wide", Image: &hfImage{Bytes: pngBytes(t, 402, 2)}, QAPairs: qa},
		{DocID: "big", Image: &hfImage{Bytes: pngBytes(t, 100, 100)}, QAPairs: qa},
		{DocID: "path_only", Image: &hfImage{Path: "side.png"}, QAPairs: qa},
		{DocID: "escape", Image: &hfImage{Path: "../outside.png"}, QAPairs: qa},
		{DocID: "text", Image: &hfImage{Bytes: []byte("not an image at all")}, QAPairs: qa},
		{DocID: "not_list", Image: &hfImage{Bytes: good}, QAPairs: `'just a string'`},
		{DocID: "json", Image: &hfImage{Bytes: good}, QAPairs: `[{"question": "J\/Q?", "answer": null}, {"question": "J?", "answer": 1.5}]`},
	}, 3)
	ds, err := Open(context.Background(), dir, Options{PixelLimit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	rows, rep := readAll(t, ds, "train")
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.DocID)
	}
	if want := []string{"ok", "truncated", "path_only", "json"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("header-only check: good rows %v, want %v\n%s", ids, want, rep)
	}
	if rows[2].Width != 30 || rows[2].Height != 20 || !reflect.DeepEqual(rows[3].QA, []QAPair{{"J?", "1.5"}}) {
		t.Errorf("rows %+v %+v", rows[2], rows[3].QA)
	}
	for r, n := range map[Reason]int64{BadAspectRatio: 1, ImageTooLarge: 1, NullImage: 1, BadImage: 1, BadQA: 1} {
		if rep.Count(r) != n {
			t.Errorf("%s: %d rows, want %d\n%s", r, rep.Count(r), n, rep)
		}
	}
	if rep.DroppedPairs != 1 {
		t.Errorf("dropped pairs %d, want 1", rep.DroppedPairs)
	}

	ds, err = Open(context.Background(), dir, Options{PixelLimit: 5000, FullDecode: true})
	if err != nil {
		t.Fatal(err)
	}
	rows, rep = readAll(t, ds, "train")
	if len(rows) != 3 || rep.Count(BadImage) != 2 {
		t.Errorf("full decode: %d good rows, report\n%s", len(rows), rep)
	}
}

func TestOpenSources(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := pngBytes(t, 28, 28)
	row := []sujetRow{{DocID: "x", Image: &hfImage{Bytes: img}, QAPairs: `[{'question': 'q', 'answer': 'a'}]`}}
	// A huggingface_hub cache folder.
	cache := filepath.Join(dir, "datasets--org--name")
	snap := filepath.Join(cache, "snapshots", "abc123")
	writeParquet(t, filepath.Join(snap, "data", "train-00000-of-00002.parquet"), row, 1)
	writeParquet(t, filepath.Join(snap, "data", "train-00001-of-00002.parquet"), row, 1)
	writeParquet(t, filepath.Join(snap, "default", "test", "0000.parquet"), row, 1)
	os.MkdirAll(filepath.Join(cache, "refs"), 0o755)
	os.WriteFile(filepath.Join(cache, "refs", "main"), []byte("abc123\n"), 0o644)

	ds, err := Open(ctx, cache, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Root != snap || !reflect.DeepEqual(ds.Splits(), []string{"train"}) || len(ds.Files("train")) != 2 {
		t.Errorf("cache folder: root %s splits %v files %v", ds.Root, ds.Splits(), ds.Files("train"))
	}
	// Parquet-conversion layout: no data/ folder, split from the folder name.
	os.RemoveAll(filepath.Join(snap, "data"))
	ds, err = Open(ctx, snap, Options{})
	if err != nil || !reflect.DeepEqual(ds.Splits(), []string{"test"}) {
		t.Errorf("converted layout: %v %v", ds, err)
	}

	// A Hub id goes to the resolver.
	called := ""
	ds, err = Open(ctx, "org/name", Options{Resolve: func(ctx context.Context, id string) (string, error) {
		called = id
		return snap, nil
	}})
	if err != nil || called != "org/name" || ds.Root != snap {
		t.Errorf("resolver: called %q, %v", called, err)
	}
	_, err = Open(ctx, "org/name", Options{Resolve: func(context.Context, string) (string, error) {
		return "", errors.New("offline")
	}})
	if err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("resolver failure: %v", err)
	}

	for src, msg := range map[string]string{
		"org/name":                         "no downloader is configured",
		filepath.Join(dir, "missing"):      "does not exist",
		t.TempDir():                        "no .parquet files",
		filepath.Join(dir, "nope.parquet"): "does not exist",
		"":                                 "no dataset given",
	} {
		if _, err := Open(ctx, src, Options{}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Open(%q): %v, want %q", src, err, msg)
		}
	}
	ds, _ = Open(ctx, snap, Options{})
	for _, err := range ds.Rows(ctx, "train", nil) {
		if err == nil || !strings.Contains(err.Error(), `no split "train"`) || !strings.Contains(err.Error(), "test") {
			t.Errorf("unknown split: %v", err)
		}
	}
}

func TestNotParquetAndMissingColumns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "train-00000-of-00001.parquet"), []byte("garbage"), 0o644)
	ds, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range ds.Rows(ctx, "train", nil) {
		if err == nil || !strings.Contains(err.Error(), "not a readable parquet file") {
			t.Errorf("garbage file: %v", err)
		}
	}
	type noImage struct {
		DocID   string `parquet:"doc_id"`
		QAPairs string `parquet:"qa_pairs"`
	}
	writeParquet(t, filepath.Join(dir, "train-00000-of-00001.parquet"), []noImage{{"a", "[]"}}, 1)
	for _, err := range ds.Rows(ctx, "train", nil) {
		if err == nil || !strings.Contains(err.Error(), "no image column") || !strings.Contains(err.Error(), "doc_id, qa_pairs") {
			t.Errorf("missing image column: %v", err)
		}
	}
}

func TestRowsCancel(t *testing.T) {
	dir, _ := loadExpected(t)
	ds, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	var last error
	for _, err := range ds.Rows(ctx, "train", nil) {
		if err != nil {
			last = err
			break
		}
		n++
		cancel()
	}
	if !errors.Is(last, context.Canceled) || n == 0 || n > 3 {
		t.Errorf("after cancel: %d rows, err %v", n, last)
	}
}

// TestCorruptFileNeverPanics damages the fixture one byte at a time and reads
// it: every outcome must be rows and/or an error, never a panic.
func TestCorruptFileNeverPanics(t *testing.T) {
	dir, _ := loadExpected(t)
	orig, err := os.ReadFile(filepath.Join(dir, "data", "train-00000-of-00001.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	path := filepath.Join(tmp, "train-00000-of-00001.parquet")
	errs, panics := 0, 0
	for off := 3; off < len(orig); off += 307 {
		b := append([]byte(nil), orig...)
		b[off] ^= 0x5a
		b[len(b)-1-off%4000] ^= 0xa5 // the footer too
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := Open(context.Background(), tmp, Options{FullDecode: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range ds.Rows(context.Background(), "train", nil) {
			if err != nil {
				errs++
				if strings.Contains(err.Error(), "panicked") {
					panics++
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error does not name the file: %v", err)
				}
			}
		}
	}
	if errs == 0 {
		t.Error("no damaged file gave an error")
	}
	t.Logf("%d damaged files gave an error, %d of them a recovered panic", errs, panics)
}
