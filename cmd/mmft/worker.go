package main

import (
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/mmft"
	"github.com/mmft-go/mmft/worker"
)

func runWorker(c *cli, args []string) error {
	fs := c.newFlags("worker", "[--name NAME] [--dir DIR] [--transport tcp|ipc] [--idle-timeout D] [--parent-pid PID] [--device cpu|gpu|auto] [--rollout-gpus LIST] [--train-gpus LIST] [--max-staleness N]", `
Runs the long-lived worker that notebook cells drive over ZeroMQ. It listens on 127.0.0.1
(ports chosen by the OS) or on unix sockets, writes its connection file worker-NAME.json
(mode 0600, with the random key that signs every message) in the runtime folder, and serves
until it is shut down, idle for --idle-timeout, the --parent-pid process is gone, or it gets
SIGTERM or SIGINT; it then removes the file. Cells start it themselves when none runs; run it
by hand to watch its log. Built-in commands: ping, status, sleep, shutdown; the notebook
session's commands (mmft.load_model, mmft.train, mmft.evaluate, ...) hold the model, data,
trainer and adapter for the cells, on the backend --device selects (opened on first use).
The model is loaded on the rollout GPU and trains on the others, as in mmft train: by
default, with two or more GPUs, rollouts on the last and training on the rest.`)
	var cfg worker.Config
	cfg.BindFlags(fs)
	var dev compute.Flags
	dev.Register(fs)
	var lay distributed.Flags
	lay.RegisterTraining(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	co, err := dev.Options()
	if err != nil {
		return err
	}
	if err := lay.Check(); err != nil {
		fmt.Fprintf(c.stderr, "mmft worker: %s\n", strings.TrimPrefix(err.Error(), "distributed: "))
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "mmft worker: unexpected argument %q; the worker takes flags only\n", fs.Arg(0))
		return errUsage
	}
	cfg.Logger = slog.New(slog.NewTextHandler(c.stderr, nil))
	s, err := worker.New(cfg)
	if err != nil {
		return err
	}
	if err := mmft.Register(s, &co, lay); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return s.Serve(ctx)
}
