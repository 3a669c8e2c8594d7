package processor

import (
	"fmt"
)

// Span is a half-open range [Start, End) of token positions.
type Span struct{ Start, End int }

// Len returns the number of positions in s.
func (s Span) Len() int { return s.End - s.Start }

// ExpandImagePads returns ids with the k-th occurrence of imagePad replaced
// by counts[k] copies of it (the image's token count t·h·w/merge²), and the
// span each image's run occupies in the result. It fails when the number of
// image pads differs from len(counts), which is the mismatch transformers
// reports as "Image features and image tokens do not match".
func ExpandImagePads(ids []int32, imagePad int32, counts []int) ([]int32, []Span, error) {
	n := 0
	for _, id := range ids {
		if id == imagePad {
			n++
		}
	}
	if n != len(counts) {
		return nil, nil, fmt.Errorf("processor: the prompt has %d image placeholders (<|image_pad|>, id %d) but %d images were given; give one image per image part of the messages, in message order", n, imagePad, len(counts))
	}
	total := len(ids) - n
	for i, c := range counts {
		if c <= 0 {
			return nil, nil, fmt.Errorf("processor: image %d has %d tokens; want at least 1", i+1, c)
		}
		total += c
	}
	out := make([]int32, 0, total)
	spans := make([]Span, 0, len(counts))
	k := 0
	for _, id := range ids {
		if id != imagePad {
			out = append(out, id)
			continue
		}
		start := len(out)
		for range counts[k] {
			out = append(out, imagePad)
		}
		spans = append(spans, Span{start, len(out)})
		k++
	}
	return out, spans, nil
}

// protectedSpans returns, for each image span, the span widened to take in
// the <|vision_start|> right before it and the <|vision_end|> right after it,
// so that truncation keeps an image's markers with its tokens.
func protectedSpans(ids []int32, spans []Span, visionStart, visionEnd int32) []Span {
	out := make([]Span, len(spans))
	for i, s := range spans {
		if s.Start > 0 && visionStart >= 0 && ids[s.Start-1] == visionStart {
			s.Start--
		}
		if s.End < len(ids) && visionEnd >= 0 && ids[s.End] == visionEnd {
			s.End++
		}
		out[i] = s
	}
	return out
}

// PadLeft left-pads sequences to the length of the longest one (or to
// multiple-of rounding when multipleOf > 1) with padID and returns the padded
// ids and the attention masks (0 on padding, 1 on tokens), as Hugging Face's
// processors do with padding_side="left".
func PadLeft(seqs [][]int32, padID int32, multipleOf int) (ids, mask [][]int32) {
	length := 0
	for _, s := range seqs {
		length = max(length, len(s))
	}
	if multipleOf > 1 && length%multipleOf != 0 {
		length += multipleOf - length%multipleOf
	}
	ids = make([][]int32, len(seqs))
	mask = make([][]int32, len(seqs))
	for i, s := range seqs {
		row := make([]int32, length)
		m := make([]int32, length)
		pad := length - len(s)
		for j := range pad {
			row[j] = padID
		}
		copy(row[pad:], s)
		for j := pad; j < length; j++ {
			m[j] = 1
		}
		ids[i], mask[i] = row, m
	}
	return ids, mask
}
