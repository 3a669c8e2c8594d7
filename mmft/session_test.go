package mmft

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/worker"
)

// sessionFlow drives a session through the notebook tutorial's steps on
// the embedded model and checks each result; both kinds of session run it.
func sessionFlow(t *testing.T, s *Session) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := s.Rollout(ctx, RolloutOptions{}); err == nil || !strings.Contains(err.Error(), "LoadModel") {
		t.Fatalf("rollout before LoadModel: want an error naming LoadModel, got %v", err)
	}
	mi, err := s.LoadModel(ctx, "embedded", ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !mi.Embedded || mi.Params == 0 || mi.Layers == 0 {
		t.Fatalf("model info %+v", mi)
	}
	for _, split := range []string{"train", "test"} {
		di, err := s.LoadDataset(ctx, "embedded", split, DataOptions{Seed: 3, NoShuffle: split == "test"})
		if err != nil {
			t.Fatal(err)
		}
		if di.Samples == 0 {
			t.Fatalf("%s: no samples", split)
		}
	}
	smp, err := s.ShowSamples(ctx, "train", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(smp.Items) != 3 || !strings.HasPrefix(smp.Items[0].Image, "data:image/") || smp.Items[0].Question == "" {
		t.Fatalf("samples: %+v", smp.Items)
	}
	if h := smp.HTML(); !strings.Contains(h, "<img src=\"data:image/") || !strings.Contains(h, smp.Items[1].Answer) {
		t.Fatalf("samples HTML lacks the image or answer")
	}
	pv, err := s.PromptView(ctx, "train", 1)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Question != smp.Items[1].Question || pv.ImageTokens == 0 || pv.Tokens <= pv.ImageTokens || !strings.Contains(pv.Text, "<|image_pad|>") {
		t.Fatalf("prompt view: %+v", pv)
	}
	_, err = s.AddReward(ctx, "short", "func Reward(s Sample, c Completion) float64 {\n\treturn undefinedThing\n}\n", 1)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a custom reward with an error on line 2: want an error naming line 2, got %v", err)
	}
	ri, err := s.AddReward(ctx, "short", "func Reward(s Sample, c Completion) float64 {\n\tif c.Tokens < 8 {\n\t\treturn 0.5\n\t}\n\treturn 0\n}\n", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if ri.Spec() != "structural=1,accuracy=1,short=0.5" {
		t.Fatalf("reward set %q", ri.Spec())
	}
	g, err := s.Rollout(ctx, RolloutOptions{Prompts: 2, Generations: 2, Temperature: 1, MaxNewTokens: 6, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Prompts) != 2 || len(g.Prompts[0].Completions) != 2 || len(g.Prompts[0].Completions[1].Rewards) != 3 || len(g.RewardNames) != 3 {
		t.Fatalf("gallery %+v", g)
	}
	cfg, err := s.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OutputDir = filepath.Join(dir, "run")
	cfg.BatchSize, cfg.NumGenerations, cfg.Objective.MaxCompletionLength = 2, 4, 8
	if err := s.SetConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var steps, rollouts int
	sum, err := s.Train(ctx, 2, func(e TrainEvent) {
		switch e.Kind {
		case "step":
			steps++
			if _, ok := e.Metrics["reward"]; !ok {
				t.Errorf("step event without a reward: %v", e.Metrics)
			}
		case "rollout":
			rollouts++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if steps != 2 || rollouts == 0 || sum.StepsDone != 2 || len(sum.History) != 2 {
		t.Fatalf("train: %d step events, %d rollout events, summary %+v", steps, rollouts, sum)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutputDir, MetricsFile)); err != nil {
		t.Fatalf("no metrics file: %v", err)
	}
	if !strings.Contains(sum.HTML(), "<svg") {
		t.Fatal("train summary HTML has no chart")
	}
	ev, err := s.Evaluate(ctx, SessionEvalOptions{EvalOptions: EvalOptions{MaxSamples: 3, MaxNewTokens: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Samples != 3 || len(ev.Records) != 3 || ev.Records[2].Index != 2 || ev.Records[0].Output == "" {
		t.Fatalf("evaluation %+v", ev)
	}
	ai, err := s.SaveAdapter(ctx, filepath.Join(dir, "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	if ai.Modules == 0 || len(ai.Files) < 2 {
		t.Fatalf("saved adapter %+v", ai)
	}
	if _, err := s.LoadAdapter(ctx, filepath.Join(dir, "adapter")); err != nil {
		t.Fatal(err)
	}
	ev2, err := s.Evaluate(ctx, SessionEvalOptions{EvalOptions: EvalOptions{MaxSamples: 3, MaxNewTokens: 8}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ev.Records {
		if ev.Records[i].Output != ev2.Records[i].Output {
			t.Fatalf("record %d: the reloaded adapter answers %q, the trained one %q", i, ev2.Records[i].Output, ev.Records[i].Output)
		}
	}
	if _, err := s.LoadAdapter(ctx, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("loading a missing adapter succeeded")
	}
	st, err := s.GPUStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Device != "cpu" || len(st.Devices) != 1 || st.Devices[0].TotalBytes <= 0 || st.Devices[0].FreeBytes <= 0 {
		t.Fatalf("device status %+v", st)
	}
}

func TestSessionInProcess(t *testing.T) {
	sessionFlow(t, Open(SessionOptions{}))
}

// TestSessionThroughWorker runs the flow against a real worker server (in
// this process, over ZeroMQ), so every argument and result crosses the wire.
func TestSessionThroughWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	srv, err := worker.New(worker.Config{Name: "sessiontest", Dir: dir, IdleTimeout: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := Register(srv, nil, distributed.Flags{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker not ready")
	}
	s, err := Connect(context.Background(), SessionOptions{Mode: "worker", Worker: worker.Options{Name: "sessiontest", Dir: dir, NoStart: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Remote() {
		t.Fatal("not a worker session")
	}
	sessionFlow(t, s)
	// Interrupting Train cancels the command in the worker, which stays healthy.
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { time.Sleep(300 * time.Millisecond); ccancel() }()
	if _, err := s.Train(cctx, 50, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled train: want context.Canceled, got %v", err)
	}
	if _, err := s.History(context.Background()); err != nil {
		t.Fatalf("the worker after a cancelled train: %v", err)
	}
}

func TestConnectLocalIsShared(t *testing.T) {
	t.Setenv(EnvSession, "")
	t.Setenv(envExecutable, "")
	a, err := Connect(context.Background(), SessionOptions{Worker: worker.Options{Name: "shared-test"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Connect(context.Background(), SessionOptions{Worker: worker.Options{Name: "shared-test"}})
	if a != b || a.Remote() {
		t.Fatal("in-process Connect does not share one local session")
	}
	if _, err := Connect(context.Background(), SessionOptions{Mode: "cloud"}); err == nil {
		t.Fatal("mode cloud accepted")
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	ds := parseNvidiaSMI([]byte("0, NVIDIA H200, 1024, 139000, 140024\n1, NVIDIA H200, 0, 140024, 140024\n"))
	if len(ds) != 2 || ds[0].Name != "NVIDIA H200" || ds[0].UsedBytes != 1024<<20 || ds[1].FreeBytes != 140024<<20 {
		t.Fatalf("%+v", ds)
	}
}
