package synth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"

	"github.com/mmft-go/mmft/data/pylit"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// imageCell is the Hugging Face Image feature as stored in parquet.
type imageCell struct {
	Bytes []byte  `parquet:"bytes,optional"`
	Path  *string `parquet:"path,optional"`
}

// sujetRow is one row in the Sujet-Finance-QA-Vision-100k layout.
type sujetRow struct {
	DocID   *string    `parquet:"doc_id,optional"`
	Image   *imageCell `parquet:"image,optional"`
	Content *string    `parquet:"content,optional"`
	QAPairs *string    `parquet:"qa_pairs,optional"`
}

// hfFeatures is the "huggingface" key-value metadata that tells the datasets
// library the column types (image is an Image feature).
const hfFeatures = `{"info": {"features": {"doc_id": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"}, ` +
	`"content": {"dtype": "string", "_type": "Value"}, "qa_pairs": {"dtype": "string", "_type": "Value"}}}}`

// DefaultRowGroupSize is the number of rows per parquet row group.
const DefaultRowGroupSize = 64

// QAPairsLiteral writes the QA pairs as the Python literal the Sujet data
// set stores: [{'question': '...', 'answer': '...'}, ...], each string
// quoted as Python's repr would quote it.
func QAPairsLiteral(qa []QA) (string, error) {
	list := make([]any, len(qa))
	for i, q := range qa {
		list[i] = &pylit.Dict{Items: []pylit.Item{{Key: "question", Value: q.Question}, {Key: "answer", Value: q.Answer}}}
	}
	return pylit.Format(list)
}

// WriteParquet writes docs as one parquet file in the Sujet layout — doc_id,
// image {bytes (PNG), path}, content, qa_pairs (a Python literal) — with
// Snappy compression and rowGroupSize rows per row group (DefaultRowGroupSize
// when ≤ 0).
func WriteParquet(w io.Writer, docs []Doc, rowGroupSize int) error {
	return writeParquet(w, len(docs), func(i int) (Doc, error) { return docs[i], nil }, rowGroupSize)
}

// writeParquet writes the n documents get returns, one row group at a
// time, so that only one row group is held in memory.
func writeParquet(w io.Writer, n int, get func(i int) (Doc, error), rowGroupSize int) error {
	if rowGroupSize <= 0 {
		rowGroupSize = DefaultRowGroupSize
	}
	pw := parquet.NewGenericWriter[sujetRow](w,
		parquet.NewSchema("schema", parquet.SchemaOf(sujetRow{})), // pyarrow's root name
		parquet.Compression(&parquet.Snappy),
		parquet.KeyValueMetadata("huggingface", hfFeatures),
		parquet.CreatedBy("mmft data synth", "", ""),
	)
	rows := make([]sujetRow, 0, rowGroupSize)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		if _, err := pw.Write(rows); err != nil {
			return fmt.Errorf("synth: writing parquet rows: %w", err)
		}
		if err := pw.Flush(); err != nil {
			return fmt.Errorf("synth: ending a parquet row group: %w", err)
		}
		rows = rows[:0]
		return nil
	}
	for i := range n {
		d, err := get(i)
		if err != nil {
			return err
		}
		lit, err := QAPairsLiteral(d.QA)
		if err != nil {
			return fmt.Errorf("synth: QA pairs of %s: %w", d.ID, err)
		}
		path := d.ID + ".png"
		rows = append(rows, sujetRow{DocID: &d.ID, Image: &imageCell{Bytes: d.PNG, Path: &path}, Content: &d.Content, QAPairs: &lit})
		if len(rows) == rowGroupSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("synth: closing the parquet writer: %w", err)
	}
	return nil
}

// Files of a dataset written by WriteDataset, relative to its folder.
const (
	TrainFile = "data/train-00000-of-00001.parquet"
	TestFile  = "data/test-00000-of-00001.parquet"
)

// WriteDataset generates nTrain training and nTest test documents with opts
// (its Split is set to "train" and "test") and writes them under dir as
// TrainFile and TestFile (rowGroupSize rows per row group, DefaultRowGroupSize
// when ≤ 0), plus a README.md describing them. Each file is
// written to a temporary name and renamed into place when complete, so an
// interrupted run leaves no half-written parquet file. progress, when not
// nil, is called after each document. Cancelling ctx stops the work between
// documents, leaving the files of the splits already finished.
func WriteDataset(ctx context.Context, dir string, nTrain, nTest, rowGroupSize int, opts Options, progress func(split string, done, total int)) error {
	if nTrain < 0 || nTest < 0 {
		return fmt.Errorf("synth: negative document count (train %d, test %d)", nTrain, nTest)
	}
	if err := opts.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return fmt.Errorf("synth: making the output folder: %w", err)
	}
	for _, s := range []struct {
		split, file string
		n           int
	}{{"train", TrainFile, nTrain}, {"test", TestFile, nTest}} {
		o := opts
		o.Split = s.split
		g, err := NewGenerator(o)
		if err != nil {
			return err
		}
		get := func(i int) (Doc, error) {
			if err := ctx.Err(); err != nil {
				return Doc{}, fmt.Errorf("synth: stopped after %d of %d %s documents: %w", i, s.n, s.split, err)
			}
			d, err := g.Doc(i)
			if err == nil && progress != nil {
				progress(s.split, i+1, s.n)
			}
			return d, err
		}
		if err := writeFileAtomic(filepath.Join(dir, s.file), func(w io.Writer) error {
			return writeParquet(w, s.n, get, rowGroupSize)
		}); err != nil {
			return err
		}
	}
	meta, _ := json.MarshalIndent(map[string]any{"generator": "mmft data synth", "seed": opts.Seed, "level": opts.Level.String(),
		"train": nTrain, "test": nTest}, "", "  ")
	readme := fmt.Sprintf("# Synthetic financial documents\n\nWritten by `mmft data synth` in the layout of "+
		"Sujet-Finance-QA-Vision-100k (doc_id, image{bytes,path}, content, qa_pairs).\n\n```json\n%s\n```\n", meta)
	return writeFileAtomic(filepath.Join(dir, "README.md"), func(w io.Writer) error {
		_, err := io.WriteString(w, readme)
		return err
	})
}

// writeFileAtomic writes path through a temporary file in the same folder.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, write); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}
