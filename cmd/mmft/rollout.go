package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/schollz/progressbar/v3"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
	"github.com/mmft-go/mmft/safetensors"
	"github.com/mmft-go/mmft/tokenizer"
)

// rolloutLine is one output line of `mmft rollout --data`.
type rolloutLine struct {
	Prompt          int                `json:"prompt"`
	Index           int                `json:"index"`
	DocID           string             `json:"doc_id"`
	Question        string             `json:"question"`
	Answer          string             `json:"answer"`
	Completion      string             `json:"completion"`
	IDs             []int32            `json:"ids"`
	SamplerLogProbs []float32          `json:"sampler_logprobs"`
	PolicyLogProbs  []float32          `json:"policy_logprobs"`
	Finish          string             `json:"finish"`
	Reward          *float64           `json:"reward,omitempty"`
	Components      map[string]float64 `json:"components,omitempty"`
	Timings         engine.Timings     `json:"timings"`
}

func runRollout(c *cli, args []string) error {
	fs := c.newFlags("rollout", "--model DIR|HUB_ID --data SRC --n G [sampling flags] | --model DIR --greedy --inputs IN.safetensors --max-new-tokens N", `
Samples completions with the rollout engine.

With --data, it draws --prompts questions from a dataset split (a folder, a
.parquet file or a Hub id, read as `+"`mmft data sample --random`"+` does), builds
each prompt (system prompt, image, question, assistant prefill), generates G
completions per prompt and prints one JSON line per completion as it
finishes: ids, text, the sampler's and the policy's log-probs, the finish
reason (eos, stop, length), timings and, with --reward, the reward. A
progress bar and the tokens/s go to stderr (--quiet: none).

With --greedy --inputs, it reads a prepared batch (input_ids, attention_mask,
pixel_values, image_grid_thw in transformers' names), decodes greedily and
prints one JSON line {"ids": [...]} per row (the new tokens; EOS ends a row
unless --ignore-eos).`)
	model := fs.String("model", "", "model folder or Hub id (required)")
	src := fs.String("data", "", "dataset: folder, .parquet file or Hub id")
	split := fs.String("split", "train", "dataset split")
	nPrompts := fs.Int("prompts", 8, "number of prompts to draw from --data")
	n := fs.Int("n", 8, "completions per prompt (G)")
	seed := fs.Uint64("seed", 0, "seed of the dataset sampler and of sampling")
	temperature := fs.Float64("temperature", 1, "sampling temperature (0: greedy)")
	topP := fs.Float64("top-p", 1, "nucleus sampling mass (1: off)")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens (0: off)")
	minP := fs.Float64("min-p", 0, "drop tokens below min-p × the best one's probability (0: off)")
	repPen := fs.Float64("repetition-penalty", 1, "transformers' repetition penalty (1: off)")
	maxNew := fs.Int("max-new-tokens", 256, "tokens generated per completion at most")
	stop := fs.String("stop", "", `stop strings, separated by "|" (e.g. "</answer>")`)
	ignoreEOS := fs.Bool("ignore-eos", false, "keep generating past EOS (forces --max-new-tokens)")
	reward := fs.String("reward", "", "reward name or set NAME=W,NAME=W (structural, format, accuracy) to score each completion")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder for the policy")
	dtype := fs.String("dtype", "float32", "weights dtype: float32 or bfloat16")
	slots := fs.Int("slots", 0, "sequences decoded together (0: prompts × n, at most 64)")
	shared := fs.Bool("shared-prefix", false, "group slots by prompt: each prompt's KV held once for its n completions")
	steps := fs.Int("steps-per-call", 0, "decode steps per device call (an unrolled on-device loop); 0: automatic (1, or 4 from 8 slots, 8 from 32)")
	greedy := fs.Bool("greedy", false, "greedy decoding of --inputs")
	inputs := fs.String("inputs", "", "prepared input safetensors (with --greedy)")
	var dev compute.Flags
	dev.Register(fs)
	dsrc := dataSourceFlags(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(c.stderr, "mmft rollout: "+format+"; see mmft rollout --help\n", a...)
		return errUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *model == "":
		return usage("--model is required")
	case *greedy && *inputs == "":
		return usage("--greedy needs --inputs IN.safetensors")
	case !*greedy && *src == "":
		return usage("give --data SRC (sampling) or --greedy --inputs IN.safetensors")
	case *greedy && *src != "":
		return usage("--data and --greedy --inputs are two forms; give one")
	case *n < 1 || *nPrompts < 1 || *maxNew < 1 || *slots < 0 || *steps < 0:
		return usage("--n, --prompts and --max-new-tokens must be ≥ 1, --slots and --steps-per-call ≥ 0")
	}
	sampling := engine.Sampling{Temperature: float32(*temperature), TopP: float32(*topP), TopK: *topK, MinP: float32(*minP),
		RepetitionPenalty: float32(*repPen), MaxNewTokens: *maxNew, IgnoreEOS: *ignoreEOS, Seed: *seed}
	if *stop != "" {
		sampling.StopStrings = strings.Split(unescapeFlag(*stop), "|")
	}
	if *greedy {
		sampling = engine.Sampling{MaxNewTokens: *maxNew, IgnoreEOS: *ignoreEOS}
	}
	if err := sampling.Validate(); err != nil {
		return usage("%v", err)
	}
	opts := qwen2vl.Options{}
	switch strings.ToLower(*dtype) {
	case "float32", "f32":
		opts.DType = dtypes.Float32
	case "bfloat16", "bf16":
		opts.DType = dtypes.BFloat16
	default:
		return usage("--dtype %q: use float32 or bfloat16", *dtype)
	}
	var set rewards.Set
	if *reward != "" {
		var err error
		if set, err = rolloutRewards(*reward); err != nil {
			return usage("--reward: %v", err)
		}
	}
	be, err := dev.Backend()
	if err != nil {
		return err
	}
	defer be.Backend.Finalize()
	dir, err := c.resolveModel(*model, "*.json", "*.safetensors", "*.txt")
	if err != nil {
		return err
	}
	m, err := qwen2vl.Load(be.Backend, dir, opts)
	if err != nil {
		return err
	}
	l, err := adapterFor(m, *adapter)
	if err != nil {
		return err
	}
	eopts := engine.Options{Slots: *slots, StepsPerCall: *steps, SharedPrefix: *shared, MemoryBytes: cacheBudget(be, m)}
	var tok *tokenizer.Tokenizer
	if !*greedy {
		if tok, err = tokenizer.Load(dir); err != nil {
			return err
		}
		eopts.Decode = func(ids []int32) string { return tok.Decode(intIDs(ids), false) }
		eopts.EOSIDs = eosIDs(tok, m.Config)
	}
	var reqs []engine.Request
	var samples []data.Sample
	if *greedy {
		in, err := safetensors.Open(*inputs)
		if err != nil {
			return fmt.Errorf("reading inputs: %w", err)
		}
		defer in.Close()
		batch, err := qwen2vl.ReadBatch(in)
		if err != nil {
			return fmt.Errorf("%s: %w", *inputs, err)
		}
		ps, err := engine.Prompts(m.Config, batch)
		if err != nil {
			return fmt.Errorf("%s: %w", *inputs, err)
		}
		for _, p := range ps {
			reqs = append(reqs, engine.Request{Prompt: p, N: 1, Sampling: sampling})
		}
	} else {
		if reqs, samples, err = c.rolloutPrompts(dir, *src, *split, *nPrompts, *n, *seed, sampling, dsrc); err != nil {
			return err
		}
	}
	if eopts.Slots == 0 {
		eopts.Slots = min(64, len(reqs)*reqs[0].N)
	}
	eng, err := engine.New(m, eopts)
	if err != nil {
		return err
	}
	if err := eng.SetAdapter(l); err != nil {
		return err
	}
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	// emit writes one completion's line; with --data lines stream out as
	// completions finish, with --greedy they come in row order at the end.
	emit := func(cp engine.Completion) error {
		if *greedy {
			return enc.Encode(struct {
				IDs []int32 `json:"ids"`
			}{cp.IDs})
		}
		s := samples[cp.Request]
		line := rolloutLine{Prompt: cp.Request, Index: cp.Index, DocID: s.DocID, Question: s.Question, Answer: s.Answer,
			Completion: tok.Decode(intIDs(cp.IDs), true), IDs: cp.IDs, SamplerLogProbs: cp.SamplerLogProbs,
			PolicyLogProbs: cp.PolicyLogProbs, Finish: string(cp.Finish), Timings: cp.Timings}
		if len(set.Components) > 0 {
			res := set.Score(rewards.Input{Prefill: prompt.DefaultPrefill, Completion: line.Completion, CompletionIDs: intIDs(cp.IDs),
				Answer: s.Answer, Question: s.Question})
			line.Reward, line.Components = &res.Total, res.Map()
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
		return out.Flush()
	}
	var bar *progressbar.ProgressBar
	var emitErr error
	t0 := time.Now()
	progress := func(p engine.Progress) {
		if !*greedy {
			for _, cp := range p.Finished {
				if emitErr == nil {
					emitErr = emit(cp)
				}
			}
		}
		if *dsrc.quiet {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions(p.Total, progressbar.OptionSetWriter(c.stderr), progressbar.OptionSetDescription("rollout"),
				progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
		}
		bar.Describe(fmt.Sprintf("rollout %d tokens, %.0f tokens/s", p.NewTokens, float64(p.NewTokens)/p.Elapsed.Seconds()))
		_ = bar.Set(p.Done)
	}
	comps, err := eng.Generate(c.ctx, reqs, progress)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	if emitErr != nil {
		return fmt.Errorf("writing completions: %w", emitErr)
	}
	tokens := 0
	for _, cp := range comps {
		tokens += len(cp.IDs)
		if *greedy {
			if err := emit(cp); err != nil {
				return err
			}
		}
	}
	el := time.Since(t0)
	st := eng.Runner().Stats()
	fmt.Fprintf(c.stderr, "mmft rollout: %d completions, %d new tokens in %v (%.0f tokens/s); %d programs compiled in %v\n",
		len(comps), tokens, el.Round(time.Millisecond), float64(tokens)/el.Seconds(), st.Programs, st.CompileTime.Round(time.Millisecond))
	return out.Flush()
}

// rolloutPrompts draws prompts from a dataset split with the training
// sampler and builds them as the trainer does.
func (c *cli) rolloutPrompts(dir, src, split string, nPrompts, n int, seed uint64, s engine.Sampling, dsrc *dataSource) ([]engine.Request, []data.Sample, error) {
	proc, err := processor.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	builder, err := prompt.New(proc, prompt.DefaultConfig())
	if err != nil {
		return nil, nil, err
	}
	ds, err := data.Open(c.ctx, src, dsrc.options(c))
	if err != nil {
		return nil, nil, err
	}
	smp, err := data.NewSampler(ds, split, data.SamplerOptions{Seed: seed})
	if err != nil {
		return nil, nil, err
	}
	var rep data.Report
	var reqs []engine.Request
	var samples []data.Sample
	for x, err := range smp.Epoch(c.ctx, 0, &rep) {
		if err != nil {
			return nil, nil, err
		}
		img, err := imageproc.Decode(x.Image, imageproc.DecodeOptions{})
		if err != nil {
			fmt.Fprintf(c.stderr, "mmft rollout: skipping %s: %v\n", x.DocID, err)
			continue
		}
		p, err := builder.Build(x.Question, img)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", x.DocID, err)
		}
		ep, err := engine.FromPrompt(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", x.DocID, err)
		}
		reqs = append(reqs, engine.Request{Prompt: ep, N: n, Sampling: s})
		samples = append(samples, x)
		if len(reqs) == nPrompts {
			break
		}
	}
	if len(reqs) == 0 {
		return nil, nil, fmt.Errorf("split %s of %s gave no usable question", split, src)
	}
	if rep.BadRows() > 0 {
		fmt.Fprintf(c.stderr, "skipped on the way: %s", rep.String())
	}
	return reqs, samples, nil
}

// rolloutRewards parses a reward name or weighted set over the built-in
// rewards (structural, format, accuracy).
func rolloutRewards(spec string) (rewards.Set, error) {
	reg := rewards.NewRegistry()
	acc := rewards.Accuracy{RelTol: rewards.DefaultRelTol}
	for _, r := range []struct {
		name string
		f    rewards.Func
	}{{"structural", rewards.Structural}, {"format", rewards.Format}, {"accuracy", acc.Score}} {
		if err := reg.Register(r.name, r.f); err != nil {
			return rewards.Set{}, err
		}
	}
	if strings.ContainsAny(spec, ",=") {
		return reg.ParseSet(spec)
	}
	f, err := reg.Get(spec)
	if err != nil {
		return rewards.Set{}, err
	}
	return rewards.Set{Components: []rewards.Component{{Name: spec, Weight: 1, Func: f}}}, nil
}

// eosIDs are the ids that end a completion: the config's EOS, and the
// tokenizer's EOS (<|im_end|>, the end of the assistant turn) and
// <|endoftext|>.
func eosIDs(tok *tokenizer.Tokenizer, cfg qwen2vl.Config) []int32 {
	ids := []int32{int32(cfg.EOSTokenID)}
	sp := tok.Special()
	for _, id := range []int{sp.EOS, sp.ImEnd, sp.EndOfText} {
		if id >= 0 && !slices.Contains(ids, int32(id)) {
			ids = append(ids, int32(id))
		}
	}
	return ids
}

// intIDs widens token ids for the tokenizer and rewards.
func intIDs(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// cacheBudget is the device memory left for the KV cache: 90% of the
// device's memory (host RAM on the CPU) less the weights; 0 (unchecked) when
// the device's memory is unknown.
func cacheBudget(be *compute.Backend, m *qwen2vl.Model) int64 {
	info := be.Info()
	if len(info.Devices) == 0 || info.Devices[0].MemoryBytes <= 0 {
		return 0
	}
	var weights int64
	for _, name := range m.ParamNames() {
		weights += int64(m.Param(name).Shape().Memory())
	}
	return max(info.Devices[0].MemoryBytes/10*9-weights, 1)
}
