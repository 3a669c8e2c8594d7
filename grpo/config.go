package grpo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mmft-go/mmft/lora"
)

// Config holds every hyper-parameter of a GRPO training run. YAML keys
// follow TRL's GRPOConfig where it has the setting; flags (RegisterFlags)
// accept both mmft's names and the seed's (--lr, --num_gens, --kld_beta, …).
type Config struct {
	// ModelName is the base model: a Hub id or a local folder (seed:
	// --model_name). Empty means the command's built-in default.
	ModelName string `yaml:"model_name"`
	// OutputDir receives checkpoints, adapters and logs.
	OutputDir string `yaml:"output_dir"`
	// Seed seeds every random stream of the run (sampling, data order, dropout, LoRA init).
	Seed uint64 `yaml:"seed"`

	// BatchSize is the number of prompts per rollout batch; each gets
	// NumGenerations completions (seed: --batch_size).
	BatchSize int `yaml:"batch_size"`
	// Epochs is the number of passes over the training data.
	Epochs int `yaml:"epochs"`
	// GradientAccumulationSteps is the number of micro-batches whose
	// gradients are summed before an optimizer update (seed: --grad_accumul).
	GradientAccumulationSteps int `yaml:"gradient_accumulation_steps"`
	// NumIterations is μ, the optimizer updates per rollout batch, with
	// logp_old fixed at rollout time (seed: --grpo_iters).
	NumIterations int `yaml:"num_iterations"`

	// NumGenerations is the group size: completions sampled per prompt (seed: --num_gens).
	NumGenerations int `yaml:"num_generations"`
	// Temperature divides the logits before sampling; 0 is greedy.
	Temperature float64 `yaml:"temperature"`
	// TopP keeps the smallest set of tokens whose probability reaches it (1: off).
	TopP float64 `yaml:"top_p"`
	// TopK keeps the k most probable tokens (0: off).
	TopK int `yaml:"top_k"`
	// RepetitionPenalty divides the logits of tokens already present (1: off).
	RepetitionPenalty float64 `yaml:"repetition_penalty"`

	// Objective is the loss (loss_type, beta, epsilon, epsilon_high, scale_rewards, …).
	Objective Objective `yaml:",inline"`
	// Optimizer is AdamW's (adam_beta1, adam_beta2, adam_epsilon, weight_decay, max_grad_norm).
	Optimizer AdamW `yaml:",inline"`
	// Schedule is the learning-rate schedule (lr_scheduler_type, learning_rate, last_learning_rate, warmup_steps).
	Schedule ScheduleConfig `yaml:",inline"`

	// LoRARank is the adapters' rank r.
	LoRARank int `yaml:"lora_r"`
	// LoRAAlpha is lora_alpha; the update is scaled by alpha/r (alpha/√r with UseRSLoRA).
	LoRAAlpha float64 `yaml:"lora_alpha"`
	// LoRADropout is the dropout probability on the LoRA branch's input.
	LoRADropout float64 `yaml:"lora_dropout"`
	// LoRATargetModules are the adapted layers (PEFT's target_modules names).
	LoRATargetModules []string `yaml:"lora_target_modules"`
	// UseRSLoRA selects rank-stabilized scaling alpha/√r.
	UseRSLoRA bool `yaml:"use_rslora"`

	// SaveSteps writes a checkpoint every this many steps (0: only at the
	// evenly spaced points and at the end).
	SaveSteps int `yaml:"save_steps"`
	// SaveNumber is how many evenly spaced checkpoints are kept, besides the
	// latest (seed: --save_number); see Retention.
	SaveNumber int `yaml:"save_number"`
}

// MaxCompletionsPerStep bounds batch_size × num_generations: the completions
// of one step are held on the host with their log-probs (the seed's setting
// is 2 × 4; a 64 × 8 step is 512).
const MaxCompletionsPerStep = 65536

// DefaultTargetModules are the seed's LoRA targets: the seven projections of
// every language-model layer.
var DefaultTargetModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// DefaultConfig returns the seed's training settings (mmllm-FT: batch 2,
// 1 epoch, AdamW without weight decay, linear 5e-6 → 1e-6, 4 generations,
// 4 GRPO iterations, ε 0.3/0.3, β 0.5, LoRA r 4 / alpha 16 / dropout 0.05,
// 512 new tokens, 10 checkpoints, seed 42) except for sampling: the seed's
// temperature 0.01, top_p 0.001 and top_k 1 make every group's completions
// identical (see Warnings), so sampling defaults to temperature 1 with
// top-p and top-k off. Gradients are clipped to norm 1 (TRL's default; the
// seed does not clip).
func DefaultConfig() Config {
	opt := DefaultAdamW()
	opt.WeightDecay = 0
	opt.MaxGradNorm = 1
	return Config{
		ModelName:                 "Qwen/Qwen2-VL-2B-Instruct",
		OutputDir:                 "ckpt",
		Seed:                      42,
		BatchSize:                 2,
		Epochs:                    1,
		GradientAccumulationSteps: 1,
		NumIterations:             4,
		NumGenerations:            4,
		Temperature:               1,
		TopP:                      1,
		TopK:                      0,
		RepetitionPenalty:         1,
		Objective:                 DefaultObjective(),
		Optimizer:                 opt,
		Schedule:                  ScheduleConfig{Kind: ScheduleLinear, LearningRate: 5e-6, LastLearningRate: 1e-6},
		LoRARank:                  4,
		LoRAAlpha:                 16,
		LoRADropout:               0.05,
		LoRATargetModules:         append([]string(nil), DefaultTargetModules...),
		SaveNumber:                10,
	}
}

// Validate checks every field and returns one error naming the first bad
// one (its YAML key and, where it has one, the seed's flag).
func (c *Config) Validate() error {
	switch {
	case strings.TrimSpace(c.OutputDir) == "":
		return errors.New("grpo: output_dir is empty; give the folder for checkpoints and logs")
	case c.BatchSize < 1:
		return fmt.Errorf("grpo: batch_size (--batch_size) %d: must be at least 1 prompt", c.BatchSize)
	case c.Epochs < 1:
		return fmt.Errorf("grpo: epochs (--epochs) %d: must be at least 1", c.Epochs)
	case c.GradientAccumulationSteps < 1:
		return fmt.Errorf("grpo: gradient_accumulation_steps (--grad_accumul) %d: must be at least 1", c.GradientAccumulationSteps)
	case c.NumIterations < 1:
		return fmt.Errorf("grpo: num_iterations (--grpo_iters) %d: must be at least 1", c.NumIterations)
	case c.BatchSize > MaxCompletionsPerStep || c.NumGenerations > MaxCompletionsPerStep || c.BatchSize*c.NumGenerations > MaxCompletionsPerStep:
		return fmt.Errorf("grpo: batch_size × num_generations = %d × %d completions per step; at most %d are sampled in one step (lower --batch-size or --num-generations)",
			c.BatchSize, c.NumGenerations, MaxCompletionsPerStep)
	case c.NumGenerations < 2:
		return fmt.Errorf("grpo: num_generations (--num_gens) %d: GRPO compares completions within a group and needs at least 2", c.NumGenerations)
	case !finite(c.Temperature) || c.Temperature < 0:
		return fmt.Errorf("grpo: temperature (--temperature) %v: must be a number ≥ 0 (0 is greedy)", c.Temperature)
	case !finite(c.TopP) || c.TopP <= 0 || c.TopP > 1:
		return fmt.Errorf("grpo: top_p (--top_p) %v: must be in (0, 1] (1 turns it off)", c.TopP)
	case c.TopK < 0:
		return fmt.Errorf("grpo: top_k (--top_k) %d: must be ≥ 0 (0 turns it off)", c.TopK)
	case !finite(c.RepetitionPenalty) || c.RepetitionPenalty <= 0:
		return fmt.Errorf("grpo: repetition_penalty (--repetition_penalty) %v: must be a positive number (1 turns it off)", c.RepetitionPenalty)
	case c.LoRARank < 1:
		return fmt.Errorf("grpo: lora_r %d: the LoRA rank must be at least 1", c.LoRARank)
	case !finite(c.LoRAAlpha) || c.LoRAAlpha <= 0:
		return fmt.Errorf("grpo: lora_alpha %v: must be a positive number", c.LoRAAlpha)
	case !finite(c.LoRADropout) || c.LoRADropout < 0 || c.LoRADropout >= 1:
		return fmt.Errorf("grpo: lora_dropout %v: must be in [0, 1)", c.LoRADropout)
	case len(c.LoRATargetModules) == 0:
		return fmt.Errorf("grpo: lora_target_modules is empty; name the layers to adapt, e.g. %s", strings.Join(DefaultTargetModules, ","))
	case c.SaveSteps < 0:
		return fmt.Errorf("grpo: save_steps %d: must be ≥ 0 (0: only the evenly spaced checkpoints)", c.SaveSteps)
	case c.SaveNumber < 0:
		return fmt.Errorf("grpo: save_number (--save_number) %d: must be ≥ 0", c.SaveNumber)
	}
	for _, m := range c.LoRATargetModules {
		if strings.TrimSpace(m) == "" {
			return errors.New("grpo: lora_target_modules holds an empty name")
		}
	}
	if err := c.Objective.Validate(); err != nil {
		return err
	}
	if err := c.Optimizer.Validate(); err != nil {
		return err
	}
	return c.Schedule.Validate()
}

// nearGreedyTemperature is the temperature at or below which sampling is
// practically greedy.
const nearGreedyTemperature = 0.05

// Warnings lists the settings that are valid but defeat GRPO: sampling so
// nearly greedy that a group's completions come out identical, so every
// advantage is zero and nothing is learnt (the seed's top_k=1, top_p=0.001,
// temperature=0.01 do this).
func (c *Config) Warnings() []string {
	if c.NumGenerations <= 1 {
		return nil
	}
	var w []string
	effect := fmt.Sprintf("the %d completions of a group come out identical, their advantages are 0 and the run learns nothing", c.NumGenerations)
	if c.TopK == 1 {
		w = append(w, fmt.Sprintf("top_k (--top_k) is 1: sampling is greedy, so %s; use 0 (off) or a larger k such as 50", effect))
	}
	if c.TopP <= 0.01 {
		w = append(w, fmt.Sprintf("top_p (--top_p) is %v: only the most probable token survives, so %s; use 1 (off) or e.g. 0.95", c.TopP, effect))
	}
	if c.Temperature <= nearGreedyTemperature {
		w = append(w, fmt.Sprintf("temperature (--temperature) is %v: sampling is practically greedy, so %s; use e.g. 1.0", c.Temperature, effect))
	}
	return w
}

// LoRAConfig returns the PEFT configuration of the adapters the run trains.
func (c *Config) LoRAConfig() *lora.Config {
	lc := lora.NewConfig(c.LoRARank, c.LoRAAlpha, c.LoRATargetModules...)
	lc.Dropout = c.LoRADropout
	lc.UseRSLoRA = c.UseRSLoRA
	lc.TaskType = "CAUSAL_LM"
	lc.BaseModelNameOrPath = c.ModelName
	return lc
}

// MaxConfigFileBytes bounds the size of a configuration file.
const MaxConfigFileBytes = 1 << 20

// LoadConfig returns DefaultConfig overridden by the YAML file at path, validated.
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	if err := c.LoadFile(path); err != nil {
		return c, err
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadFile overrides c with the keys of the YAML file at path; keys the file
// does not have keep their values. Unknown keys are refused (with the right
// key when a seed flag name was used).
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("grpo: config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigFileBytes+1))
	if err != nil {
		return fmt.Errorf("grpo: config %s: %w", path, err)
	}
	if len(data) > MaxConfigFileBytes {
		return fmt.Errorf("grpo: config %s is larger than %d bytes; is it the right file?", path, MaxConfigFileBytes)
	}
	if err := c.ParseYAML(data); err != nil {
		return fmt.Errorf("grpo: config %s: %w", path, err)
	}
	return nil
}

// unknownField finds the key in yaml.v3's "field X not found in type" message.
var unknownField = regexp.MustCompile(`field (\S+) not found in type`)

// ParseYAML overrides c with the keys of a YAML document (see LoadFile).
func (c *Config) ParseYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	next := *c
	if err := dec.Decode(&next); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file changes nothing
		}
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			if key, ok := seedKeys()[m[1]]; ok {
				return fmt.Errorf("%w (the YAML key for the seed's --%s is %s)", err, m[1], key)
			}
			return fmt.Errorf("%w (keys are TRL's names, e.g. learning_rate, num_generations, beta)", err)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return namedTypeErrors(data, te)
		}
		return err
	}
	*c = next
	return nil
}

// typeErrorLine finds the line number in one of yaml.v3's type errors.
var typeErrorLine = regexp.MustCompile(`^line (\d+): `)

// namedTypeErrors rewrites yaml.v3's "line N: cannot unmarshal …" errors to
// name the key found on line N.
func namedTypeErrors(data []byte, te *yaml.TypeError) error {
	var doc yaml.Node
	keys := map[string]string{}
	if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			keys[strconv.Itoa(m.Content[i].Line)] = m.Content[i].Value
		}
	}
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = e
		if l := typeErrorLine.FindStringSubmatch(e); l != nil && keys[l[1]] != "" {
			msgs[i] = fmt.Sprintf("%s (key %s)", e, keys[l[1]])
		}
	}
	return fmt.Errorf("bad value: %s", strings.Join(msgs, "; "))
}

// YAML returns c as a YAML document that ParseYAML reads back.
func (c *Config) YAML() ([]byte, error) {
	return yaml.Marshal(c)
}
