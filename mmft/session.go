package mmft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/worker"
)

// Session is what notebook cells and programs drive: a model, datasets,
// rewards, a trainer and an adapter, with one method per step of the
// tutorial. A session is either in-process (Open; plain Go programs and
// exports) or a handle on the notebook worker, which holds the state while
// cells come and go (Connect under the Jupyter kernel). Both kinds have the
// same methods and results; the results are plain data with an HTML method
// for display (package mmft/display shows them in a notebook).
//
// The methods of one session are meant to be called one at a time (a
// worker runs them in arrival order).
type Session struct {
	local  *local         // in-process state; nil for a worker session
	client *worker.Client // the worker; nil for an in-process session
}

// SessionOptions configure Open and Connect.
type SessionOptions struct {
	// Mode is "auto" (or empty), "local" or "worker". Auto uses the worker
	// when the cell runs under mmft's Jupyter kernel ($MMFT_EXECUTABLE set),
	// or $MMFT_SESSION says "worker" or "local".
	Mode string
	// Compute selects the in-process session's backend (nil: from the
	// environment, compute.OptionsFromEnv; a worker takes its own flags).
	Compute *compute.Options
	// Layout places the in-process session's rollouts and training
	// (--rollout-gpus, --train-gpus, --max-staleness; the zero value: the
	// default layout for the devices found; a worker takes its own flags).
	Layout distributed.Flags
	// Worker configures the connection to the worker. When Worker.Command is
	// empty and $MMFT_EXECUTABLE is set, the worker started is
	// "$MMFT_EXECUTABLE worker".
	Worker worker.Options
}

// EnvSession overrides SessionOptions.Mode "auto": "worker" or "local".
const EnvSession = "MMFT_SESSION"

// envExecutable is set by mmft's kernel for its cells: the mmft program.
const envExecutable = "MMFT_EXECUTABLE"

// sessions are the in-process sessions Connect shares within a process, by
// worker name: the exported notebook's cells run in one process and share
// one session, as the notebook's cells share the worker.
var (
	sessionsMu sync.Mutex
	sessions   = map[string]*Session{}
)

// Open returns a new in-process session (no worker).
func Open(o SessionOptions) *Session {
	return &Session{local: newLocal(o.Compute, o.Layout)}
}

// Connect returns the session a cell uses: a handle on the worker (started
// if none runs) when the cell runs under the kernel, else this process's
// shared in-process session.
func Connect(ctx context.Context, o SessionOptions) (*Session, error) {
	mode := o.Mode
	if mode == "" || mode == "auto" {
		mode = "local"
		if os.Getenv(envExecutable) != "" {
			mode = "worker"
		}
		if m := os.Getenv(EnvSession); m != "" {
			mode = m
		}
	}
	switch mode {
	case "local":
		name := o.Worker.Name
		if name == "" {
			name = worker.DefaultName
		}
		sessionsMu.Lock()
		defer sessionsMu.Unlock()
		if s := sessions[name]; s != nil {
			return s, nil
		}
		s := Open(o)
		sessions[name] = s
		return s, nil
	case "worker":
		wo := o.Worker
		if len(wo.Command) == 0 {
			if exe := os.Getenv(envExecutable); exe != "" {
				wo.Command = []string{exe, "worker"}
			}
		}
		c, err := worker.Connect(ctx, wo)
		if err != nil {
			return nil, fmt.Errorf("mmft: connecting to the worker: %w", err)
		}
		return &Session{client: c}, nil
	default:
		return nil, fmt.Errorf("mmft: session mode %q: use auto, local or worker", mode)
	}
}

// Remote reports whether the session is a handle on the worker.
func (s *Session) Remote() bool { return s.client != nil }

// Close releases the session's connection to the worker (the worker and its
// state stay); for an in-process session it does nothing.
func (s *Session) Close() error {
	if s.client != nil {
		return s.client.Close()
	}
	return nil
}

// Shutdown ends the worker (its state is lost; saved files stay); for an
// in-process session it drops the state.
func (s *Session) Shutdown(ctx context.Context) error {
	if s.client != nil {
		return s.client.Shutdown(ctx)
	}
	s.local.reset()
	return nil
}

// Reset drops the session's state (model, data, rewards, configuration,
// trainer, adapter): a notebook starts from a clean worker.
func (s *Session) Reset(ctx context.Context) error {
	if s.client != nil {
		return s.call(ctx, cmdReset, struct{}{}, nil, nil)
	}
	s.local.reset()
	return nil
}

// ModelInfo describes the session's model.
type ModelInfo struct {
	Ref      string `json:"ref"`
	Dir      string `json:"dir"`
	Embedded bool   `json:"embedded"`
	DType    string `json:"dtype"`
	Device   string `json:"device"`
	// Params is the number of weights; Layers the language model's layers.
	Params  int64   `json:"params"`
	Layers  int     `json:"layers"`
	Seconds float64 `json:"seconds"`
}

// LoadModel loads ref ("embedded", a model folder or a Hub id) into the
// session, replacing its model (and dropping the trainer and adapter).
// o.Progress is used in-process only.
func (s *Session) LoadModel(ctx context.Context, ref string, o ModelOptions) (ModelInfo, error) {
	a := loadModelArgs{Ref: absIfLocal(ref), DType: o.DType, Seed: o.Seed, Slots: o.Slots}
	if s.client != nil {
		var out ModelInfo
		return out, s.call(ctx, cmdLoadModel, a, &out, nil)
	}
	return s.local.loadModel(ctx, a, o.Progress)
}

// DataInfo describes a loaded split.
type DataInfo struct {
	Ref   string `json:"ref"`
	Split string `json:"split"`
	// Samples is the number of samples in an epoch.
	Samples int `json:"samples"`
	// Rows, Good and Bad count the rows read so far (real datasets; the
	// embedded documents have no bad rows), Bad per reason.
	Rows int64            `json:"rows"`
	Good int64            `json:"good"`
	Bad  map[string]int64 `json:"bad"`
}

// LoadDataset loads a split ("train" or "test") of ref ("embedded", a
// folder or .parquet file in the Sujet layout, or a Hub dataset id). The
// train split feeds Train and Rollout, the test split Evaluate.
func (s *Session) LoadDataset(ctx context.Context, ref, split string, o DataOptions) (DataInfo, error) {
	a := loadDataArgs{Ref: absIfLocal(ref), Split: split, Seed: o.Seed, NoShuffle: o.NoShuffle, Level: o.Level}
	if s.client != nil {
		var out DataInfo
		return out, s.call(ctx, cmdLoadData, a, &out, nil)
	}
	return s.local.loadData(ctx, a, o.Progress)
}

// ShowSamples returns the first n samples (at most 64) of a loaded split
// in its epoch-0 order.
func (s *Session) ShowSamples(ctx context.Context, split string, n int) (Samples, error) {
	a := samplesArgs{Split: split, N: n}
	if s.client != nil {
		var out Samples
		return out, s.call(ctx, cmdSamples, a, &out, nil)
	}
	return s.local.samples(ctx, a)
}

// PromptView renders the prompt of sample index (0-based, epoch-0 order)
// of a loaded split, with its token and image-token counts.
func (s *Session) PromptView(ctx context.Context, split string, index int) (PromptInfo, error) {
	a := promptArgs{Split: split, Index: index}
	if s.client != nil {
		var out PromptInfo
		return out, s.call(ctx, cmdPrompt, a, &out, nil)
	}
	return s.local.promptView(ctx, a)
}

// SetRewards sets the reward set from a spec "NAME[=WEIGHT],…" over the
// built-in rewards (structural, format, accuracy) and the custom ones
// added so far. The set is fixed once training starts (ResetTraining).
func (s *Session) SetRewards(ctx context.Context, spec string) (RewardsInfo, error) {
	a := rewardsArgs{Spec: spec}
	if s.client != nil {
		var out RewardsInfo
		return out, s.call(ctx, cmdSetRewards, a, &out, nil)
	}
	return s.local.setRewards(a)
}

// AddReward compiles a custom reward written in Go (package
// rewards/script: `func Reward(s Sample, c Completion) float64`, with the
// helpers Structural, Format, Accuracy, ExtractAnswer, Match, …) and adds
// it to the reward set as name with weight. Compile errors name the
// source's lines. In a notebook the source is interpreted in the worker,
// where a reward that panics or loops scores 0 and cannot stop it.
func (s *Session) AddReward(ctx context.Context, name, src string, weight float64) (RewardsInfo, error) {
	a := addRewardArgs{Name: name, Source: src, Weight: weight}
	if s.client != nil {
		var out RewardsInfo
		return out, s.call(ctx, cmdAddReward, a, &out, nil)
	}
	return s.local.addReward(a)
}

// Config returns the training configuration (EmbeddedTrainConfig for the
// embedded model, grpo.DefaultConfig otherwise, until SetConfig).
func (s *Session) Config(ctx context.Context) (grpo.Config, error) {
	if s.client != nil {
		var out grpo.Config
		return out, s.call(ctx, cmdConfig, struct{}{}, &out, nil)
	}
	return s.local.getConfig()
}

// SetConfig sets the training configuration; a relative OutputDir is
// taken from the caller's working folder. It drops a trainer that exists
// (as ResetTraining).
func (s *Session) SetConfig(ctx context.Context, c grpo.Config) error {
	if c.OutputDir != "" {
		c.OutputDir = absPath(c.OutputDir)
	}
	if s.client != nil {
		return s.call(ctx, cmdSetConfig, c, nil, nil)
	}
	return s.local.setConfig(c)
}

// ResetTraining drops the trainer (its adapter and optimizer state): the
// next Train starts a fresh run with the current configuration and rewards.
func (s *Session) ResetTraining(ctx context.Context) error {
	if s.client != nil {
		return s.call(ctx, cmdResetTraining, struct{}{}, nil, nil)
	}
	s.local.resetTraining()
	return nil
}

// Rollout samples completions for the first prompts of the train split
// with the current adapter and scores each with the reward set.
func (s *Session) Rollout(ctx context.Context, o RolloutOptions) (Gallery, error) {
	if s.client != nil {
		var out Gallery
		return out, s.call(ctx, cmdRollout, o, &out, nil)
	}
	return s.local.rollout(ctx, o)
}

// Train runs steps more GRPO steps (rollout batches) on the train split,
// continuing the session's run (the first call creates it: a fresh
// adapter, checkpoints and metrics in Config.OutputDir). onEvent, when not
// nil, gets rollout progress and each step's metrics as they happen.
// Cancelling ctx (interrupting the cell) stops after checkpointing the last
// finished step; the run continues with the next Train.
func (s *Session) Train(ctx context.Context, steps int, onEvent func(TrainEvent)) (TrainSummary, error) {
	wd, _ := os.Getwd()
	a := trainArgs{Steps: steps, WorkDir: wd}
	if s.client != nil {
		var out TrainSummary
		var relay func(worker.Event)
		if onEvent != nil {
			relay = func(e worker.Event) {
				var te TrainEvent
				if e.Decode(&te) == nil {
					onEvent(te)
				}
			}
		}
		return out, s.call(ctx, cmdTrain, a, &out, relay)
	}
	return s.local.train(ctx, a, onEvent)
}

// History returns the metrics of every step trained so far.
func (s *Session) History(ctx context.Context) ([]grpo.Metrics, error) {
	if s.client != nil {
		var out []grpo.Metrics
		return out, s.call(ctx, cmdHistory, struct{}{}, &out, nil)
	}
	return s.local.history(), nil
}

// Evaluate answers the test split (else the train split) greedily with the
// current adapter (o.Base: the base model) and scores accuracy and format.
func (s *Session) Evaluate(ctx context.Context, o SessionEvalOptions) (*EvalResult, error) {
	if s.client != nil {
		var out EvalResult
		if err := s.call(ctx, cmdEvaluate, o, &out, nil); err != nil {
			return nil, err
		}
		return &out, nil
	}
	return s.local.evaluate(ctx, o)
}

// SaveAdapter writes the current adapter (the trainer's, else the loaded
// one) into dir in PEFT's format (adapter_config.json,
// adapter_model.safetensors).
func (s *Session) SaveAdapter(ctx context.Context, dir string) (AdapterInfo, error) {
	a := adapterArgs{Dir: absPath(dir)}
	if s.client != nil {
		var out AdapterInfo
		return out, s.call(ctx, cmdSaveAdapter, a, &out, nil)
	}
	return s.local.saveAdapter(a)
}

// LoadAdapter loads a PEFT adapter from dir as the session's adapter for
// Rollout and Evaluate (it drops a trainer that exists).
func (s *Session) LoadAdapter(ctx context.Context, dir string) (AdapterInfo, error) {
	a := adapterArgs{Dir: absIfLocal(dir)}
	if s.client != nil {
		var out AdapterInfo
		return out, s.call(ctx, cmdLoadAdapter, a, &out, nil)
	}
	return s.local.loadAdapter(a)
}

// GPUStatus describes the devices the session computes on (the worker's,
// for a worker session): names, memory used and free.
func (s *Session) GPUStatus(ctx context.Context) (DeviceStatus, error) {
	if s.client != nil {
		var out DeviceStatus
		return out, s.call(ctx, cmdGPUStatus, struct{}{}, &out, nil)
	}
	return s.local.gpuStatus()
}

// call runs a worker command, turning the worker's error into one that
// reads well in a cell.
func (s *Session) call(ctx context.Context, name string, req, resp any, onProgress func(worker.Event)) error {
	err := s.client.Call(ctx, name, req, resp, onProgress)
	var ce *worker.CommandError
	if errors.As(err, &ce) {
		return errors.New(strings.TrimPrefix(ce.Message, name+": "))
	}
	return err
}

// absPath makes p absolute against the working folder.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// absIfLocal makes a relative path absolute against the working folder
// (a worker has its own); names that are not paths (embedded, Hub ids)
// are kept.
func absIfLocal(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err != nil && !strings.HasPrefix(p, ".") {
		return p // "embedded", "org/name" Hub ids, or a folder still to be written with a bare name
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
