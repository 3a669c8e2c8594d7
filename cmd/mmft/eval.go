package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/mmft"
	"github.com/mmft-go/mmft/qwen2vl"
)

func runEval(c *cli, args []string) error {
	fs := c.newFlags("eval", "[--model DIR|HUB_ID|embedded] [--adapter DIR] [--data SRC] [--split test] [--max-samples N] [--device cpu|gpu|auto]", `
Answers the questions of a dataset split greedily (temperature 0) with the model, and with a
LoRA adapter when --adapter names one (PEFT's format, as mmft train writes it), and scores each
answer: accuracy (the <answer> against the reference, numbers within 1%) and format (the
think/answer structure). Prints one JSON line per sample on stdout and a summary table on stderr.
With no --model it evaluates the embedded default on the built-in test documents; give the
embedded default's seed (--seed, as mmft train's) to get the same random base weights.`)
	model := fs.String("model", embedded.Name, "model folder, Hub id, or \"embedded\"")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder (e.g. a training run's adapter/); none: the base model")
	dataRef := fs.String("data", "", "dataset: a folder or .parquet file in the Sujet layout, a Hub dataset id, or \"embedded\" (default with the embedded model)")
	split := fs.String("split", "test", "split to evaluate")
	maxSamples := fs.Int("max-samples", 0, "evaluate at most this many samples (0: the whole split)")
	maxNew := fs.Int("max-new-tokens", mmft.DefaultEvalTokens, "most tokens per answer")
	seed := fs.Uint64("seed", 42, "seed of the embedded model's random weights (mmft train's --seed)")
	dtype := fs.String("dtype", "", "weights dtype: float32 or bfloat16 (default: bfloat16 on a GPU, float32 on the CPU)")
	var dev compute.Flags
	dev.Register(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft eval: unexpected argument %q (every setting is a flag; see --help)\n", fs.Arg(0))
		return errUsage
	}
	if *maxSamples < 0 || *maxNew <= 0 {
		fmt.Fprintln(c.stderr, "mmft eval: --max-samples must be ≥ 0 and --max-new-tokens > 0")
		return errUsage
	}
	if *dataRef == "" {
		if !embedded.IsName(*model) {
			fmt.Fprintln(c.stderr, "mmft eval: --data is required with --model (a Sujet-layout folder, .parquet file or Hub dataset id)")
			return errUsage
		}
		*dataRef = embedded.Name
	}
	var ad *lora.Adapter
	if *adapter != "" {
		var err error
		if ad, err = lora.Load(*adapter); err != nil {
			return err
		}
	}
	be, err := dev.Backend()
	if err != nil {
		return err
	}
	defer be.Backend.Finalize()
	m, err := mmft.LoadModel(c.ctx, be, *model, mmft.ModelOptions{DType: *dtype, Seed: *seed, Progress: c.stderr})
	if err != nil {
		return err
	}
	var l *qwen2vl.LoRA
	if ad != nil {
		if l, err = m.Model.LoRAFromAdapter(ad); err != nil {
			return fmt.Errorf("--adapter %s: %w", *adapter, err)
		}
	}
	d, err := mmft.LoadData(c.ctx, *dataRef, *split, mmft.DataOptions{NoShuffle: true, Progress: c.stderr})
	if err != nil {
		return err
	}
	res, err := mmft.Evaluate(c.ctx, m, l, d, mmft.EvalOptions{MaxSamples: *maxSamples, MaxNewTokens: *maxNew})
	if err != nil {
		return err
	}
	out := bufio.NewWriter(c.stdout)
	enc := json.NewEncoder(out)
	for _, r := range res.Records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stderr, 0, 0, 2, ' ', 0)
	which := "base model"
	if *adapter != "" {
		which = "adapter " + *adapter
	}
	fmt.Fprintf(tw, "model\t%s (%s)\n", *model, which)
	fmt.Fprintf(tw, "data\t%s, split %s\n", d.Ref, d.Split)
	fmt.Fprintf(tw, "samples\t%d (%d skipped: unreadable image)\n", res.Samples, res.Skipped)
	fmt.Fprintf(tw, "accuracy\t%.3f\n", res.Accuracy)
	fmt.Fprintf(tw, "format rate\t%.3f\n", res.FormatRate)
	fmt.Fprintf(tw, "mean answer tokens\t%.1f\n", res.MeanTokens)
	fmt.Fprintf(tw, "time\t%.1f s\n", res.Seconds)
	return tw.Flush()
}
