package grpo

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// configFlag describes one Config field on the command line.
type configFlag struct {
	name  string // mmft's name
	alias string // the seed's name, if it differs ("" when none)
	key   string // the YAML key
	usage string
	value func(c *Config) flag.Value
}

// configFlags lists the flags RegisterFlags registers, one per Config field.
func configFlags() []configFlag {
	str := func(f func(c *Config) *string) func(c *Config) flag.Value {
		return func(c *Config) flag.Value { return (*stringValue)(f(c)) }
	}
	num := func(f func(c *Config) *float64) func(c *Config) flag.Value {
		return func(c *Config) flag.Value { return (*floatValue)(f(c)) }
	}
	integer := func(f func(c *Config) *int) func(c *Config) flag.Value {
		return func(c *Config) flag.Value { return (*intValue)(f(c)) }
	}
	boolean := func(f func(c *Config) *bool) func(c *Config) flag.Value {
		return func(c *Config) flag.Value { return (*boolValue)(f(c)) }
	}
	return []configFlag{
		{"model", "model_name", "model_name", "base model: a Hub id or a local folder", str(func(c *Config) *string { return &c.ModelName })},
		{"output-dir", "", "output_dir", "folder for checkpoints, adapters and logs", str(func(c *Config) *string { return &c.OutputDir })},
		{"seed", "", "seed", "seed of every random stream of the run", func(c *Config) flag.Value { return (*uint64Value)(&c.Seed) }},
		{"batch-size", "batch_size", "batch_size", "prompts per rollout batch", integer(func(c *Config) *int { return &c.BatchSize })},
		{"epochs", "", "epochs", "passes over the training data", integer(func(c *Config) *int { return &c.Epochs })},
		{"gradient-accumulation-steps", "grad_accumul", "gradient_accumulation_steps", "micro-batches per optimizer update", integer(func(c *Config) *int { return &c.GradientAccumulationSteps })},
		{"num-iterations", "grpo_iters", "num_iterations", "optimizer updates per rollout batch (μ)", integer(func(c *Config) *int { return &c.NumIterations })},
		{"num-generations", "num_gens", "num_generations", "completions per prompt (the group size)", integer(func(c *Config) *int { return &c.NumGenerations })},
		{"temperature", "", "temperature", "sampling temperature (0: greedy)", num(func(c *Config) *float64 { return &c.Temperature })},
		{"top-p", "top_p", "top_p", "nucleus sampling threshold (1: off)", num(func(c *Config) *float64 { return &c.TopP })},
		{"top-k", "top_k", "top_k", "sample among the k most probable tokens (0: off)", integer(func(c *Config) *int { return &c.TopK })},
		{"repetition-penalty", "repetition_penalty", "repetition_penalty", "penalty on tokens already present (1: off)", num(func(c *Config) *float64 { return &c.RepetitionPenalty })},
		{"max-new-tokens", "max_new_tokens", "max_completion_length", "most tokens per completion", integer(func(c *Config) *int { return &c.Objective.MaxCompletionLength })},
		{"loss-type", "", "loss_type", "loss aggregation: grpo, bnpo, dr_grpo or dapo", str(func(c *Config) *string { return &c.Objective.LossType })},
		{"beta", "kld_beta", "beta", "weight of the KL penalty to the reference (0: off)", num(func(c *Config) *float64 { return &c.Objective.Beta })},
		{"epsilon-low", "clip_low_eps", "epsilon", "lower clipping range ε_low", num(func(c *Config) *float64 { return &c.Objective.EpsilonLow })},
		{"epsilon-high", "clip_high_eps", "epsilon_high", "upper clipping range ε_high", num(func(c *Config) *float64 { return &c.Objective.EpsilonHigh })},
		{"scale-rewards", "", "scale_rewards", "advantage scaling: group, batch or none", str(func(c *Config) *string { return &c.Objective.ScaleRewards })},
		{"mask-truncated-completions", "", "mask_truncated_completions", "drop completions cut at max-new-tokens from the loss", boolean(func(c *Config) *bool { return &c.Objective.MaskTruncatedCompletions })},
		{"importance-sampling-correction", "", "importance_sampling_correction", "weigh tokens by min(exp(logp_old − logp_engine), cap)", boolean(func(c *Config) *bool { return &c.Objective.ImportanceSamplingCorrection })},
		{"importance-sampling-cap", "", "importance_sampling_cap", "cap of the importance weight", num(func(c *Config) *float64 { return &c.Objective.ImportanceSamplingCap })},
		{"learning-rate", "lr", "learning_rate", "peak learning rate", num(func(c *Config) *float64 { return &c.Schedule.LearningRate })},
		{"last-lr", "last_lr", "last_learning_rate", "final learning rate of the linear and cosine schedules", num(func(c *Config) *float64 { return &c.Schedule.LastLearningRate })},
		{"lr-scheduler-type", "", "lr_scheduler_type", "learning-rate schedule: linear, constant or cosine", str(func(c *Config) *string { return &c.Schedule.Kind })},
		{"warmup-steps", "", "warmup_steps", "steps of linear warm-up from 0", integer(func(c *Config) *int { return &c.Schedule.WarmupSteps })},
		{"weight-decay", "weight_decay", "weight_decay", "AdamW's decoupled weight decay", num(func(c *Config) *float64 { return &c.Optimizer.WeightDecay })},
		{"adam-beta1", "", "adam_beta1", "AdamW's β1", num(func(c *Config) *float64 { return &c.Optimizer.Beta1 })},
		{"adam-beta2", "", "adam_beta2", "AdamW's β2", num(func(c *Config) *float64 { return &c.Optimizer.Beta2 })},
		{"adam-epsilon", "", "adam_epsilon", "AdamW's ε", num(func(c *Config) *float64 { return &c.Optimizer.Epsilon })},
		{"max-grad-norm", "", "max_grad_norm", "clip gradients to this global norm (0: off)", num(func(c *Config) *float64 { return &c.Optimizer.MaxGradNorm })},
		{"lora-r", "", "lora_r", "LoRA rank", integer(func(c *Config) *int { return &c.LoRARank })},
		{"lora-alpha", "", "lora_alpha", "LoRA alpha", num(func(c *Config) *float64 { return &c.LoRAAlpha })},
		{"lora-dropout", "", "lora_dropout", "dropout on the LoRA branch", num(func(c *Config) *float64 { return &c.LoRADropout })},
		{"lora-target-modules", "", "lora_target_modules", "comma-separated layers to adapt", func(c *Config) flag.Value { return (*listValue)(&c.LoRATargetModules) }},
		{"use-rslora", "", "use_rslora", "rank-stabilized LoRA scaling alpha/√r", boolean(func(c *Config) *bool { return &c.UseRSLoRA })},
		{"save-steps", "", "save_steps", "checkpoint every this many steps (0: only the evenly spaced ones)", integer(func(c *Config) *int { return &c.SaveSteps })},
		{"save-number", "save_number", "save_number", "evenly spaced checkpoints kept besides the latest", integer(func(c *Config) *int { return &c.SaveNumber })},
	}
}

// seedKeys maps the seed's flag names (and mmft's) to YAML keys, for hints.
func seedKeys() map[string]string {
	m := map[string]string{}
	for _, f := range configFlags() {
		if f.alias != "" && f.alias != f.key {
			m[f.alias] = f.key
		}
		if f.name != f.key {
			m[f.name] = f.key
		}
	}
	return m
}

// ConfigFlag is the name of the flag that reads a YAML configuration file.
const ConfigFlag = "config"

// RegisterFlags registers on fs a flag for every field of c, under mmft's
// name (--learning-rate style) and the seed's (--lr, --num_gens, --kld_beta,
// --grad_accumul, …), both writing into c as they are parsed, plus
// --config FILE, which reads a YAML file into c. Flags given explicitly win
// over the file wherever they stand on the command line. Call Validate after
// parsing.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	r := &recorder{c: c}
	for _, f := range configFlags() {
		v := f.value(c)
		usage := fmt.Sprintf("%s (YAML %s)", f.usage, f.key)
		fs.Var(&recorded{Value: v, r: r, name: f.name}, f.name, usage)
		if f.alias != "" && f.alias != f.name {
			fs.Var(&recorded{Value: v, r: r, name: f.alias}, f.alias, "the seed's name of --"+f.name)
		}
	}
	fs.Var(&configFile{r: r}, ConfigFlag, "YAML file of settings (keys as TRL's GRPOConfig: learning_rate, num_generations, beta, …); flags override it")
}

// recorder remembers the flags set explicitly so that a --config file read
// later does not undo them.
type recorder struct {
	c   *Config
	set []struct {
		v flag.Value
		s string
	}
}

// recorded is a field's flag.Value that records every explicit Set.
type recorded struct {
	flag.Value
	r    *recorder
	name string
}

// String returns the field's value ("" for the zero recorded the flag package makes to find defaults).
func (f *recorded) String() string {
	if f == nil || f.Value == nil {
		return ""
	}
	return f.Value.String()
}

// Set sets the field and records the flag as given explicitly.
func (f *recorded) Set(s string) error {
	if err := f.Value.Set(s); err != nil {
		return err
	}
	f.r.set = append(f.r.set, struct {
		v flag.Value
		s string
	}{f.Value, s})
	return nil
}

// IsBoolFlag lets boolean fields be given as --flag without a value.
func (f *recorded) IsBoolFlag() bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// configFile is the --config flag.
type configFile struct {
	r    *recorder
	path string
}

func (f *configFile) String() string { return f.path }

// Set reads the file into the configuration, then re-applies the flags given so far.
func (f *configFile) Set(path string) error {
	if err := f.r.c.LoadFile(path); err != nil {
		return err
	}
	f.path = path
	for _, s := range f.r.set {
		if err := s.v.Set(s.s); err != nil {
			return err
		}
	}
	return nil
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type floatValue float64

func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*v = floatValue(f)
	return nil
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	i, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	*v = intValue(i)
	return nil
}

type uint64Value uint64

func (v *uint64Value) String() string { return strconv.FormatUint(uint64(*v), 10) }
func (v *uint64Value) Set(s string) error {
	i, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a non-negative integer", s)
	}
	*v = uint64Value(i)
	return nil
}

type boolValue bool

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) IsBoolFlag() bool { return true }

type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	*v = out
	return nil
}
