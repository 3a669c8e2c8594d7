package grpo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/mmft-go/mmft/compute"
	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/distributed"
	"github.com/mmft-go/mmft/engine"
	"github.com/mmft-go/mmft/execution"
	"github.com/mmft-go/mmft/imageproc"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/processor"
	"github.com/mmft-go/mmft/prompt"
	"github.com/mmft-go/mmft/qwen2vl"
	"github.com/mmft-go/mmft/rewards"
)

// Setup is what a Trainer trains with.
type Setup struct {
	// Engine generates the rollouts; the trainer's programs run on its model
	// and runner (one copy of the base weights for both).
	Engine *engine.Engine
	// Processor renders prompts and holds the tokenizer that decodes
	// completions for the rewards.
	Processor *processor.Processor
	// Prompt is the prompt configuration (system prompt and prefill);
	// the zero value means prompt.DefaultConfig.
	Prompt prompt.Config
	// Rewards score the completions; their weighted total is the GRPO reward.
	Rewards rewards.Set
	// Data yields the training samples (DatasetEpochs, DocEpochs).
	Data EpochFunc
	// Steps is the number of rollout batches to train: the length of the
	// learning-rate schedule. Required.
	Steps int
	// VocabChunk is the vocabulary chunk of the log-prob graphs (0: 8192).
	VocabChunk int
	// SharedPrompt computes each group's prompt once per micro-batch
	// instead of once per completion (qwen2vl.GroupedTokenLogProbs): the
	// group's completions attend to its prompt's keys and values and the
	// gradient flows back into the prompt once. The same math as the full
	// layout (float rounding aside), with about 1/NumGenerations of the
	// prompt's work.
	SharedPrompt bool
	// Recompute runs the policy's forward and backward passes one decoder
	// layer per program call, recomputing each layer's activations in the
	// backward pass, so that only the residual streams between layers stay
	// in memory (see layered.go): one more forward pass for a fraction of
	// the memory. It implies SharedPrompt and refuses LoRA dropout.
	Recompute bool
	// HeadInDType computes the log-prob head's logits as products in the
	// model dtype (qwen2vl.Weights.HeadInDType: bf16 rounding of the logits on
	// a bf16 model, as PyTorch's bf16 models do) instead of float32 products.
	HeadInDType bool
	// Progress, when set, is told about rollout progress.
	Progress func(engine.Progress)
	// BatchRewards are rewards scored a batch at a time (an LLM judge that
	// generates with the engine); their weighted values add to Rewards'.
	BatchRewards []BatchReward
	// Runner runs the training programs (nil: the engine's runner, so the
	// colocated layout shares one copy of the weights and one program
	// cache). A sharded placement (distributed.TrainPlacement) goes here.
	Runner *execution.Runner
	// Weights, when set, are the base weights as Runner's arguments, in the
	// model's ParamNames order (distributed.TrainWeights: a copy on the
	// training device, or FSDP shards over the training mesh, made once);
	// nil: the engine model's own tensors.
	Weights []any
	// Sync, when set, gives the engine its own copy of the adapter before
	// rollouts (the split layout: distributed.Syncer copies it to the
	// rollout device); nil: the engine reads the trainer's tensors
	// (colocated). See split.go.
	Sync *distributed.Syncer
	// MaxStaleness is how many optimizer steps (rollout batches) the
	// engine's adapter copy may lag behind the trainer's: 0 (the default)
	// syncs before every rollout batch (on-policy); N > 0 is the explicit
	// off-policy option, syncing only when the lag would exceed N. It needs
	// Sync.
	MaxStaleness int
}

// BatchReward is a named, weighted reward scored over all of a step's
// completions at once.
type BatchReward struct {
	Name   string
	Weight float64
	Score  func(ctx context.Context, ins []rewards.Input) ([]float64, error)
}

// Trainer runs GRPO with LoRA adapters: rollouts from the engine with the
// current adapter → rewards → group advantages → μ clipped-objective AdamW
// updates of the adapter → the engine's next rollouts use the new adapter
// (its tensors are the engine's inputs: nothing is merged or copied).
type Trainer struct {
	cfg     Config
	s       Setup
	model   *qwen2vl.Model
	run     *execution.Runner
	builder *prompt.Builder
	stream  *Stream
	sched   Schedule
	progs   trainPrograms
	layered layeredPrograms
	// layerSpecs are the layer programs' layouts by key (layered.go).
	layerSpecs map[string]layerSpec

	adapter  *lora.Adapter // configuration and module shapes; values are synced by Adapter()
	modules  []string      // sorted module names
	lora     *qwen2vl.LoRA // the adapter being trained: float32 tensors on the device
	opt      []*tensors.Tensor
	optNames []string
	bindings map[string]*qwen2vl.Binding

	split splitState // the engine's adapter copy in the split layout (split.go)

	rng *tensors.Tensor // the LoRA dropout's RNG state (nil without dropout)
	// acc are zeroed gradient accumulators on the device (the last apply's
	// output, Binding order), reused by the next accumulated update; nil
	// before the first.
	acc     []*tensors.Tensor
	step    int // rollout batches done (the schedule's step)
	history []Metrics
}

// New prepares a trainer: a fresh adapter (PEFT's initialization, seeded
// by cfg.Seed), zero optimizer state, the schedule over s.Steps and the
// programs (compiled on first use).
func New(cfg Config, s Setup) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case s.Engine == nil:
		return nil, errors.New("grpo: Setup.Engine is nil")
	case s.Processor == nil:
		return nil, errors.New("grpo: Setup.Processor is nil")
	case s.Data == nil:
		return nil, errors.New("grpo: Setup.Data is nil: give the training samples")
	case len(s.Rewards.Components) == 0 && len(s.BatchRewards) == 0:
		return nil, errors.New("grpo: Setup.Rewards has no reward function")
	case s.Steps < 1:
		return nil, fmt.Errorf("grpo: Setup.Steps %d: train at least one step", s.Steps)
	case s.Recompute && cfg.LoRADropout > 0:
		return nil, fmt.Errorf("grpo: lora_dropout %v with layer-by-layer recomputation: the recomputed forward pass would draw a new dropout mask; set lora_dropout to 0 or turn recomputation off", cfg.LoRADropout)
	case cfg.BatchSize%cfg.GradientAccumulationSteps != 0:
		return nil, fmt.Errorf("grpo: batch_size %d is not a multiple of gradient_accumulation_steps %d: each micro-batch holds whole groups",
			cfg.BatchSize, cfg.GradientAccumulationSteps)
	}
	if err := checkSplit(s); err != nil {
		return nil, err
	}
	if s.Prompt == (prompt.Config{}) {
		s.Prompt = prompt.DefaultConfig()
	}
	b, err := prompt.New(s.Processor, s.Prompt)
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	sched, err := NewSchedule(cfg.Schedule, s.Steps)
	if err != nil {
		return nil, err
	}
	m := s.Engine.Model()
	shapes := map[string][]int{}
	for _, p := range m.Config.ParamSpecs() {
		shapes[p.Name] = p.Shape
	}
	lc := cfg.LoRAConfig()
	targets, err := lc.Targets(shapes)
	if err != nil {
		return nil, fmt.Errorf("grpo: LoRA targets: %w", err)
	}
	ad, err := lora.NewAdapter(lc, targets, shapes, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	run := s.Runner
	if run == nil {
		run = s.Engine.Runner()
	}
	if s.Weights != nil && len(s.Weights) != len(m.ParamNames()) {
		return nil, fmt.Errorf("grpo: Setup.Weights has %d tensors, the model %d parameters", len(s.Weights), len(m.ParamNames()))
	}
	t := &Trainer{cfg: cfg, s: s, model: m, run: run, builder: b, stream: NewStream(s.Data), sched: sched,
		adapter: ad, modules: ad.Names(), bindings: map[string]*qwen2vl.Binding{}, split: newSplitState(s)}
	if err := t.loadAdapter(ad); err != nil {
		return nil, err
	}
	if cfg.LoRADropout > 0 {
		if t.rng, err = graph.RNGStateFromSeed(int64(cfg.Seed ^ 0x5DEECE66D)); err != nil {
			return nil, fmt.Errorf("grpo: dropout RNG: %w", err)
		}
	}
	names, shp := AdapterParams(ad)
	st, err := NewOptimizerState(names, shp)
	if err != nil {
		return nil, err
	}
	t.optNames, t.opt = names, st.Tensors()
	t.progs = newTrainPrograms(cfg.Objective, cfg.Optimizer, t.modules, func(layout string) *qwen2vl.Binding { return t.bindings[layout] })
	t.layerSpecs = map[string]layerSpec{}
	t.layered = newLayeredPrograms(cfg.Objective, m.Config, &qwen2vl.Weights{DType: m.DType}, func(key string) layerSpec { return t.layerSpecs[key] })
	return t, nil
}

// Warnings lists valid settings that defeat GRPO (Config.Warnings).
func (t *Trainer) Warnings() []string { return t.cfg.Warnings() }

// Config returns the trainer's configuration.
func (t *Trainer) Config() Config { return t.cfg }

// StepsDone returns the number of rollout batches trained.
func (t *Trainer) StepsDone() int { return t.step }

// History returns the metrics of every step so far.
func (t *Trainer) History() []Metrics { return slices.Clone(t.history) }

// LoRA returns the adapter as the engine and graphs use it (device tensors,
// valid until the next step).
func (t *Trainer) LoRA() *qwen2vl.LoRA { return t.lora }

// loadAdapter places an adapter's values on the device in float32 (the
// trained copy; the model's matmuls round them to the model dtype).
func (t *Trainer) loadAdapter(ad *lora.Adapter) error {
	l := &qwen2vl.LoRA{Modules: map[string]qwen2vl.LoRAModule{}}
	for _, name := range ad.Names() {
		mod := ad.Modules[name]
		a, err := t.run.Upload(mod.A, mod.R, mod.In) // Upload copies
		if err != nil {
			return fmt.Errorf("grpo: adapter %s: %w", name, err)
		}
		b, err := t.run.Upload(mod.B, mod.Out, mod.R)
		if err != nil {
			return fmt.Errorf("grpo: adapter %s: %w", name, err)
		}
		l.Modules[name] = qwen2vl.LoRAModule{A: a, B: b, Scale: mod.Scale}
	}
	if err := l.Validate(t.model.Config); err != nil {
		return fmt.Errorf("grpo: %w", err)
	}
	t.lora = l
	t.split.invalidate()
	t.acc = nil // the accumulators follow the adapter's shapes
	return nil
}

// LoadAdapter replaces the adapter being trained with ad's values (for
// example a saved PEFT adapter to continue from); its modules, ranks and
// scales must be those of the run's configuration. The optimizer state is
// left as it is.
func (t *Trainer) LoadAdapter(ad *lora.Adapter) error {
	if ad == nil {
		return errors.New("grpo: LoadAdapter got no adapter")
	}
	if got, want := ad.Names(), t.modules; !slices.Equal(got, want) {
		return fmt.Errorf("grpo: the adapter adapts %d modules, this run %d (%s…): train with its configuration", len(got), len(want), want[0])
	}
	for _, name := range t.modules {
		a, b := ad.Modules[name], t.adapter.Modules[name]
		if a.R != b.R || a.In != b.In || a.Out != b.Out || a.Scale != b.Scale {
			return fmt.Errorf("grpo: adapter module %s is r=%d %d→%d scale %g; this run has r=%d %d→%d scale %g",
				name, a.R, a.In, a.Out, a.Scale, b.R, b.In, b.Out, b.Scale)
		}
	}
	return t.loadAdapter(ad)
}

// Adapter returns the adapter with its current values copied from the
// device (for saving in PEFT's format).
func (t *Trainer) Adapter() (*lora.Adapter, error) {
	out := &lora.Adapter{Config: t.adapter.Config, Modules: map[string]*lora.Module{}}
	for _, name := range t.modules {
		src := t.adapter.Modules[name]
		mod := *src
		var err error
		if mod.A, err = tensors.CopyFlatData[float32](t.lora.Modules[name].A); err != nil {
			return nil, fmt.Errorf("grpo: reading adapter %s: %w", name, err)
		}
		if mod.B, err = tensors.CopyFlatData[float32](t.lora.Modules[name].B); err != nil {
			return nil, fmt.Errorf("grpo: reading adapter %s: %w", name, err)
		}
		out.Modules[name] = &mod
	}
	return out, nil
}

// bind lays out the model and l as graph inputs and remembers the layout
// for building programs.
func (t *Trainer) bind(l *qwen2vl.LoRA) (*qwen2vl.Binding, error) {
	b, err := t.model.Bind(l)
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	if _, ok := t.bindings[b.Layout()]; !ok {
		t.bindings[b.Layout()] = b
	}
	return b, nil
}

// rollout is one rollout batch: prompts, their samples and completions.
type rollout struct {
	samples []data.Sample
	prompts []*prompt.Prompt
	eng     []engine.Prompt
	comps   []engine.Completion
	bad     int // samples skipped for bad images
	// feats are the prompts' image features, computed once for the
	// rollouts and the updates (nil: none yet, or no images).
	feats *engine.ImageFeatures
}

// imageFeatures runs the batch's images through the vision tower once
// (engine.PromptFeatures) unless r holds their features already, and returns
// the function that frees what it computed.
func (r *rollout) imageFeatures(e *engine.Engine) (release func(), err error) {
	if r.feats != nil {
		return func() {}, nil
	}
	f, err := e.PromptFeatures(r.eng)
	if err != nil {
		return nil, fmt.Errorf("grpo: image features: %w", err)
	}
	if f == nil {
		return func() {}, nil
	}
	r.feats = f
	return func() { r.feats = nil; f.T.FinalizeAll() }, nil
}

// maxBadInARow bounds how many unusable samples in a row a batch tolerates.
const maxBadInARow = 64

// collect draws the batch's samples and renders their prompts; samples
// whose image cannot be decoded are skipped and counted.
func (t *Trainer) collect(ctx context.Context) (*rollout, error) {
	r := &rollout{}
	bad := 0
	for len(r.prompts) < t.cfg.BatchSize {
		smp, err := t.stream.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("grpo: training data: %w", err)
		}
		var img *imageproc.RGB
		if len(smp.Image) > 0 {
			img, err = imageproc.Decode(smp.Image, imageproc.DecodeOptions{})
			if err != nil {
				r.bad++
				if bad++; bad > maxBadInARow {
					return nil, fmt.Errorf("grpo: %d samples in a row have unusable images (last: %s: %w)", bad, smp.DocID, err)
				}
				continue
			}
		}
		p, err := t.builder.Build(smp.Question, img)
		if err != nil {
			return nil, fmt.Errorf("grpo: prompt of %s: %w", smp.DocID, err)
		}
		ep, err := engine.FromPrompt(p)
		if err != nil {
			return nil, fmt.Errorf("grpo: prompt of %s: %w", smp.DocID, err)
		}
		bad = 0
		r.samples, r.prompts, r.eng = append(r.samples, smp), append(r.prompts, p), append(r.eng, ep)
	}
	return r, nil
}

// sampling returns the rollout sampling parameters of the current step.
func (t *Trainer) sampling() engine.Sampling {
	return engine.Sampling{Temperature: float32(t.cfg.Temperature), TopP: float32(t.cfg.TopP), TopK: t.cfg.TopK,
		RepetitionPenalty: float32(t.cfg.RepetitionPenalty), MaxNewTokens: t.cfg.Objective.MaxCompletionLength,
		Seed: t.cfg.Seed ^ (uint64(t.step)+1)*0x9E3779B97F4A7C15}
}

// Step runs one GRPO iteration (one rollout batch, μ updates) and returns
// its metrics.
func (t *Trainer) Step(ctx context.Context) (Metrics, error) {
	t0 := time.Now()
	r, err := t.collect(ctx)
	if err != nil {
		return nil, err
	}
	g := t.cfg.NumGenerations
	reqs := make([]engine.Request, len(r.eng))
	for i, p := range r.eng {
		reqs[i] = engine.Request{Prompt: p, N: g, Sampling: t.sampling()}
	}
	ra, syncM, err := t.rolloutAdapter()
	if err != nil {
		return nil, err
	}
	if err := t.s.Engine.SetAdapter(ra); err != nil {
		return nil, err
	}
	tGen := time.Now()
	// Every image through the vision tower once for the step: the rollouts
	// and the updates share the features (the tower has no adapter).
	release, err := r.imageFeatures(t.s.Engine)
	if err != nil {
		return nil, err
	}
	defer release()
	r.comps, err = t.s.Engine.GenerateWithFeatures(ctx, reqs, r.feats, t.s.Progress)
	if err != nil {
		return nil, fmt.Errorf("grpo: rollouts: %w", err)
	}
	genTime := time.Since(tGen)

	// Rewards.
	tRew := time.Now()
	tok := t.s.Processor.Tokenizer()
	totals := make([]float64, len(r.comps))
	comp := map[string][]float64{}
	newTokens := 0
	ins := make([]rewards.Input, len(r.comps))
	for i, c := range r.comps {
		smp, p := r.samples[c.Request], r.prompts[c.Request]
		ids := make([]int, len(c.IDs))
		for k, id := range c.IDs {
			ids[k] = int(id)
		}
		newTokens += len(c.IDs)
		ins[i] = rewards.Input{Prefill: p.Prefill, Completion: tok.Decode(ids, true), CompletionIDs: ids,
			Answer: smp.Answer, Question: smp.Question}
		res := t.s.Rewards.Score(ins[i])
		totals[i] = res.Total
		for k, name := range res.Names {
			comp[name] = append(comp[name], res.Values[k])
		}
	}
	for _, br := range t.s.BatchRewards {
		vals, err := br.Score(ctx, ins)
		if err != nil {
			return nil, fmt.Errorf("grpo: reward %s: %w", br.Name, err)
		}
		if len(vals) != len(ins) {
			return nil, fmt.Errorf("grpo: reward %s gave %d scores for %d completions", br.Name, len(vals), len(ins))
		}
		for i, v := range vals {
			totals[i] += br.Weight * v
		}
		comp[br.Name] = vals
	}
	adv, err := Advantages(totals, g, t.cfg.Objective.ScaleRewards)
	if err != nil {
		return nil, err
	}
	rewTime := time.Since(tRew)

	// Updates.
	tUpd := time.Now()
	um, err := t.update(r, adv)
	if err != nil {
		return nil, err
	}
	updTime := time.Since(tUpd)
	t.step++

	m := Metrics{"step": Float(t.step), "reward": Float(mean(totals)), "reward_std": Float(stddev(totals)),
		"zero_std_groups": Float(adv.ZeroStdGroups), "bad_samples": Float(r.bad),
		"lr": Float(t.sched(t.step - 1)), "new_tokens": Float(newTokens),
		"rollout_s": Float(genTime.Seconds()), "reward_s": Float(rewTime.Seconds()), "update_s": Float(updTime.Seconds()),
		"step_s": Float(time.Since(t0).Seconds()), "tokens_per_s": Float(float64(newTokens) / genTime.Seconds())}
	for name, v := range comp {
		m["reward/"+name] = Float(mean(v))
		m["reward/"+name+"_std"] = Float(stddev(v))
	}
	lengths := make([]float64, len(r.comps))
	var lpSum float64
	var lpN int
	trunc := 0
	for i, c := range r.comps {
		lengths[i] = float64(len(c.IDs))
		for _, lp := range c.PolicyLogProbs {
			lpSum += float64(lp)
			lpN++
		}
		if c.Finish == engine.FinishLength {
			trunc++
		}
	}
	m["completion_length"] = Float(mean(lengths))
	m["completion_length_min"] = Float(slices.Min(lengths))
	m["completion_length_max"] = Float(slices.Max(lengths))
	m["truncated_fraction"] = Float(float64(trunc) / float64(len(r.comps)))
	// The mean negative log-prob of the sampled tokens under the policy
	// estimates its per-token entropy (exactly so at temperature 1).
	m["entropy"] = Float(-lpSum / float64(max(lpN, 1)))
	for k, v := range um {
		m[k] = v
	}
	for k, v := range syncM {
		m[k] = v
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m["host_heap_gib"] = Float(float64(ms.HeapAlloc) / (1 << 30))
	if dm, ok := compute.DeviceMemory(t.run.Backend(), t.run.Placement().Device); ok {
		// The training device's allocator (XLA): held now, and the most held
		// since the process started (PyTorch's max_memory_allocated).
		m["device_in_use_gib"] = Float(float64(dm.BytesInUse) / (1 << 30))
		if dm.PeakBytesInUse >= 0 {
			m["device_peak_gib"] = Float(float64(dm.PeakBytesInUse) / (1 << 30))
		}
	}
	t.history = append(t.history, m)
	return m, nil
}

// TrainOn runs the update half of a step on given rollouts: prompts
// (BatchSize of them), their NumGenerations completions each (ordered by
// prompt, then index, as engine.Generate returns them) and one reward per
// completion. It computes the group advantages, runs μ updates and advances
// the schedule; the metrics are the update's. Step is collect + generate +
// reward + TrainOn; TrainOn alone serves benchmarks and training on
// completions made elsewhere.
func (t *Trainer) TrainOn(ctx context.Context, prompts []engine.Prompt, comps []engine.Completion, rewards []float64) (Metrics, error) {
	if len(prompts) != t.cfg.BatchSize || len(comps) != len(prompts)*t.cfg.NumGenerations || len(rewards) != len(comps) {
		return nil, fmt.Errorf("grpo: TrainOn got %d prompts, %d completions and %d rewards; want %d, %d×%d and one per completion",
			len(prompts), len(comps), len(rewards), t.cfg.BatchSize, t.cfg.BatchSize, t.cfg.NumGenerations)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	adv, err := Advantages(rewards, t.cfg.NumGenerations, t.cfg.Objective.ScaleRewards)
	if err != nil {
		return nil, err
	}
	m, err := t.update(&rollout{eng: prompts, comps: comps}, adv)
	if err != nil {
		return nil, err
	}
	t.step++
	m["zero_std_groups"] = Float(adv.ZeroStdGroups)
	return m, nil
}

// update builds the training micro-batches of a rollout and runs μ
// optimizer updates on them; it returns the update metrics (means over
// updates and micro-batches). A batch whose groups all have equal rewards
// changes neither the adapter nor the optimizer (metric no_signal 1).
func (t *Trainer) update(r *rollout, adv AdvantageResult) (Metrics, error) {
	if !slices.Contains(adv.Keep, 1) {
		// Every group rewarded its completions alike: the loss counts no
		// token and its gradient is 0, but an AdamW step would still move
		// the adapter by the momentum of earlier batches (a drift that can
		// carry the policy away from what it had learnt). A batch that
		// carries no signal changes nothing.
		m := Metrics{"no_signal": 1, "skipped_updates": 0, "grad_norm": 0}
		for _, name := range []string{"loss", "kl", "clip_low", "clip_high", "ratio", "is_weight", "loss_tokens"} {
			m[name] = 0
		}
		return m, nil
	}
	g := t.cfg.NumGenerations
	ga := t.cfg.GradientAccumulationSteps
	per := t.cfg.BatchSize / ga // prompts per micro-batch
	type micro struct {
		tb       *TrainBatch
		args     []*tensors.Tensor // batch inputs after the text inputs
		v        stepVariant
		textArgs []*tensors.Tensor
	}
	needOld := t.cfg.NumIterations > 1 || t.cfg.Objective.ImportanceSamplingCorrection
	needRef := t.cfg.Objective.Beta > 0
	totalTokens := 0
	for _, c := range r.comps {
		totalTokens += len(c.IDs)
	}
	// Every image through the vision tower once for the whole batch, in full
	// vision calls (micro-batches of a few images would pad theirs); each
	// micro-batch takes its prompts' rows.
	release, err := r.imageFeatures(t.s.Engine)
	if err != nil {
		return nil, err
	}
	defer release()
	var mbs []micro
	for k := range ga {
		ps := r.eng[k*per : (k+1)*per]
		comps := r.comps[k*per*g : (k+1)*per*g]
		local := make([]engine.Completion, len(comps))
		copy(local, comps)
		for i := range local {
			local[i].Request -= k * per
		}
		var mf *tensors.Tensor
		if f := r.feats; f != nil && f.From[(k+1)*per] > f.From[k*per] {
			var err error
			if mf, err = t.s.Engine.FeatureRows(f.T, f.From[k*per], f.From[(k+1)*per]-f.From[k*per]); err != nil {
				return nil, fmt.Errorf("grpo: %w", err)
			}
		}
		tb, err := buildTrainBatch(t.s.Engine, ps, g, local, mf)
		if err != nil {
			return nil, err
		}
		n := tb.N
		lo, hi := k*per*g, (k+1)*per*g
		v := stepVariant{chunk: t.s.VocabChunk, old: needOld, ref: needRef, eng: t.cfg.Objective.ImportanceSamplingCorrection,
			numItems: t.cfg.Objective.LossType == LossDAPO, dropout: t.cfg.LoRADropout, headDType: t.s.HeadInDType}
		scale := float32(1)
		if t.cfg.Objective.LossType != LossDAPO {
			scale = 1 / float32(ga)
		}
		args := []*tensors.Tensor{
			tensors.FromFlatDataAndDimensions(tb.Targets, n, tb.C),
			tensors.FromFlatDataAndDimensions(tb.Mask, n, tb.C),
			tensors.FromFlatDataAndDimensions(slices.Clone(adv.Advantages[lo:hi]), n),
			tensors.FromFlatDataAndDimensions(slices.Clone(adv.Keep[lo:hi]), n),
			tensors.FromFlatDataAndDimensions(tb.Truncated, n),
			tensors.FromScalar(scale),
		}
		textArgs := tb.Text.Tensors(tb.Features)
		if t.s.SharedPrompt || t.s.Recompute {
			gt, err := tb.Text.GroupedTo(g, tb.C, promptBucket)
			if err != nil {
				return nil, fmt.Errorf("grpo: %w", err)
			}
			textArgs, v.grouped = gt.Tensors(tb.Features), true
		}
		if needOld {
			lp, err := t.logps(t.lora, v.grouped, textArgs, args[0])
			if err != nil {
				return nil, err
			}
			args = append(args, lp)
		}
		if needRef {
			lp, err := t.logps(nil, v.grouped, textArgs, args[0])
			if err != nil {
				return nil, err
			}
			args = append(args, lp)
		}
		if v.eng {
			args = append(args, tensors.FromFlatDataAndDimensions(tb.EngineLogps, n, tb.C))
		}
		if v.numItems {
			args = append(args, tensors.FromScalar(float32(totalTokens)))
		}
		mbs = append(mbs, micro{tb: tb, args: args, v: v, textArgs: textArgs})
	}

	sum := map[string]float64{}
	count := 0
	lr := tensors.FromScalar(float32(t.sched(t.step)))
	nParams := 2 * len(t.modules)
	names := []string{"loss", "kl", "clip_low", "clip_high", "ratio", "is_weight", "loss_tokens"}
	var keptBytes int64 // residual streams kept between layer-by-layer passes
	for range t.cfg.NumIterations {
		if ga == 1 && !t.s.Recompute {
			mb := mbs[0]
			b, err := t.bind(t.lora)
			if err != nil {
				return nil, err
			}
			mb.v.layout = b.Layout()
			all := t.weightArgs(b, true)
			for _, x := range t.opt {
				all = append(all, execution.Donate(x))
			}
			all = append(all, lr)
			for _, x := range mb.textArgs {
				all = append(all, x)
			}
			for _, x := range mb.args {
				all = append(all, x)
			}
			if t.rng != nil {
				all = append(all, t.rng)
			}
			outs, err := t.run.Run(t.progs.step, mb.v, all...)
			if err != nil {
				return nil, fmt.Errorf("grpo: training step: %w", err)
			}
			if t.rng != nil {
				t.rng = outs[len(outs)-1]
			}
			t.setParams(outs[:nParams])
			t.opt = outs[nParams : 3*nParams+2]
			rest := outs[3*nParams+2:]
			for i, name := range names {
				sum[name] += float64(tensors.ToScalar[float32](rest[i]))
			}
			sum["grad_norm"] += float64(tensors.ToScalar[float32](rest[lossMetrics]))
			if !tensors.ToScalar[bool](rest[lossMetrics+1]) {
				sum["skipped_updates"]++
			}
			count++
			continue
		}
		// Gradient accumulation: sum the micro-batches' gradients, then apply.
		b, err := t.bind(t.lora)
		if err != nil {
			return nil, err
		}
		// Zero accumulators: the last apply's (on the device), else new ones.
		acc := t.acc
		t.acc = nil // donated below: not reusable if this update fails
		if acc == nil {
			for _, name := range t.modules {
				for _, x := range []*tensors.Tensor{t.lora.Modules[name].A, t.lora.Modules[name].B} {
					acc = append(acc, tensors.FromShape(x.Shape()))
				}
			}
		}
		// The micro-batches' metrics are read once all the programs of the
		// update are queued: reading one waits for the device, which would
		// then idle until the host queued the next micro-batch.
		var pending [][]*tensors.Tensor
		for _, mb := range mbs {
			mb.v.layout = b.Layout()
			mb.v.accumulateOnly = true
			if t.s.Recompute {
				metrics, kept, err := t.layeredGrads(mb.v, mb.textArgs, mb.args, acc)
				if err != nil {
					return nil, err
				}
				pending = append(pending, metrics)
				keptBytes = max(keptBytes, kept)
				continue
			}
			all := t.weightArgs(b, false)
			for _, x := range mb.textArgs {
				all = append(all, x)
			}
			for _, x := range mb.args {
				all = append(all, x)
			}
			for _, x := range acc {
				all = append(all, execution.Donate(x))
			}
			if t.rng != nil {
				all = append(all, t.rng)
			}
			outs, err := t.run.Run(t.progs.grads, mb.v, all...)
			if err != nil {
				return nil, fmt.Errorf("grpo: gradients: %w", err)
			}
			if t.rng != nil {
				t.rng = outs[len(outs)-1]
			}
			acc = outs[:nParams]
			pending = append(pending, outs[nParams:nParams+lossMetrics])
		}
		all := make([]any, 0, 4*nParams+3)
		for _, x := range t.paramTensors() {
			all = append(all, execution.Donate(x))
		}
		for _, x := range t.opt {
			all = append(all, execution.Donate(x))
		}
		for _, x := range acc {
			all = append(all, execution.Donate(x))
		}
		all = append(all, lr)
		outs, err := t.run.Run(t.progs.apply, nil, all...)
		if err != nil {
			return nil, fmt.Errorf("grpo: optimizer step: %w", err)
		}
		t.setParams(outs[:nParams])
		t.opt = outs[nParams : 3*nParams+2]
		t.acc = outs[3*nParams+4:]
		for _, metrics := range pending {
			for i, name := range names {
				sum[name] += float64(tensors.ToScalar[float32](metrics[i])) / float64(ga)
			}
		}
		sum["grad_norm"] += float64(tensors.ToScalar[float32](outs[3*nParams+2]))
		if !tensors.ToScalar[bool](outs[3*nParams+3]) {
			sum["skipped_updates"]++
		}
		count++
	}
	m := Metrics{}
	for k, v := range sum {
		if k == "skipped_updates" {
			m[k] = Float(v)
			continue
		}
		m[k] = Float(v / float64(count))
	}
	if _, ok := m["skipped_updates"]; !ok {
		m["skipped_updates"] = 0
	}
	if t.s.Recompute {
		m["recompute_kept_bytes"] = Float(keptBytes)
	}
	m["no_signal"] = 0
	return m, nil
}

// weightArgs returns a binding's tensors as call arguments, the adapter's
// donated when donate is set (they are replaced by the call's outputs).
func (t *Trainer) weightArgs(b *qwen2vl.Binding, donate bool) []any {
	ts := b.Tensors()
	out := make([]any, len(ts))
	first := len(ts) - 2*len(t.modules)
	for i, x := range ts {
		if i < len(t.s.Weights) {
			out[i] = t.s.Weights[i] // the training copy of the base weights (split layout)
		} else if donate && i >= first {
			out[i] = execution.Donate(x)
		} else {
			out[i] = x
		}
	}
	return out
}

// paramTensors lists the adapter tensors in Binding order.
func (t *Trainer) paramTensors() []*tensors.Tensor {
	out := make([]*tensors.Tensor, 0, 2*len(t.modules))
	for _, name := range t.modules {
		out = append(out, t.lora.Modules[name].A, t.lora.Modules[name].B)
	}
	return out
}

// setParams installs updated adapter tensors (Binding order).
func (t *Trainer) setParams(ts []*tensors.Tensor) {
	l := &qwen2vl.LoRA{Modules: make(map[string]qwen2vl.LoRAModule, len(t.modules))}
	for i, name := range t.modules {
		l.Modules[name] = qwen2vl.LoRAModule{A: ts[2*i], B: ts[2*i+1], Scale: t.lora.Modules[name].Scale}
	}
	t.lora = l
}

// logps runs the log-prob program with adapter l (nil: the reference, the
// base model with adapters off) on text inputs of the full or (grouped) the
// shared-prompt layout.
func (t *Trainer) logps(l *qwen2vl.LoRA, grouped bool, text []*tensors.Tensor, targets *tensors.Tensor) (*tensors.Tensor, error) {
	b, err := t.bind(l)
	if err != nil {
		return nil, err
	}
	all := t.weightArgs(b, false)
	for _, x := range text {
		all = append(all, x)
	}
	all = append(all, targets)
	outs, err := t.run.Run(t.progs.logps, stepVariant{layout: b.Layout(), chunk: t.s.VocabChunk, grouped: grouped, headDType: t.s.HeadInDType}, all...)
	if err != nil {
		return nil, fmt.Errorf("grpo: log-probs: %w", err)
	}
	return outs[0], nil
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func stddev(x []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	m := mean(x)
	s := 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return math.Sqrt(s / float64(len(x)-1))
}
