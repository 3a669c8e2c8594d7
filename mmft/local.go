package mmft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
	"github.com/mmft-go/mmft/rewards/script"
)

// local is an in-process session's state (also what the worker holds).
type local struct {
	mu       sync.Mutex
	computeO *compute.Options
	be       *compute.Backend
	lay      distributed.Flags   // --rollout-gpus, --train-gpus, --max-staleness
	layout   *distributed.Layout // resolved with the backend

	model   *Model
	data    map[string]*Data // by split
	custom  map[string]*script.Reward
	spec    string // the reward set
	config  *grpo.Config
	job     *TrainJob
	adapter *qwen2vl.LoRA // loaded with LoadAdapter (no trainer)
	adInfo  *lora.Adapter
	// onEvent receives the running Train call's events.
	onEvent func(TrainEvent)
}

func newLocal(o *compute.Options, lay distributed.Flags) *local {
	return &local{computeO: o, lay: lay, data: map[string]*Data{}, custom: map[string]*script.Reward{}, spec: DefaultRewards}
}

// placement opens the backend and resolves the layout flags for its
// devices: the model goes on the rollout GPU, the trainer on the others.
func (l *local) placement() (*compute.Backend, distributed.Layout, error) {
	be, err := l.backend()
	if err != nil {
		return nil, distributed.Layout{}, err
	}
	if l.layout == nil {
		lay, err := l.lay.Layout(be.Backend.NumDevices())
		if err != nil {
			return nil, distributed.Layout{}, fmt.Errorf("mmft: %w", err)
		}
		if err := lay.CheckRollout(); err != nil {
			return nil, distributed.Layout{}, fmt.Errorf("mmft: %w", err)
		}
		l.layout = &lay
	}
	return be, *l.layout, nil
}

// reset drops everything but the backend.
func (l *local) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.model, l.data, l.job, l.adapter, l.adInfo, l.config = nil, map[string]*Data{}, nil, nil, nil, nil
	l.custom, l.spec = map[string]*script.Reward{}, DefaultRewards
}

// backend opens the compute backend on first use.
func (l *local) backend() (*compute.Backend, error) {
	if l.be != nil {
		return l.be, nil
	}
	var o compute.Options
	if l.computeO != nil {
		o = *l.computeO
	} else {
		var err error
		if o, err = compute.OptionsFromEnv(); err != nil {
			return nil, err
		}
	}
	// A session trains as `mmft train` does, so its CPU backend runs each
	// program's operations one at a time too (GoMLX's parallel scheduling
	// can hang on the shared-prompt graphs: compute.Options.CPUSequentialOps).
	o.CPUSequentialOps = true
	be, err := compute.New(o)
	if err != nil {
		return nil, err
	}
	l.be = be
	return be, nil
}

type loadModelArgs struct {
	Ref   string `json:"ref"`
	DType string `json:"dtype"`
	Seed  uint64 `json:"seed"`
	Slots int    `json:"slots"`
}

func (l *local) loadModel(ctx context.Context, a loadModelArgs, progress io.Writer) (ModelInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	be, lay, err := l.placement()
	if err != nil {
		return ModelInfo{}, err
	}
	t0 := time.Now()
	m, err := LoadModel(ctx, be, a.Ref, ModelOptions{DType: a.DType, Seed: a.Seed, Slots: a.Slots, Progress: progress, Device: lay.Rollout[0]})
	if err != nil {
		return ModelInfo{}, err
	}
	l.model, l.job, l.adapter, l.adInfo = m, nil, nil, nil
	info := ModelInfo{Ref: m.Ref, Dir: m.Dir, Embedded: m.Embedded, DType: m.Model.DType.String(), Device: be.Device,
		Layers: m.Model.Config.Text.NumLayers, Seconds: time.Since(t0).Seconds()}
	for _, p := range m.Model.Config.ParamSpecs() {
		n := int64(1)
		for _, d := range p.Shape {
			n *= int64(d)
		}
		info.Params += n
	}
	return info, nil
}

type loadDataArgs struct {
	Ref       string       `json:"ref"`
	Split     string       `json:"split"`
	Seed      uint64       `json:"seed"`
	NoShuffle bool         `json:"no_shuffle"`
	Level     *synth.Level `json:"level"`
}

func (l *local) loadData(ctx context.Context, a loadDataArgs, progress io.Writer) (DataInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.Split == "" {
		a.Split = "train"
	}
	d, err := LoadData(ctx, a.Ref, a.Split, DataOptions{Seed: a.Seed, NoShuffle: a.NoShuffle, Level: a.Level, Progress: progress})
	if err != nil {
		return DataInfo{}, err
	}
	l.data[a.Split] = d
	if a.Split == "train" {
		l.job = nil
	}
	return dataInfo(d), nil
}

func dataInfo(d *Data) DataInfo {
	info := DataInfo{Ref: d.Ref, Split: d.Split, Samples: d.Len, Bad: map[string]int64{}}
	if d.Report != nil {
		info.Rows, info.Good = d.Report.Rows, d.Report.Good
		for _, b := range d.Report.Bad {
			info.Bad[fmt.Sprint(b.Reason)] = b.Count
		}
	}
	return info
}

// split returns a loaded split.
func (l *local) split(name string) (*Data, error) {
	if name == "" {
		name = "train"
	}
	d := l.data[name]
	if d == nil {
		return nil, fmt.Errorf("mmft: no %s split loaded: call LoadDataset(ctx, \"embedded\", %q, …) first", name, name)
	}
	return d, nil
}

// first returns the first n samples of d's epoch 0.
func first(ctx context.Context, d *Data, n int) ([]data.Sample, error) {
	var out []data.Sample
	if n <= 0 {
		return out, nil
	}
	for smp, err := range d.Epochs(ctx, 0) {
		if err != nil {
			return nil, fmt.Errorf("mmft: reading %s: %w", d.Ref, err)
		}
		out = append(out, smp)
		if len(out) == n {
			break
		}
	}
	return out, nil
}

type samplesArgs struct {
	Split string `json:"split"`
	N     int    `json:"n"`
}

// maxShown bounds the samples ShowSamples and Rollout return.
const maxShown = 64

func (l *local) samples(ctx context.Context, a samplesArgs) (Samples, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, err := l.split(a.Split)
	if err != nil {
		return Samples{}, err
	}
	if a.N < 1 || a.N > maxShown {
		return Samples{}, fmt.Errorf("mmft: show %d samples: give 1 to %d", a.N, maxShown)
	}
	smps, err := first(ctx, d, a.N)
	if err != nil {
		return Samples{}, err
	}
	out := Samples{Data: dataInfo(d), Items: []SampleView{}}
	for i, s := range smps {
		out.Items = append(out.Items, SampleView{Index: i, DocID: s.DocID, Question: s.Question, Answer: s.Answer,
			Image: dataURI(s.Image, s.Format), Width: s.Width, Height: s.Height})
	}
	return out, nil
}

type promptArgs struct {
	Split string `json:"split"`
	Index int    `json:"index"`
}

func (l *local) needModel() error {
	if l.model == nil {
		return errors.New("mmft: no model loaded: call LoadModel(ctx, \"embedded\", …) first")
	}
	return nil
}

func (l *local) promptView(ctx context.Context, a promptArgs) (PromptInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.needModel(); err != nil {
		return PromptInfo{}, err
	}
	d, err := l.split(a.Split)
	if err != nil {
		return PromptInfo{}, err
	}
	if a.Index < 0 || a.Index >= d.Len {
		return PromptInfo{}, fmt.Errorf("mmft: sample %d: the split has samples 0 to %d", a.Index, d.Len-1)
	}
	smps, err := first(ctx, d, a.Index+1)
	if err != nil {
		return PromptInfo{}, err
	}
	s := smps[len(smps)-1]
	p, err := l.build(s)
	if err != nil {
		return PromptInfo{}, err
	}
	info := PromptInfo{Question: s.Question, Answer: s.Answer, Text: p.Text, Tokens: len(p.IDs), Image: dataURI(s.Image, s.Format)}
	for _, sp := range p.ImageSpans {
		info.ImageTokens += sp.Len()
	}
	if len(p.Grids) > 0 {
		info.Grid = p.Grids[0]
	}
	return info, nil
}

// build renders a sample's prompt with the training prompt configuration.
func (l *local) build(s data.Sample) (*prompt.Prompt, error) {
	b, err := prompt.New(l.model.Processor, prompt.DefaultConfig())
	if err != nil {
		return nil, err
	}
	var img *imageproc.RGB
	if len(s.Image) > 0 {
		if img, err = imageproc.Decode(s.Image, imageproc.DecodeOptions{}); err != nil {
			return nil, fmt.Errorf("mmft: image of %s: %w", s.DocID, err)
		}
	}
	return b.Build(s.Question, img)
}

type rewardsArgs struct {
	Spec string `json:"spec"`
}

type addRewardArgs struct {
	Name   string  `json:"name"`
	Source string  `json:"source"`
	Weight float64 `json:"weight"`
}

// registry holds the built-in rewards and the custom ones.
func (l *local) registry() (*rewards.Registry, error) {
	r := rewards.Default()
	for _, name := range slices.Sorted(maps.Keys(l.custom)) {
		if err := r.Register(name, l.custom[name].Func(nil)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// rewardSet parses the session's spec.
func (l *local) rewardSet() (rewards.Set, error) {
	r, err := l.registry()
	if err != nil {
		return rewards.Set{}, err
	}
	return r.ParseSet(l.spec)
}

func (l *local) rewardsInfo() (RewardsInfo, error) {
	set, err := l.rewardSet()
	if err != nil {
		return RewardsInfo{}, err
	}
	info := RewardsInfo{Names: []string{}, Weights: []float64{}, Custom: slices.Sorted(maps.Keys(l.custom))}
	for _, c := range set.Components {
		info.Names, info.Weights = append(info.Names, c.Name), append(info.Weights, c.Weight)
	}
	return info, nil
}

var errTrainingStarted = errors.New("mmft: training has started with the current rewards; call ResetTraining first to train with others")

func (l *local) setRewards(a rewardsArgs) (RewardsInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.job != nil {
		return RewardsInfo{}, errTrainingStarted
	}
	old := l.spec
	l.spec = a.Spec
	info, err := l.rewardsInfo()
	if err != nil {
		l.spec = old
		return RewardsInfo{}, fmt.Errorf("mmft: %w", err)
	}
	return info, nil
}

func (l *local) addReward(a addRewardArgs) (RewardsInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.job != nil {
		return RewardsInfo{}, errTrainingStarted
	}
	if slices.Contains(rewards.Default().Names(), a.Name) {
		return RewardsInfo{}, fmt.Errorf("mmft: reward %q is built in: give the custom reward another name", a.Name)
	}
	if a.Weight == 0 {
		a.Weight = 1
	}
	r, err := script.Compile(a.Source, script.Options{Name: a.Name})
	if err != nil {
		return RewardsInfo{}, err
	}
	oldCustom, oldSpec := l.custom[a.Name], l.spec
	l.custom[a.Name] = r
	var items []string
	for _, it := range strings.Split(l.spec, ",") {
		name, _, _ := strings.Cut(strings.TrimSpace(it), "=")
		if strings.TrimSpace(name) != a.Name && strings.TrimSpace(it) != "" {
			items = append(items, strings.TrimSpace(it))
		}
	}
	l.spec = strings.Join(append(items, fmt.Sprintf("%s=%g", a.Name, a.Weight)), ",")
	info, err := l.rewardsInfo()
	if err != nil {
		l.spec = oldSpec
		if oldCustom != nil {
			l.custom[a.Name] = oldCustom
		} else {
			delete(l.custom, a.Name)
		}
		return RewardsInfo{}, fmt.Errorf("mmft: %w", err)
	}
	return info, nil
}

// configLocked returns the configuration in force.
func (l *local) configLocked() grpo.Config {
	if l.config != nil {
		return *l.config
	}
	if l.model != nil && !l.model.Embedded {
		c := grpo.DefaultConfig()
		c.ModelName = l.model.Ref
		c.OutputDir = "mmft-run"
		return c
	}
	return EmbeddedTrainConfig()
}

func (l *local) getConfig() (grpo.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.configLocked(), nil
}

func (l *local) setConfig(c grpo.Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.config, l.job = &c, nil
	return nil
}

func (l *local) resetTraining() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.job = nil
}

// currentAdapter is the adapter rollouts and evaluation use: the trainer's
// (as the engine uses it: in the split layout its copy on the rollout GPU),
// else the loaded one, else none.
func (l *local) currentAdapter() (*qwen2vl.LoRA, error) {
	if l.job != nil && l.job.Trainer() != nil {
		return l.job.Trainer().RolloutAdapter()
	}
	return l.adapter, nil
}

func (l *local) rollout(ctx context.Context, o RolloutOptions) (Gallery, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.needModel(); err != nil {
		return Gallery{}, err
	}
	d, err := l.split("train")
	if err != nil {
		return Gallery{}, err
	}
	cfg := l.configLocked()
	if o.Prompts == 0 {
		o.Prompts = 2
	}
	if o.Generations == 0 {
		o.Generations = 4
	}
	if o.Prompts < 0 || o.Prompts > maxShown || o.Generations < 0 || o.Generations > maxShown {
		return Gallery{}, fmt.Errorf("mmft: rollout of %d prompts × %d generations: give 1 to %d of each", o.Prompts, o.Generations, maxShown)
	}
	temp := o.Temperature
	if temp < 0 {
		temp = cfg.Temperature
	}
	if o.MaxNewTokens == 0 {
		o.MaxNewTokens = cfg.Objective.MaxCompletionLength
	}
	set, err := l.rewardSet()
	if err != nil {
		return Gallery{}, fmt.Errorf("mmft: %w", err)
	}
	smps, err := first(ctx, d, o.Prompts)
	if err != nil {
		return Gallery{}, err
	}
	t0 := time.Now()
	g := Gallery{RewardNames: []string{}, Prompts: []RolloutPrompt{}}
	for _, c := range set.Components {
		g.RewardNames = append(g.RewardNames, c.Name)
	}
	var reqs []engine.Request
	var prompts []*prompt.Prompt
	for _, s := range smps {
		p, err := l.build(s)
		if err != nil {
			return Gallery{}, err
		}
		ep, err := engine.FromPrompt(p)
		if err != nil {
			return Gallery{}, err
		}
		prompts = append(prompts, p)
		reqs = append(reqs, engine.Request{Prompt: ep, N: o.Generations, Sampling: engine.Sampling{Temperature: float32(temp),
			TopP: float32(cfg.TopP), TopK: cfg.TopK, MaxNewTokens: o.MaxNewTokens, Seed: o.Seed}})
		g.Prompts = append(g.Prompts, RolloutPrompt{DocID: s.DocID, Question: s.Question, Answer: s.Answer, Image: dataURI(s.Image, s.Format),
			Prefill: p.Prefill, Completions: make([]RolloutCompletion, o.Generations)})
	}
	ad, err := l.currentAdapter()
	if err != nil {
		return Gallery{}, err
	}
	if o.Base {
		ad = nil
	}
	if err := l.model.Engine.SetAdapter(ad); err != nil {
		return Gallery{}, err
	}
	comps, err := l.model.Engine.Generate(ctx, reqs, nil)
	if err != nil {
		return Gallery{}, fmt.Errorf("mmft: rollout: %w", err)
	}
	tok := l.model.Processor.Tokenizer()
	sum := 0.0
	for _, c := range comps {
		ids := make([]int, len(c.IDs))
		for k, id := range c.IDs {
			ids[k] = int(id)
		}
		s, p := smps[c.Request], prompts[c.Request]
		text := tok.Decode(ids, true)
		res := set.Score(rewards.Input{Prefill: p.Prefill, Completion: text, CompletionIDs: ids, Answer: s.Answer, Question: s.Question})
		g.Prompts[c.Request].Completions[c.Index] = RolloutCompletion{Text: text, Tokens: len(ids), Total: res.Total, Rewards: res.Values}
		sum += res.Total
	}
	if len(comps) > 0 {
		g.MeanReward = sum / float64(len(comps))
	}
	g.Seconds = time.Since(t0).Seconds()
	return g, nil
}

type trainArgs struct {
	Steps int `json:"steps"`
	// WorkDir resolves a relative output folder (the caller's working folder).
	WorkDir string `json:"work_dir"`
}

// maxTrainSteps bounds one Train call.
const maxTrainSteps = 1_000_000

func (l *local) train(ctx context.Context, a trainArgs, onEvent func(TrainEvent)) (TrainSummary, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.needModel(); err != nil {
		return TrainSummary{}, err
	}
	if a.Steps < 1 || a.Steps > maxTrainSteps {
		return TrainSummary{}, fmt.Errorf("mmft: train %d steps: give 1 to %d", a.Steps, maxTrainSteps)
	}
	t0 := time.Now()
	if l.job == nil {
		d, err := l.split("train")
		if err != nil {
			return TrainSummary{}, err
		}
		set, err := l.rewardSet()
		if err != nil {
			return TrainSummary{}, fmt.Errorf("mmft: %w", err)
		}
		cfg := l.configLocked()
		if !filepath.IsAbs(cfg.OutputDir) && a.WorkDir != "" {
			cfg.OutputDir = filepath.Join(a.WorkDir, cfg.OutputDir)
		}
		if l.model.Embedded {
			cfg.ModelName = l.model.Ref
		}
		be, lay, err := l.placement()
		if err != nil {
			return TrainSummary{}, err
		}
		step := AutoStepLayout(be.Device, cfg.LoRADropout)
		if err := checkTrainPlan(be, cfg, l.model, lay, step); err != nil {
			return TrainSummary{}, err
		}
		job := &TrainJob{Config: cfg, Model: l.model, Data: d, Rewards: set, Steps: a.Steps, Layout: &lay, MaxStaleness: l.lay.MaxStaleness,
			StepLayout: step}
		// The callbacks forward to the current Train call's onEvent.
		job.OnRollout = func(done, total int) {
			if l.onEvent != nil {
				l.onEvent(TrainEvent{Kind: "rollout", Step: job.Trainer().StepsDone(), Steps: job.Steps, Done: done, Total: total})
			}
		}
		job.OnStep = func(s, steps int, m grpo.Metrics) {
			if l.onEvent != nil {
				l.onEvent(TrainEvent{Kind: "step", Step: s, Steps: steps, Metrics: m})
			}
		}
		if err := job.Prepare(ctx); err != nil {
			return TrainSummary{}, err
		}
		l.job = job
	} else {
		l.job.Steps = l.job.Trainer().StepsDone() + a.Steps
	}
	job := l.job
	l.onEvent = onEvent
	defer func() { l.onEvent = nil }()
	err := job.Run(ctx)
	sum := TrainSummary{StepsDone: job.Trainer().StepsDone(), History: job.Trainer().History(), OutputDir: job.Config.OutputDir,
		Seconds: time.Since(t0).Seconds()}
	if sum.History == nil {
		sum.History = []grpo.Metrics{}
	}
	return sum, err
}

func (l *local) history() []grpo.Metrics {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.job == nil || l.job.Trainer() == nil {
		return []grpo.Metrics{}
	}
	return l.job.Trainer().History()
}

func (l *local) evaluate(ctx context.Context, o SessionEvalOptions) (*EvalResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.needModel(); err != nil {
		return nil, err
	}
	split := o.Split
	if split == "" {
		split = "test"
		if l.data["test"] == nil {
			split = "train"
		}
	}
	d, err := l.split(split)
	if err != nil {
		return nil, err
	}
	ad, err := l.currentAdapter()
	if err != nil {
		return nil, err
	}
	if o.Base {
		ad = nil
	}
	return Evaluate(ctx, l.model, ad, d, o.EvalOptions)
}

type adapterArgs struct {
	Dir string `json:"dir"`
}

func (l *local) saveAdapter(a adapterArgs) (AdapterInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ad *lora.Adapter
	switch {
	case l.job != nil && l.job.Trainer() != nil:
		var err error
		if ad, err = l.job.Trainer().Adapter(); err != nil {
			return AdapterInfo{}, err
		}
	case l.adInfo != nil:
		ad = l.adInfo
	default:
		return AdapterInfo{}, errors.New("mmft: no adapter to save: train first (Train) or load one (LoadAdapter)")
	}
	if err := ad.Save(a.Dir); err != nil {
		return AdapterInfo{}, fmt.Errorf("mmft: saving the adapter: %w", err)
	}
	return adapterInfo(a.Dir, ad), nil
}

func adapterInfo(dir string, ad *lora.Adapter) AdapterInfo {
	info := AdapterInfo{Dir: dir, Modules: len(ad.Modules), Params: ad.NumParams(), Rank: ad.Config.R, Files: []string{}}
	if es, err := os.ReadDir(dir); err == nil {
		for _, e := range es {
			info.Files = append(info.Files, e.Name())
		}
		sort.Strings(info.Files)
	}
	return info
}

func (l *local) loadAdapter(a adapterArgs) (AdapterInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.needModel(); err != nil {
		return AdapterInfo{}, err
	}
	ad, err := lora.Load(a.Dir)
	if err != nil {
		return AdapterInfo{}, fmt.Errorf("mmft: adapter %s: %w", a.Dir, err)
	}
	lr, err := l.model.Model.LoRAFromAdapter(ad)
	if err != nil {
		return AdapterInfo{}, fmt.Errorf("mmft: adapter %s: %w", a.Dir, err)
	}
	l.adapter, l.adInfo, l.job = lr, ad, nil
	return adapterInfo(a.Dir, ad), nil
}

func (l *local) gpuStatus() (DeviceStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	be, err := l.backend()
	if err != nil {
		return DeviceStatus{}, err
	}
	return deviceStatus(be), nil
}
