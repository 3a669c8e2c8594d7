package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// QAPair is one question about a document image and its reference answer.
type QAPair struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
}

// Row is one good document of the dataset: an image and its QA pairs, read
// from one parquet row and checked.
type Row struct {
	// DocID names the document (the doc_id column; "FILE#ROW" where absent).
	DocID string
	// Image holds the encoded image file (PNG, JPEG, ...), as stored.
	Image []byte
	// ImagePath is the image's original file name, when the dataset has one.
	ImagePath string
	// Content is the document's text transcription, when the dataset has one.
	Content string
	// QA holds the usable pairs, at least one, "<image>" stripped and trimmed.
	QA []QAPair
	// Width, Height and Format describe the image (from its header).
	Width, Height int
	Format        string
	// File and Index locate the row: its shard and its index in that shard.
	File  string
	Index int64
}

// columns maps the dataset's fields onto the leaf columns of one file's schema.
// An index of -1 means the file lacks that column.
type columns struct {
	docID, imageBytes, imagePath, content, qaText int
	// question/answer leaves: inside a list<struct{question, answer}>
	// qa_pairs column, or separate question/answer columns (each a string or a
	// list of strings).
	question, answer leaf
}

// leaf describes a (possibly repeated) leaf column.
type leaf struct {
	index    int
	repeated bool
	maxDef   int // definition level of a present value
	elemDef  int // definition level at which the first repeated ancestor has an element
}

func describeColumns(s *parquet.Schema) string {
	var names []string
	for _, p := range s.Columns() {
		names = append(names, strings.Join(p, "."))
	}
	return strings.Join(names, ", ")
}

// mapColumns finds the dataset's fields in a file's schema.
func mapColumns(s *parquet.Schema, file string) (columns, error) {
	c := columns{docID: -1, imageBytes: -1, imagePath: -1, content: -1, qaText: -1,
		question: leaf{index: -1}, answer: leaf{index: -1}}
	idCol := -1
	for i, path := range s.Columns() {
		top := path[0]
		last := path[len(path)-1]
		lc, _ := s.Lookup(path...)
		switch {
		case len(path) == 1 && top == "doc_id":
			c.docID = i
		case len(path) == 1 && top == "id":
			idCol = i
		case top == "image" && len(path) == 1, top == "image" && len(path) == 2 && last == "bytes":
			c.imageBytes = i
		case top == "image" && len(path) == 2 && last == "path":
			c.imagePath = i
		case len(path) == 1 && top == "content":
			c.content = i
		case len(path) == 1 && top == "qa_pairs":
			c.qaText = i
		case top == "qa_pairs" && last == "question", len(path) >= 1 && top == "question":
			c.question = leafOf(s, path, lc)
		case top == "qa_pairs" && last == "answer", len(path) >= 1 && top == "answer":
			c.answer = leafOf(s, path, lc)
		}
	}
	if c.docID < 0 {
		c.docID = idCol
	}
	if c.imageBytes < 0 {
		return c, fmt.Errorf("data: %s has no image column (its columns: %s); expected image.bytes (the Hugging Face Image feature) or a binary image column",
			file, describeColumns(s))
	}
	if c.qaText < 0 && (c.question.index < 0 || c.answer.index < 0) {
		return c, fmt.Errorf("data: %s has no QA column (its columns: %s); expected qa_pairs (a Python-literal list or a list of {question, answer}) or question and answer columns",
			file, describeColumns(s))
	}
	if c.qaText >= 0 {
		c.question, c.answer = leaf{index: -1}, leaf{index: -1}
	}
	return c, nil
}

func leafOf(s *parquet.Schema, path []string, lc parquet.LeafColumn) leaf {
	l := leaf{index: lc.ColumnIndex, repeated: lc.MaxRepetitionLevel > 0, maxDef: lc.MaxDefinitionLevel}
	var node parquet.Node = s
	level := 0
	for _, name := range path {
		var next parquet.Node
		for _, f := range node.Fields() {
			if f.Name() == name {
				next = f
				break
			}
		}
		if next == nil {
			break
		}
		node = next
		if node.Optional() || node.Repeated() {
			level++
		}
		if node.Repeated() && l.elemDef == 0 {
			l.elemDef = level
		}
	}
	return l
}

// shard is one open parquet file.
type shard struct {
	path string
	f    *os.File
	pf   *parquet.File
	cols columns
}

func openShard(path string) (*shard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %w", err)
	}
	var pf *parquet.File
	err = guard(func() (err error) {
		pf, err = parquet.OpenFile(f, st.Size(), parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true), parquet.ReadBufferSize(256<<10))
		return err
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data: %s is not a readable parquet file: %w", path, err)
	}
	cols, err := mapColumns(pf.Schema(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &shard{path: path, f: f, pf: pf, cols: cols}, nil
}

// Close closes the shard's file.
func (s *shard) Close() error { return s.f.Close() }

// firstRow returns the index in the file of row group g's first row.
func (s *shard) firstRow(g int) int64 {
	var n int64
	for _, rg := range s.pf.RowGroups()[:g] {
		n += rg.NumRows()
	}
	return n
}

// readGroup reads row group g, checks each row and calls good for the good
// ones (recording the bad ones in rep). It stops early, returning nil, when
// good returns false.
func (s *shard) readGroup(ctx context.Context, g int, opts Options, rep *Report, good func(Row) bool) error {
	var rows parquet.Rows
	if err := guard(func() error { rows = s.pf.RowGroups()[g].Rows(); return nil }); err != nil {
		return fmt.Errorf("data: reading %s row group %d: %w", s.path, g, err)
	}
	defer guard(rows.Close)
	buf := make([]parquet.Row, 8)
	index := s.firstRow(g)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int
		err := guard(func() (err error) { n, err = rows.ReadRows(buf); return err })
		for _, r := range buf[:n] {
			var row Row
			var dropped int
			var reason Reason
			var detail string
			if perr := guard(func() error { row, dropped, reason, detail = s.decode(r, index, opts); return nil }); perr != nil {
				return fmt.Errorf("data: decoding row %d of %s: %w", index, s.path, perr)
			}
			rep.Rows++
			if reason != "" {
				rep.addBad(BadRow{DocID: row.DocID, File: filepath.Base(s.path), Row: index, Reason: reason, Detail: detail})
			} else {
				rep.Good++
				rep.Pairs += int64(len(row.QA))
				rep.DroppedPairs += int64(dropped)
				if !good(row) {
					return nil
				}
			}
			index++
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("data: reading %s row group %d: %w", s.path, g, err)
		}
		if n == 0 {
			return nil
		}
	}
}

// guard runs f, turning a panic inside the parquet library (possible on
// corrupt files) into an error, so that none reaches the caller.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("corrupt parquet data (the parquet reader panicked: %v)", r)
		}
	}()
	return f()
}

// decode turns one parquet row into a Row, or says why it is bad. The values
// are copied: parquet-go reuses its buffers.
func (s *shard) decode(r parquet.Row, index int64, opts Options) (row Row, dropped int, reason Reason, detail string) {
	c := s.cols
	row.File, row.Index = s.path, index
	var questions, answers []parquet.Value
	imageNull := true
	var qaText *string
	for _, v := range r {
		col := v.Column()
		switch {
		case col == c.docID && !v.IsNull():
			row.DocID = string(v.ByteArray())
		case col == c.imageBytes && !v.IsNull():
			row.Image = append([]byte(nil), v.ByteArray()...)
			imageNull = false
		case col == c.imagePath && !v.IsNull():
			row.ImagePath = string(v.ByteArray())
		case col == c.content && !v.IsNull():
			row.Content = string(v.ByteArray())
		case col == c.qaText && !v.IsNull():
			t := string(v.ByteArray())
			qaText = &t
		case col == c.question.index:
			questions = append(questions, v)
		case col == c.answer.index:
			answers = append(answers, v)
		}
	}
	if row.DocID == "" {
		row.DocID = fmt.Sprintf("%s#%d", filepath.Base(s.path), index)
	}
	if imageNull && row.ImagePath != "" {
		// The Hugging Face Image feature may store only a path, relative to the dataset.
		if b, err := readLocalImage(filepath.Dir(s.path), row.ImagePath); err == nil {
			row.Image, imageNull = b, false
		}
	}
	if imageNull {
		return row, 0, NullImage, "image is null"
	}
	// QA pairs.
	var pairs []QAPair
	switch {
	case c.qaText >= 0:
		if qaText == nil {
			return row, 0, BadQA, "qa_pairs is null"
		}
		var err error
		pairs, dropped, err = parseQALiteral(*qaText)
		if err != nil {
			return row, 0, BadQA, fmt.Sprintf("qa_pairs is not a valid Python literal: %v", err)
		}
	default:
		var err error
		pairs, dropped, err = zipPairs(questions, answers, c.question, c.answer)
		if err != nil {
			return row, 0, BadQA, err.Error()
		}
	}
	pairs, d := cleanPairs(pairs, opts.KeepImageTag)
	dropped += d
	if len(pairs) == 0 {
		if dropped > 0 {
			return row, 0, EmptyQA, fmt.Sprintf("none of its %d QA entries has both a question and an answer", dropped)
		}
		return row, 0, EmptyQA, "the QA list is empty"
	}
	w, h, format, reason, detail := checkImage(row.Image, opts)
	if reason != "" {
		return row, 0, reason, detail
	}
	row.QA, row.Width, row.Height, row.Format = pairs, w, h, format
	return row, dropped, "", ""
}

// zipPairs pairs up question and answer values read from repeated (or plain)
// columns.
func zipPairs(qs, as []parquet.Value, ql, al leaf) ([]QAPair, int, error) {
	if len(qs) != len(as) {
		return nil, 0, fmt.Errorf("%d questions but %d answers", len(qs), len(as))
	}
	var pairs []QAPair
	dropped := 0
	for i := range qs {
		q, a := qs[i], as[i]
		if ql.repeated && q.DefinitionLevel() < ql.elemDef {
			continue // empty or null list
		}
		if q.IsNull() || a.IsNull() {
			dropped++
			continue
		}
		pairs = append(pairs, QAPair{Question: string(q.ByteArray()), Answer: valueText(a)})
	}
	return pairs, dropped, nil
}

// valueText renders a string or numeric answer value as text.
func valueText(v parquet.Value) string {
	switch v.Kind() {
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	}
	return v.String()
}

// readLocalImage reads an image stored beside the dataset, refusing paths that
// leave its folder.
func readLocalImage(dir, rel string) ([]byte, error) {
	if !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("image path %q is not inside the dataset", rel)
	}
	return os.ReadFile(filepath.Join(dir, rel))
}

// Rows streams the good rows of a split, shard by shard and row group by row
// group, in file order, holding one row group's pages at a time. Bad rows are
// skipped and recorded in rep (which may be nil). An error that stops the
// pass (an unreadable file, a cancelled ctx, an unknown split) is yielded
// once, with a zero Row, as the last item.
func (ds *Dataset) Rows(ctx context.Context, split string, rep *Report) iter.Seq2[Row, error] {
	if rep == nil {
		rep = &Report{}
	}
	rep.examples = ds.opts.Examples
	return func(yield func(Row, error) bool) {
		if err := ds.checkSplit(split); err != nil {
			yield(Row{}, err)
			return
		}
		for _, path := range ds.splits[split] {
			s, err := openShard(path)
			if err != nil {
				yield(Row{}, err)
				return
			}
			stopped := false
			for g := range s.pf.RowGroups() {
				err = s.readGroup(ctx, g, ds.opts, rep, func(r Row) bool {
					if !yield(r, nil) {
						stopped = true
						return false
					}
					return true
				})
				if err != nil || stopped {
					break
				}
			}
			s.Close()
			if stopped {
				return
			}
			if err != nil {
				yield(Row{}, err)
				return
			}
		}
	}
}
