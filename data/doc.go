// Package data reads document-image question-answering datasets stored as
// parquet in the Sujet-Finance-QA-Vision-100k layout, checks every row, and
// samples training examples from them.
//
// The layout, per shard data/<split>-NNNNN-of-NNNNN.parquet:
//
//	doc_id    string
//	image     struct{bytes binary; path string}   (the Hugging Face Image feature)
//	content   string                              (the document's text)
//	qa_pairs  string: a Python-literal list [{'question': ..., 'answer': ...}, ...]
//
// Mirrors of the dataset vary, and these variants are read as well: image as a
// plain binary column, qa_pairs as a list<struct{question, answer}> column, or
// separate question and answer columns (strings, or lists of strings). data/synth
// writes its synthetic documents in the same layout.
//
// Rows are streamed row group by row group (a shard of the real train split is
// hundreds of MB and is never held whole). Rows that cannot be used — a null or
// undecodable image, an image over the pixel limit or of extreme aspect ratio,
// an unparseable or empty QA list — are skipped and counted per Reason in a
// Report with example doc_ids; every other row is kept.
//
// A Sampler turns rows into training Samples (one image, one question and its
// answer) with seeded, per-epoch shuffles.
package data
