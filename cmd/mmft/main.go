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
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mmft-go/mmft/internal/atomicfile"
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
		{name: "grpo", summary: "GRPO objective tools (grpo loss: loss and gradient of JSON cases)", run: runGRPO},
		{name: "train", summary: "GRPO + LoRA fine-tuning (no flags: the main job on the embedded default)", run: runTrain},
		{name: "plan", summary: "print the GPU layout and each GPU's memory (ZeRO-3 shards, activations, KV cache)", run: runPlan},
		{name: "rollout", summary: "sample completions with the rollout engine", run: runRollout},
		{name: "eval", summary: "evaluate a model or adapter on a dataset split (greedy answers, accuracy, format rate)", run: runEval},
		{name: "export", summary: "export a GoNB notebook as a batch Go program with setup and run scripts", run: runExport},
		{name: "kernel", summary: "install, check (doctor) or run the Jupyter kernel for Go", run: runKernel},
		{name: "worker", summary: "run the long-lived worker that holds the model", run: runWorker},
		{name: "repl", summary: "interactive Go REPL (yaegi) over the standard library and mmft's facade", run: runRepl},
	}
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cli{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	got := onSignal(cancel, c.stderr)
	code := c.main(os.Args[1:])
	if s := got(); s != 0 {
		atomicfile.RemoveTemps()
		code = 128 + s
	}
	os.Exit(code)
}

// stopGrace is how long a command has, after SIGINT or SIGTERM cancelled its
// context, to stop and run its deferred cleanup before the process removes the
// temporary files still being written and exits on its own.
const stopGrace = 5 * time.Second

// onSignal cancels the commands' context on the first SIGINT or SIGTERM; the
// command then stops and its deferred cleanup runs. A command that does not
// stop within stopGrace, or a second signal, ends the process at once after
// removing atomicfile's live temporary files. The exit code is 128 + the
// signal's number (130 for SIGINT, 143 for SIGTERM), as shells report it. The
// returned function gives the number of the signal received, 0 for none.
func onSignal(cancel context.CancelFunc, stderr io.Writer) func() int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var got atomic.Int32
	go func() {
		s := (<-sigs).(syscall.Signal)
		got.Store(int32(s))
		// Said before cancelling: the command may return and the process
		// exit as soon as its context is done.
		fmt.Fprintf(stderr, "mmft: %v: stopping\n", s)
		cancel()
		select {
		case <-sigs:
		case <-time.After(stopGrace):
		}
		for _, p := range atomicfile.RemoveTemps() {
			fmt.Fprintf(stderr, "mmft: removed the unfinished %s\n", p)
		}
		os.Exit(128 + int(s))
	}()
	return func() int { return int(got.Load()) }
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
			if slices.ContainsFunc(args[1:], isHelpFlag) {
				fmt.Fprintf(c.stdout, "mmft %s: %s.\nNot built yet: %s brings it.\n", name, cmd.summary, cmd.planned)
				return 0
			}
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
			// Errors of a package named like the command ("data: ...") are not prefixed twice.
			fmt.Fprintf(c.stderr, "mmft %s: %s\n", name, strings.TrimPrefix(err.Error(), name+": "))
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
		if isHelpFlag(a) {
			fs.SetOutput(c.stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	// A bad flag gets its one-line error from the flag package and a hint,
	// not the whole flag list (train has dozens of flags).
	full := fs.Usage
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "run `%s --help` for the flags\n", fs.Name())
	}
	err := fs.Parse(interspersed(fs, args))
	fs.Usage = full
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// isHelpFlag reports whether a is -h, -help or --help.
func isHelpFlag(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

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
