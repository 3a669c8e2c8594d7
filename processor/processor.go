// Package processor is the Qwen2-VL multimodal processor: it turns chat
// messages and their images into model inputs as transformers'
// Qwen2VLProcessor does — the prompt rendered with the chat template and
// tokenized, each <|image_pad|> expanded to the image's token count
// (t·h·w / merge_size²), the images' pixel_values concatenated in message
// order with their image_grid_thw — and batches them with left padding.
//
// Truncation policy. A batch may set a maximum length. Sequences longer than
// it are, by default (TruncateNone), refused with an error naming the
// sequence, its length and how many of its tokens are image tokens. With
// TruncateLeft, tokens are dropped from the left (the start of the system
// prompt first, as TRL's truncation_side="left" does for prompts), but never
// an image's token run: the cut may not reach an image's <|vision_start|>,
// so every image keeps all of its <|image_pad|> tokens and its markers, and
// pixel_values stay consistent with the ids. When the text left of the first
// image is too short to drop enough, the sequence is refused with an error
// rather than cut inside an image (the mismatch Python users of the Hugging
// Face peers keep hitting as "Image features and image tokens do not match").
package processor

import (
	"errors"
	"fmt"

	"github.com/mmft-go/mmft/chattemplate"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/tokenizer"
)

// Processor turns messages and images into Qwen2-VL inputs. It holds no
// mutable state and is safe for concurrent use.
type Processor struct {
	tok   *tokenizer.Tokenizer
	tmpl  *chattemplate.Template
	img   *imageproc.Processor
	ids   tokenizer.SpecialIDs
	padID int32
}

// Load reads the tokenizer, chat template and preprocessor_config.json of a
// model folder (use hub.Resolve to get one from a repository id).
func Load(dir string) (*Processor, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("processor: loading the tokenizer of %s: %w", dir, err)
	}
	tmpl, err := chattemplate.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("processor: loading the chat template of %s: %w", dir, err)
	}
	cfg, err := imageproc.LoadModelConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("processor: loading the image processor settings of %s: %w", dir, err)
	}
	img, err := imageproc.New(cfg, imageproc.DecodeOptions{})
	if err != nil {
		return nil, fmt.Errorf("processor: %s: %w", dir, err)
	}
	return New(tok, tmpl, img)
}

// New assembles a processor from its parts.
func New(tok *tokenizer.Tokenizer, tmpl *chattemplate.Template, img *imageproc.Processor) (*Processor, error) {
	if tok == nil || tmpl == nil || img == nil {
		return nil, errors.New("processor: New needs a tokenizer, a chat template and an image processor")
	}
	ids := tok.Special()
	if ids.ImagePad < 0 {
		return nil, errors.New("processor: the tokenizer has no <|image_pad|> token; is this a Qwen2-VL model folder?")
	}
	pad := ids.Pad
	if pad < 0 {
		pad = ids.EndOfText
	}
	if pad < 0 {
		return nil, errors.New("processor: the tokenizer has neither a pad token nor <|endoftext|> to pad batches with")
	}
	return &Processor{tok: tok, tmpl: tmpl, img: img, ids: ids, padID: int32(pad)}, nil
}

// Tokenizer returns the processor's tokenizer.
func (p *Processor) Tokenizer() *tokenizer.Tokenizer { return p.tok }

// Template returns the processor's chat template.
func (p *Processor) Template() *chattemplate.Template { return p.tmpl }

// Images returns the processor's image processor.
func (p *Processor) Images() *imageproc.Processor { return p.img }

// PadID returns the id batches are padded with (the tokenizer's pad token,
// <|endoftext|> for Qwen2-VL).
func (p *Processor) PadID() int32 { return p.padID }

// Input is one conversation: its messages and the images of its image parts,
// in message order.
type Input struct {
	Messages []chattemplate.Message
	Images   []*imageproc.RGB
	// Template holds the chat-template switches (generation prompt,
	// continue_final_message).
	Template chattemplate.Options
}

// Encoding is one processed sequence.
type Encoding struct {
	// Text is the rendered prompt, with one <|image_pad|> per image (before
	// expansion and before any truncation).
	Text string
	// InputIDs are the token ids with every image's pads expanded.
	InputIDs []int32
	// ImageSpans gives each image's run of <|image_pad|> in InputIDs.
	ImageSpans []Span
	// PixelValues holds the images' patches, [patches, PatchDim] row-major,
	// one image after another.
	PixelValues []float32
	// PatchDim is the length of one patch row (1176 for Qwen2-VL).
	PatchDim int
	// Grids holds each image's image_grid_thw (t, h, w).
	Grids [][3]int
	// Dropped is how many tokens truncation removed from the left.
	Dropped int
}

// Encode renders in.Messages with the chat template and encodes the text and
// images as EncodeText does.
func (p *Processor) Encode(in Input) (*Encoding, error) {
	for i, m := range in.Messages {
		for _, part := range m.Content {
			if part.IsVideo() && !part.IsImage() {
				return nil, fmt.Errorf("processor: message %d (%s) holds a video; videos are not supported, give frames as images", i+1, m.Role)
			}
		}
	}
	text, err := p.tmpl.Render(in.Messages, in.Template)
	if err != nil {
		return nil, fmt.Errorf("processor: rendering the messages: %w", err)
	}
	return p.EncodeText(text, in.Images)
}

// EncodeText tokenizes an already rendered prompt, preprocesses the images
// and expands the k-th <|image_pad|> of the text to the k-th image's token
// count. The number of <|image_pad|> tokens must equal len(images).
func (p *Processor) EncodeText(text string, images []*imageproc.RGB) (*Encoding, error) {
	raw := p.tok.Encode(text)
	ids := make([]int32, len(raw))
	pads := 0
	for i, id := range raw {
		ids[i] = int32(id)
		if id == p.ids.ImagePad {
			pads++
		}
	}
	if pads != len(images) {
		return nil, fmt.Errorf("processor: the prompt has %d image placeholders but %d images were given; give one image per image part of the messages, in message order", pads, len(images))
	}
	for i, im := range images {
		if im == nil {
			return nil, fmt.Errorf("processor: image %d is nil", i+1)
		}
	}
	enc := &Encoding{Text: text, PatchDim: p.img.Config().PatchDim()}
	counts := make([]int, len(images))
	if len(images) > 0 {
		b, err := p.img.Preprocess(images...)
		if err != nil {
			return nil, fmt.Errorf("processor: %w", err)
		}
		enc.PixelValues, enc.PatchDim, enc.Grids = b.PixelValues, b.PatchDim, b.Grids
		for i, g := range b.Grids {
			counts[i] = p.img.Config().NumImageTokens(g)
		}
	}
	expanded, spans, err := ExpandImagePads(ids, int32(p.ids.ImagePad), counts)
	if err != nil {
		return nil, err
	}
	enc.InputIDs, enc.ImageSpans = expanded, spans
	return enc, nil
}

// Truncation selects what happens to a sequence longer than the maximum length.
type Truncation int

const (
	// TruncateNone refuses sequences longer than the maximum length.
	TruncateNone Truncation = iota
	// TruncateLeft drops tokens from the left, never reaching into an
	// image's run (see the package documentation); a sequence that cannot be
	// shortened enough that way is refused.
	TruncateLeft
)

// String names the policy.
func (t Truncation) String() string {
	switch t {
	case TruncateNone:
		return "none"
	case TruncateLeft:
		return "left"
	}
	return fmt.Sprintf("Truncation(%d)", int(t))
}

// MarshalText writes the policy's name ("none" or "left").
func (t Truncation) MarshalText() ([]byte, error) {
	switch t {
	case TruncateNone, TruncateLeft:
		return []byte(t.String()), nil
	}
	return nil, fmt.Errorf("processor: unknown truncation policy %d", int(t))
}

// UnmarshalText reads a policy name: "none" (or empty) or "left".
func (t *Truncation) UnmarshalText(b []byte) error {
	switch string(b) {
	case "", "none":
		*t = TruncateNone
	case "left":
		*t = TruncateLeft
	default:
		return fmt.Errorf("processor: unknown truncation policy %q (want \"none\" or \"left\")", b)
	}
	return nil
}

// Truncate returns e shortened to at most maxLength tokens under policy; e
// itself is returned when it already fits or maxLength is 0.
func (p *Processor) Truncate(e *Encoding, maxLength int, policy Truncation) (*Encoding, error) {
	return truncate(e, maxLength, policy, int32(p.ids.VisionStart), int32(p.ids.VisionEnd))
}

func truncate(e *Encoding, maxLength int, policy Truncation, visionStart, visionEnd int32) (*Encoding, error) {
	n := len(e.InputIDs)
	if maxLength <= 0 || n <= maxLength {
		return e, nil
	}
	imageTokens := 0
	for _, s := range e.ImageSpans {
		imageTokens += s.Len()
	}
	fix := "raise the maximum length, or lower the image processor's max_pixels so images take fewer tokens"
	if policy != TruncateLeft {
		return nil, fmt.Errorf("processor: the sequence has %d tokens (%d of them for %d images), more than the maximum length %d, and truncation is off; %s, or truncate from the left", n, imageTokens, len(e.ImageSpans), maxLength, fix)
	}
	cut := n - maxLength
	protected := protectedSpans(e.InputIDs, e.ImageSpans, visionStart, visionEnd)
	if len(protected) > 0 && cut > protected[0].Start {
		return nil, fmt.Errorf("processor: the sequence has %d tokens (%d of them for %d images), more than the maximum length %d, and only the %d text tokens before the first image may be dropped without cutting an image; %s", n, imageTokens, len(e.ImageSpans), maxLength, protected[0].Start, fix)
	}
	out := *e
	out.InputIDs = append([]int32(nil), e.InputIDs[cut:]...)
	out.ImageSpans = make([]Span, len(e.ImageSpans))
	for i, s := range e.ImageSpans {
		out.ImageSpans[i] = Span{s.Start - cut, s.End - cut}
	}
	out.Dropped = e.Dropped + cut
	return &out, nil
}

// BatchOptions configures Batch.
type BatchOptions struct {
	// MaxLength bounds each sequence's length; 0 means no bound.
	MaxLength int
	// Truncation is what happens to sequences longer than MaxLength.
	Truncation Truncation
	// PadToMultipleOf rounds the padded length up to a multiple of this (0 or 1: no rounding).
	PadToMultipleOf int
}

// Batch is a left-padded batch of model inputs.
type Batch struct {
	// InputIDs is [B][L], left-padded with PadID.
	InputIDs [][]int32
	// AttentionMask is [B][L]: 1 on tokens, 0 on padding.
	AttentionMask [][]int32
	// PixelValues holds every image of the batch, sequence by sequence, in
	// order: [patches, PatchDim] row-major.
	PixelValues []float32
	// PatchDim is the length of one patch row.
	PatchDim int
	// Grids holds image_grid_thw for every image, in the order of PixelValues.
	Grids [][3]int
	// PadID is the id the padding positions hold.
	PadID int32
	// Encodings are the sequences as batched (after truncation).
	Encodings []*Encoding
}

// Batch truncates (per opts) and left-pads encodings into one batch.
func (p *Processor) Batch(encs []*Encoding, opts BatchOptions) (*Batch, error) {
	if len(encs) == 0 {
		return nil, errors.New("processor: Batch needs at least one sequence")
	}
	b := &Batch{PadID: p.padID, PatchDim: p.img.Config().PatchDim(), Encodings: make([]*Encoding, len(encs))}
	seqs := make([][]int32, len(encs))
	patches := 0
	for i, e := range encs {
		if e == nil {
			return nil, fmt.Errorf("processor: sequence %d of the batch is nil", i+1)
		}
		t, err := p.Truncate(e, opts.MaxLength, opts.Truncation)
		if err != nil {
			return nil, fmt.Errorf("sequence %d of the batch: %w", i+1, err)
		}
		if len(t.Grids) > 0 && t.PatchDim != b.PatchDim {
			return nil, fmt.Errorf("processor: sequence %d has patches of %d values, the processor makes %d", i+1, t.PatchDim, b.PatchDim)
		}
		b.Encodings[i], seqs[i] = t, t.InputIDs
		patches += len(t.PixelValues)
	}
	b.InputIDs, b.AttentionMask = PadLeft(seqs, p.padID, opts.PadToMultipleOf)
	b.PixelValues = make([]float32, 0, patches)
	for _, e := range b.Encodings {
		b.PixelValues = append(b.PixelValues, e.PixelValues...)
		b.Grids = append(b.Grids, e.Grids...)
	}
	return b, nil
}
