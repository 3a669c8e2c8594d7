// Package prompt builds the seed's GRPO prompt for a question about an image:
// a system prompt asking for <think> and <answer> tags, the user turn
// [image, question], and an assistant prefill that the model continues
// (rendered with continue_final_message). A Prompt keeps its token ids with
// the sample, so completions are appended to these ids and never decoded and
// re-tokenized for training.
package prompt

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mmft-go/mmft/chattemplate"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/processor"
)

// DefaultSystemPrompt is the seed's system prompt.
const DefaultSystemPrompt = "You are a helpful assistant. You first thinks about the reasoning process in the mind and then provides the user with the answer.\n" +
	"Show your work in <think> </think> tags. And return the final equation and answer in <answer> </answer> tags."

// DefaultPrefill is the seed's assistant prefill, which the model continues.
const DefaultPrefill = "Let me solve this step by step.\n<think>"

// Config says how prompts are built. Start from DefaultConfig; every field
// is used as given.
type Config struct {
	// SystemPrompt is the system message; empty sends none (the Qwen2-VL
	// template then inserts its own "You are a helpful assistant.").
	SystemPrompt string `json:"system_prompt"`
	// Prefill starts the assistant's answer; the prompt is rendered with
	// continue_final_message so generation continues it. Empty means no
	// prefill: the prompt ends with the generation prompt
	// "<|im_start|>assistant\n".
	Prefill string `json:"prefill"`
	// QuestionFirst puts the question before the image in the user turn
	// (the seed puts the image first).
	QuestionFirst bool `json:"question_first"`
	// MaxLength bounds the prompt's token count (image tokens included);
	// 0 means no bound.
	MaxLength int `json:"max_length"`
	// Truncation is what happens to a prompt longer than MaxLength (see the
	// processor package: by default it is refused; TruncateLeft drops text
	// from the left but never an image's tokens).
	Truncation processor.Truncation `json:"truncation"`
}

// DefaultConfig returns the seed's settings.
func DefaultConfig() Config {
	return Config{SystemPrompt: DefaultSystemPrompt, Prefill: DefaultPrefill}
}

// Prompt is one built prompt, ready for rollout and training.
type Prompt struct {
	// IDs are the prompt's token ids, each image's <|image_pad|> expanded to
	// its token count. Completions are appended to these.
	IDs []int32
	// Text is the rendered prompt (one <|image_pad|> per image), ending with
	// the prefill.
	Text string
	// Prefill is the prefill exactly as it ends Text (transformers'
	// continue_final_message keeps it whole with the Qwen2-VL template); a
	// completion's full answer text is Prefill followed by the completion.
	Prefill string
	// Messages are the chat messages that were rendered.
	Messages []chattemplate.Message
	// PixelValues, PatchDim, Grids and ImageSpans describe the image (none
	// for a text-only prompt): [patches, PatchDim] values, image_grid_thw,
	// and where its tokens sit in IDs.
	PixelValues []float32
	PatchDim    int
	Grids       [][3]int
	ImageSpans  []processor.Span
}

// Builder builds prompts with one processor and configuration. It is safe
// for concurrent use.
type Builder struct {
	proc *processor.Processor
	cfg  Config
}

// New returns a builder; proc comes from processor.Load on a model folder.
func New(proc *processor.Processor, cfg Config) (*Builder, error) {
	if proc == nil {
		return nil, errors.New("prompt: New needs a processor (processor.Load on the model folder)")
	}
	if cfg.MaxLength < 0 {
		return nil, fmt.Errorf("prompt: MaxLength %d is negative (0 means no bound)", cfg.MaxLength)
	}
	switch cfg.Truncation {
	case processor.TruncateNone, processor.TruncateLeft:
	default:
		return nil, fmt.Errorf("prompt: unknown truncation policy %v", cfg.Truncation)
	}
	return &Builder{proc: proc, cfg: cfg}, nil
}

// Config returns the builder's configuration.
func (b *Builder) Config() Config { return b.cfg }

// Processor returns the builder's processor.
func (b *Builder) Processor() *processor.Processor { return b.proc }

// Messages returns the chat messages of the prompt for question, with an
// image part when withImage is set.
func (b *Builder) Messages(question string, withImage bool) []chattemplate.Message {
	var msgs []chattemplate.Message
	if b.cfg.SystemPrompt != "" {
		msgs = append(msgs, chattemplate.System(b.cfg.SystemPrompt))
	}
	var parts []chattemplate.Part
	if withImage && !b.cfg.QuestionFirst {
		parts = append(parts, chattemplate.Image())
	}
	parts = append(parts, chattemplate.Text(question))
	if withImage && b.cfg.QuestionFirst {
		parts = append(parts, chattemplate.Image())
	}
	msgs = append(msgs, chattemplate.User(parts...))
	if b.cfg.Prefill != "" {
		msgs = append(msgs, chattemplate.Assistant(b.cfg.Prefill))
	}
	return msgs
}

const assistantHeader = "<|im_start|>assistant\n"

// Build builds the prompt for a question about image (nil for a text-only
// prompt).
func (b *Builder) Build(question string, image *imageproc.RGB) (*Prompt, error) {
	if strings.TrimSpace(question) == "" {
		return nil, errors.New("prompt: empty question")
	}
	msgs := b.Messages(question, image != nil)
	in := processor.Input{Messages: msgs}
	if image != nil {
		in.Images = []*imageproc.RGB{image}
	}
	if b.cfg.Prefill != "" {
		in.Template.ContinueFinalMessage = true
	} else {
		in.Template.AddGenerationPrompt = true
	}
	enc, err := b.proc.Encode(in)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	enc, err = b.proc.Truncate(enc, b.cfg.MaxLength, b.cfg.Truncation)
	if err != nil {
		return nil, fmt.Errorf("prompt: %w", err)
	}
	p := &Prompt{
		IDs:         enc.InputIDs,
		Text:        enc.Text,
		Messages:    msgs,
		PixelValues: enc.PixelValues,
		PatchDim:    enc.PatchDim,
		Grids:       enc.Grids,
		ImageSpans:  enc.ImageSpans,
	}
	if b.cfg.Prefill != "" {
		i := strings.LastIndex(enc.Text, assistantHeader)
		if i < 0 {
			return nil, fmt.Errorf("prompt: the rendered prompt has no assistant turn to hold the prefill %q", b.cfg.Prefill)
		}
		p.Prefill = enc.Text[i+len(assistantHeader):]
	}
	return p, nil
}

// Batch left-pads prompts into one model batch (pad id from the tokenizer,
// attention mask 0 on padding), their images concatenated in order.
func (b *Builder) Batch(prompts []*Prompt) (*processor.Batch, error) {
	encs := make([]*processor.Encoding, len(prompts))
	for i, p := range prompts {
		if p == nil {
			return nil, fmt.Errorf("prompt: prompt %d of the batch is nil", i+1)
		}
		encs[i] = &processor.Encoding{Text: p.Text, InputIDs: p.IDs, ImageSpans: p.ImageSpans,
			PixelValues: p.PixelValues, PatchDim: p.PatchDim, Grids: p.Grids}
	}
	return b.proc.Batch(encs, processor.BatchOptions{})
}
