package mmft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
)

// EvalOptions configure Evaluate.
type EvalOptions struct {
	// MaxSamples bounds the samples evaluated (0: the whole split, one epoch).
	MaxSamples int `json:"max_samples"`
	// MaxNewTokens bounds each answer (0: DefaultEvalTokens).
	MaxNewTokens int `json:"max_new_tokens"`
	// Prompt is the prompt configuration (zero: prompt.DefaultConfig, as in training).
	Prompt prompt.Config `json:"prompt"`
	// Batch is how many prompts go to the engine per Generate call (0: 32).
	Batch int `json:"batch"`
	// Progress, when set, is told after each batch how many samples are done.
	Progress func(done, total int) `json:"-"`
}

// DefaultEvalTokens is EvalOptions.MaxNewTokens when it is zero.
const DefaultEvalTokens = 64

// EvalRecord is one evaluated sample.
type EvalRecord struct {
	// Index is the sample's position in the split's evaluation order.
	Index    int    `json:"index"`
	DocID    string `json:"doc_id"`
	Question string `json:"question"`
	// Gold is the reference answer.
	Gold string `json:"gold"`
	// Output is the model's full answer: the prompt's prefill and the greedy completion.
	Output string `json:"output"`
	// Predicted is the text of the output's <answer> tag ("" when there is none).
	Predicted string `json:"predicted"`
	// Correct: Predicted matches Gold (rewards.Accuracy: numbers within 1%).
	Correct bool `json:"correct"`
	// Formatted: the output follows the answer format (rewards.Format).
	Formatted bool `json:"formatted"`
	// Tokens is the completion's length in tokens.
	Tokens int `json:"tokens"`
	// Finish says why the completion ended (eos, stop, length).
	Finish string `json:"finish"`
}

// EvalResult is an evaluation: per-sample records and the summary.
type EvalResult struct {
	Records []EvalRecord `json:"records"`
	// Samples is the number of samples evaluated (len(Records)).
	Samples int `json:"samples"`
	// Skipped counts samples whose image could not be decoded.
	Skipped int `json:"skipped"`
	// Accuracy and FormatRate are the fractions of correct and well-formatted answers.
	Accuracy   float64 `json:"accuracy"`
	FormatRate float64 `json:"format_rate"`
	// MeanTokens is the mean completion length.
	MeanTokens float64 `json:"mean_tokens"`
	// Seconds is the evaluation's wall time.
	Seconds float64 `json:"seconds"`
}

// Evaluate answers the samples of d greedily (temperature 0) with m's engine
// and adapter (nil: the base model) and scores each answer for accuracy
// and format. It leaves adapter set on m's engine.
func Evaluate(ctx context.Context, m *Model, adapter *qwen2vl.LoRA, d *Data, o EvalOptions) (*EvalResult, error) {
	switch {
	case m == nil || m.Engine == nil || m.Processor == nil:
		return nil, errors.New("mmft: evaluate: no model (LoadModel first)")
	case d == nil || d.Epochs == nil:
		return nil, errors.New("mmft: evaluate: no data (LoadData first)")
	case o.MaxSamples < 0, o.MaxNewTokens < 0, o.Batch < 0:
		return nil, fmt.Errorf("mmft: evaluate: max_samples %d, max_new_tokens %d and batch %d must be ≥ 0", o.MaxSamples, o.MaxNewTokens, o.Batch)
	}
	if o.MaxNewTokens == 0 {
		o.MaxNewTokens = DefaultEvalTokens
	}
	if o.Batch == 0 {
		o.Batch = 32
	}
	if o.Prompt == (prompt.Config{}) {
		o.Prompt = prompt.DefaultConfig()
	}
	b, err := prompt.New(m.Processor, o.Prompt)
	if err != nil {
		return nil, fmt.Errorf("mmft: evaluate: %w", err)
	}
	if err := m.Engine.SetAdapter(adapter); err != nil {
		return nil, fmt.Errorf("mmft: evaluate: %w", err)
	}
	total := d.Len
	if o.MaxSamples > 0 {
		total = min(total, o.MaxSamples)
	}
	start := time.Now()
	res := &EvalResult{Records: []EvalRecord{}}
	var batch []evalItem
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		recs, err := evalBatch(ctx, m, batch, o.MaxNewTokens)
		if err != nil {
			return err
		}
		res.Records = append(res.Records, recs...)
		batch = batch[:0]
		if o.Progress != nil {
			o.Progress(len(res.Records), total)
		}
		return nil
	}
	index := 0
	for smp, err := range d.Epochs(ctx, 0) {
		if err != nil {
			return nil, fmt.Errorf("mmft: evaluate: reading %s: %w", d.Ref, err)
		}
		if index >= total {
			break
		}
		var img *imageproc.RGB
		if len(smp.Image) > 0 {
			if img, err = imageproc.Decode(smp.Image, imageproc.DecodeOptions{}); err != nil {
				res.Skipped++
				continue
			}
		}
		p, err := b.Build(smp.Question, img)
		if err != nil {
			return nil, fmt.Errorf("mmft: evaluate: prompt of %s: %w", smp.DocID, err)
		}
		ep, err := engine.FromPrompt(p)
		if err != nil {
			return nil, fmt.Errorf("mmft: evaluate: prompt of %s: %w", smp.DocID, err)
		}
		batch = append(batch, evalItem{rec: EvalRecord{Index: index, DocID: smp.DocID, Question: smp.Question, Gold: smp.Answer}, prefill: p.Prefill, prompt: ep})
		index++
		if len(batch) == o.Batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	res.Samples = len(res.Records)
	var correct, formatted, tokens int
	for _, r := range res.Records {
		if r.Correct {
			correct++
		}
		if r.Formatted {
			formatted++
		}
		tokens += r.Tokens
	}
	if n := float64(res.Samples); n > 0 {
		res.Accuracy, res.FormatRate, res.MeanTokens = float64(correct)/n, float64(formatted)/n, float64(tokens)/n
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// evalItem is one prompt waiting in an evaluation batch.
type evalItem struct {
	rec     EvalRecord
	prefill string
	prompt  engine.Prompt
}

// evalBatch generates the greedy answers of a batch and scores them.
func evalBatch(ctx context.Context, m *Model, items []evalItem, maxNew int) ([]EvalRecord, error) {
	reqs := make([]engine.Request, len(items))
	for i, it := range items {
		reqs[i] = engine.Request{Prompt: it.prompt, N: 1, Sampling: engine.Sampling{Temperature: 0, MaxNewTokens: maxNew}}
	}
	comps, err := m.Engine.Generate(ctx, reqs, nil)
	if err != nil {
		return nil, fmt.Errorf("mmft: evaluate: %w", err)
	}
	tok := m.Processor.Tokenizer()
	out := make([]EvalRecord, len(items))
	for _, c := range comps {
		it := items[c.Request]
		ids := make([]int, len(c.IDs))
		for k, id := range c.IDs {
			ids[k] = int(id)
		}
		in := rewards.Input{Prefill: it.prefill, Completion: tok.Decode(ids, true), CompletionIDs: ids, Answer: it.rec.Gold, Question: it.rec.Question}
		r := it.rec
		r.Output = in.Output()
		r.Predicted, _ = rewards.ExtractAnswer(r.Output)
		r.Correct = rewards.Accuracy{}.Score(in) >= 1
		r.Formatted = rewards.Format(in) >= 1
		r.Tokens = len(c.IDs)
		r.Finish = string(c.Finish)
		out[c.Request] = r
	}
	return out, nil
}
