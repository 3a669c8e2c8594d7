package processor

import (
	"testing"

	"github.com/mmft-go/mmft/chattemplate"
	"github.com/mmft-go/mmft/imageproc"
)

// BenchmarkEncodeSeedPrompt measures one seed prompt (template render,
// tokenize, 100×73 image preprocessing, pad expansion).
func BenchmarkEncodeSeedPrompt(b *testing.B) {
	p := realProcessor(b)
	c := loadTemplateCase(b)
	img := loadImage(b, "public_0_100x73.png")
	in := Input{Messages: c.Messages, Images: []*imageproc.RGB{img}, Template: chattemplate.Options{ContinueFinalMessage: true}}
	for b.Loop() {
		if _, err := p.Encode(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatch64 measures left-padding 64 encoded prompts into a batch.
func BenchmarkBatch64(b *testing.B) {
	p := realProcessor(b)
	c := loadTemplateCase(b)
	img := loadImage(b, "public_0_100x73.png")
	enc, err := p.Encode(Input{Messages: c.Messages, Images: []*imageproc.RGB{img}, Template: chattemplate.Options{ContinueFinalMessage: true}})
	if err != nil {
		b.Fatal(err)
	}
	encs := make([]*Encoding, 64)
	for i := range encs {
		e := *enc
		e.InputIDs = enc.InputIDs[i%8:]
		e.ImageSpans = []Span{{enc.ImageSpans[0].Start - i%8, enc.ImageSpans[0].End - i%8}}
		encs[i] = &e
	}
	for b.Loop() {
		if _, err := p.Batch(encs, BatchOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
