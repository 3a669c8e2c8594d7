// Command mmft fine-tunes vision-language models (Qwen2-VL) with GRPO and LoRA.
//
// It is one binary with subcommands; run `mmft help` for the list and
// `mmft COMMAND --help` for the flags of one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
)

// cli carries the process streams a subcommand reads and writes, so that
// subcommands can be run from tests with buffers in place of the terminal.
type cli struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one `mmft` subcommand. A nil run means it is planned but not built yet.
type command struct {
	name    string
	summary string
	run     func(c *cli, args []string) error
	// planned says which piece of work brings a command that is not built yet.
	planned string
}

// commands lists every subcommand, built or planned, in the order `mmft help` shows them.
func commands() []command {
	return []command{
		{name: "env", summary: "print the compute backend, devices, plugin path and versions", run: runEnv},
		{name: "bench", summary: "run a benchmark (matmul)", run: runBench},
		{name: "tokenize", summary: "tokenize JSON lines {\"text\": ...} with a model's tokenizer", run: runTokenize},
		{name: "preprocess-image", summary: "run the Qwen2-VL image processor on image files", run: runPreprocessImage},
		{name: "download", summary: "download a model or dataset repository from the Hugging Face Hub", run: runDownload},
		{name: "forward", summary: "run the Qwen2-VL forward pass on saved inputs", run: runForward},
		{name: "data", summary: "inspect, sample or synthesize datasets (data inspect|sample|synth)", run: runData},
		{name: "reward", summary: "score completions with a named reward function", run: runReward},
		{name: "train", summary: "GRPO + LoRA fine-tuning", planned: "the GRPO trainer issue"},
		{name: "rollout", summary: "sample completions with the rollout engine", planned: "the rollout engine issue"},
		{name: "eval", summary: "evaluate a model or adapter on a dataset split", planned: "the evaluation issue"},
		{name: "export", summary: "export a GoNB notebook as a batch Go program with setup and run scripts", run: runExport},
		{name: "kernel", summary: "run the Jupyter kernel (GoNB-based) or install its kernelspec", planned: "the notebook kernel issue"},
		{name: "worker", summary: "run the long-lived worker that holds the model", planned: "the notebook kernel issue"},
		{name: "repl", summary: "interactive Go REPL (yaegi) over the standard library and mmft's facade", run: runRepl},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c := &cli{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	os.Exit(c.main(os.Args[1:]))
}

// main runs one command line and returns the process exit code:
// 0 on success, 1 on a failure, 2 on a usage error.
func (c *cli) main(args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(c.stderr, "mmft: internal error: %v\nPlease report this with the command line that caused it.\n", r)
			code = 1
		}
	}()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 && args[0] == "help" {
			return c.main([]string{args[1], "--help"})
		}
		c.usage(c.stdout)
		return 0
	}
	name := args[0]
	for _, cmd := range commands() {
		if cmd.name != name {
			continue
		}
		if cmd.run == nil {
			fmt.Fprintf(c.stderr, "mmft %s: not built yet (%s brings it).\n", name, cmd.planned)
			return 1
		}
		err := cmd.run(c, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(c.stderr, "mmft %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(c.stderr, "mmft: unknown command %q; run `mmft help` for the list.\n", name)
	return 2
}

// errUsage marks an error whose message has already been printed with the usage.
var errUsage = errors.New("usage error")

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, "mmft fine-tunes Qwen2-VL with GRPO and LoRA.\n\nUsage:\n  mmft COMMAND [flags]\n\nCommands:\n")
	cmds := commands()
	width := 0
	for _, cmd := range cmds {
		width = max(width, len(cmd.name))
	}
	for _, cmd := range cmds {
		note := ""
		if cmd.run == nil {
			note = " (not built yet)"
		}
		fmt.Fprintf(w, "  %-*s  %s%s\n", width, cmd.name, cmd.summary, note)
	}
	fmt.Fprintf(w, "\nRun `mmft COMMAND --help` for the flags of a command.\n")
}

// newFlags returns a flag set for a subcommand whose --help prints the usage line,
// the description and the flags to stdout.
func (c *cli) newFlags(name, usageLine, description string) *flag.FlagSet {
	fs := flag.NewFlagSet("mmft "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: mmft %s %s\n\n%s\n", name, usageLine, strings.TrimSpace(description))
		has := false
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args with fs, sending --help to stdout and turning parse
// errors into errUsage. Flags may come before or after positional arguments
// (`mmft preprocess-image a.png --out x.safetensors`); everything after "--"
// is positional.
func (c *cli) parse(fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(c.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(interspersed(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// interspersed reorders args so that flags (with their values) come first and
// positional arguments follow a "--", which is how the flag package wants them.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the flag package reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(positional) == 0 {
		return flags
	}
	return append(append(flags, "--"), positional...)
}
