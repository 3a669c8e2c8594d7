package main

import (
	"bufio"
	"encoding/json"
	"fmt"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/grpo"
)

// runGRPO dispatches `mmft grpo loss`.
func runGRPO(c *cli, args []string) error {
	const usage = "Usage: mmft grpo loss [flags]\n\n" +
		"  loss  compute the GRPO objective and its gradient for the cases of a JSON file\n"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	if args[0] == "loss" {
		return runGRPOLoss(c, args[1:])
	}
	fmt.Fprintf(c.stderr, "mmft grpo: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

func runGRPOLoss(c *cli, args []string) error {
	fs := c.newFlags("grpo loss", "--cases FILE.json [--device cpu|gpu|auto]", `
Computes the GRPO objective for each case of FILE.json (the format of the reference fixture
shared/fixtures/grpo/loss_cases.json: groups, group_size, epsilon_low, epsilon_high, beta,
loss_type, max_completion_length, rewards, mask, old_logps, new_logps, ref_logps; optional
scale_rewards, engine_logps with importance_sampling_cap, truncated with
mask_truncated_completions) and prints one JSON line per case:
  {"loss": x, "grad_new_logps": [[...], ...]}
Advantages come from the rewards; the gradient is GoMLX's autodiff of the loss.`)
	casesPath := fs.String("cases", "", "JSON file of objective cases (required)")
	var dev compute.Flags
	dev.Register(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft grpo loss: unexpected argument %q; give the file with --cases\n", fs.Arg(0))
		return errUsage
	}
	if *casesPath == "" {
		fmt.Fprintln(c.stderr, "mmft grpo loss: --cases FILE.json is required")
		return errUsage
	}
	cases, err := grpo.ReadLossCases(*casesPath)
	if err != nil {
		return err
	}
	be, err := dev.Backend()
	if err != nil {
		return err
	}
	defer be.Backend.Finalize()
	b := be.Backend
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for i := range cases {
		res, err := grpo.RunLossCase(b, &cases[i])
		if err != nil {
			return fmt.Errorf("case %d: %w", i, err)
		}
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("writing case %d: %w", i, err)
		}
	}
	return out.Flush()
}
