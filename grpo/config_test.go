package grpo

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultConfigIsValidAndQuiet(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("default config warns: %q", w)
	}
	if lc := c.LoRAConfig(); lc.R != 4 || lc.Alpha != 16 || lc.Dropout != 0.05 || lc.Validate() != nil {
		t.Errorf("LoRAConfig = %+v (validate %v), want r 4 alpha 16 dropout 0.05", lc, lc.Validate())
	}
}

// Each bad field gives one error naming it (YAML key and the seed's flag).
func TestConfigValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.OutputDir = " " }, "output_dir"},
		{func(c *Config) { c.BatchSize = 0 }, "batch_size (--batch_size) 0"},
		{func(c *Config) { c.Epochs = 0 }, "epochs (--epochs)"},
		{func(c *Config) { c.GradientAccumulationSteps = 0 }, "gradient_accumulation_steps (--grad_accumul)"},
		{func(c *Config) { c.NumIterations = 0 }, "num_iterations (--grpo_iters)"},
		{func(c *Config) { c.NumGenerations = 1 }, "num_generations (--num_gens) 1"},
		{func(c *Config) { c.Temperature = -1 }, "temperature (--temperature)"},
		{func(c *Config) { c.TopP = 0 }, "top_p (--top_p)"},
		{func(c *Config) { c.TopP = 1.5 }, "top_p (--top_p)"},
		{func(c *Config) { c.TopK = -2 }, "top_k (--top_k)"},
		{func(c *Config) { c.RepetitionPenalty = 0 }, "repetition_penalty (--repetition_penalty)"},
		{func(c *Config) { c.LoRARank = 0 }, "lora_r"},
		{func(c *Config) { c.LoRAAlpha = 0 }, "lora_alpha"},
		{func(c *Config) { c.LoRADropout = 1 }, "lora_dropout"},
		{func(c *Config) { c.LoRATargetModules = nil }, "lora_target_modules"},
		{func(c *Config) { c.LoRATargetModules = []string{"q_proj", ""} }, "lora_target_modules holds an empty name"},
		{func(c *Config) { c.SaveSteps = -1 }, "save_steps"},
		{func(c *Config) { c.SaveNumber = -1 }, "save_number (--save_number)"},
		{func(c *Config) { c.Objective.LossType = "ppo" }, `loss_type "ppo"`},
		{func(c *Config) { c.Objective.Beta = -0.1 }, "beta (--kld_beta)"},
		{func(c *Config) { c.Objective.EpsilonLow = 1 }, "epsilon (--clip_low_eps)"},
		{func(c *Config) { c.Objective.EpsilonHigh = -1 }, "epsilon_high (--clip_high_eps)"},
		{func(c *Config) { c.Objective.ScaleRewards = "global" }, "scale_rewards"},
		{func(c *Config) { c.Objective.MaxCompletionLength = 0 }, "max_completion_length (--max_new_tokens)"},
		{func(c *Config) {
			c.Objective.ImportanceSamplingCorrection = true
			c.Objective.ImportanceSamplingCap = 0
		}, "importance_sampling_cap"},
		{func(c *Config) { c.Optimizer.WeightDecay = -1 }, "weight_decay (--weight_decay)"},
		{func(c *Config) { c.Schedule.LearningRate = 0 }, "learning_rate (--lr)"},
		{func(c *Config) { c.Schedule.LastLearningRate = -1 }, "last_learning_rate (--last_lr)"},
		{func(c *Config) { c.Schedule.Kind = "step" }, "lr_scheduler_type"},
	} {
		cfg := DefaultConfig()
		c.mut(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Count(err.Error(), "grpo:") != 1 {
			t.Errorf("Validate = %v; want one error containing %q", err, c.want)
		}
	}
}

// The seed's sampling defaults (top_k 1, top_p 0.001, temperature 0.01) each warn.
func TestConfigWarnings(t *testing.T) {
	c := DefaultConfig()
	c.TopK, c.TopP, c.Temperature = 1, 0.001, 0.01
	w := c.Warnings()
	if len(w) != 3 || !strings.Contains(w[0], "top_k") || !strings.Contains(w[1], "top_p") || !strings.Contains(w[2], "temperature") {
		t.Fatalf("Warnings = %q; want top_k, top_p and temperature", w)
	}
	if !strings.Contains(w[0], "identical") {
		t.Errorf("the warning does not say why: %q", w[0])
	}
	c.NumGenerations = 1
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("one generation per prompt cannot be identical to another, yet: %q", w)
	}
	c = DefaultConfig()
	c.Temperature = 0.7
	c.TopP = 0.95
	c.TopK = 50
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("ordinary sampling warns: %q", w)
	}
}

// The seed's command line, flag for flag, lands in the right fields.
func TestRegisterFlagsSeedNames(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	c.RegisterFlags(fs)
	args := strings.Fields(`--model_name m --batch_size 3 --epochs 2 --lr 1e-5 --last_lr 2e-6 --weight_decay 0.01
		--grad_accumul 4 --save_number 5 --num_gens 8 --repetition_penalty 1.1 --temperature 0.9 --top_p 0.95
		--top_k 50 --max_new_tokens 256 --grpo_iters 2 --clip_high_eps 0.28 --clip_low_eps 0.2 --kld_beta 0.04`)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.ModelName, want.BatchSize, want.Epochs = "m", 3, 2
	want.Schedule.LearningRate, want.Schedule.LastLearningRate, want.Optimizer.WeightDecay = 1e-5, 2e-6, 0.01
	want.GradientAccumulationSteps, want.SaveNumber, want.NumGenerations = 4, 5, 8
	want.RepetitionPenalty, want.Temperature, want.TopP, want.TopK = 1.1, 0.9, 0.95, 50
	want.Objective.MaxCompletionLength, want.NumIterations = 256, 2
	want.Objective.EpsilonHigh, want.Objective.EpsilonLow, want.Objective.Beta = 0.28, 0.2, 0.04
	if !reflect.DeepEqual(c, want) {
		t.Errorf("after the seed's flags:\n got %+v\nwant %+v", c, want)
	}
	// mmft's names reach the same fields.
	c2 := DefaultConfig()
	fs2 := flag.NewFlagSet("train", flag.ContinueOnError)
	c2.RegisterFlags(fs2)
	args2 := strings.Fields(`--model m --batch-size 3 --epochs 2 --learning-rate 1e-5 --last-lr 2e-6 --weight-decay 0.01
		--gradient-accumulation-steps 4 --save-number 5 --num-generations 8 --repetition-penalty 1.1 --temperature 0.9 --top-p 0.95
		--top-k 50 --max-new-tokens 256 --num-iterations 2 --epsilon-high 0.28 --epsilon-low 0.2 --beta 0.04`)
	if err := fs2.Parse(args2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c2, want) {
		t.Errorf("after mmft's flags:\n got %+v\nwant %+v", c2, want)
	}
	// Bad values are refused by the flag, booleans need no value, lists split on commas.
	c3 := DefaultConfig()
	fs3 := flag.NewFlagSet("train", flag.ContinueOnError)
	fs3.SetOutput(&bytes.Buffer{})
	c3.RegisterFlags(fs3)
	if err := fs3.Parse([]string{"--num_gens", "four"}); err == nil || !strings.Contains(err.Error(), `"four" is not an integer`) {
		t.Errorf("--num_gens four: %v", err)
	}
	if err := fs3.Parse([]string{"--mask-truncated-completions", "--lora-target-modules", "q_proj, v_proj", "--seed", "7"}); err != nil {
		t.Fatal(err)
	}
	if !c3.Objective.MaskTruncatedCompletions || !reflect.DeepEqual(c3.LoRATargetModules, []string{"q_proj", "v_proj"}) || c3.Seed != 7 {
		t.Errorf("bool/list/uint flags: %+v", c3)
	}
	// --help lists both names without complaining about zero values.
	var help bytes.Buffer
	fs3.SetOutput(&help)
	fs3.PrintDefaults()
	for _, s := range []string{"-num_gens", "-num-generations", "-kld_beta", "-config", "YAML learning_rate"} {
		if !strings.Contains(help.String(), s) {
			t.Errorf("help lacks %q", s)
		}
	}
	if strings.Contains(help.String(), "panic") {
		t.Errorf("help reports a panic:\n%s", help.String())
	}
}

// A YAML file is read over the defaults; flags win over it wherever they
// stand; unknown keys and bad values are clear errors.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.yaml")
	yamlText := `model_name: Qwen/Qwen2-VL-2B-Instruct
learning_rate: 2.0e-5
num_generations: 8
beta: 0.04
epsilon: 0.2
epsilon_high: 0.28
loss_type: dapo
lr_scheduler_type: cosine
warmup_steps: 10
lora_target_modules: [q_proj, v_proj]
max_grad_norm: 0.5
`
	if err := os.WriteFile(path, []byte(yamlText), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Schedule.LearningRate != 2e-5 || c.NumGenerations != 8 || c.Objective.Beta != 0.04 || c.Objective.LossType != "dapo" ||
		c.Schedule.Kind != "cosine" || c.Schedule.WarmupSteps != 10 || c.Optimizer.MaxGradNorm != 0.5 ||
		!reflect.DeepEqual(c.LoRATargetModules, []string{"q_proj", "v_proj"}) || c.BatchSize != 2 {
		t.Errorf("LoadConfig = %+v", c)
	}
	// Round trip through YAML.
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back := Config{}
	if err := back.ParseYAML(out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("YAML round trip:\n got %+v\nwant %+v\n%s", back, c, out)
	}
	// Flags before and after --config both win over the file.
	for _, args := range [][]string{
		{"--num_gens", "6", "--config", path, "--lr", "3e-6"},
		{"--lr", "3e-6", "--config", path, "--num_gens", "6"},
	} {
		c := DefaultConfig()
		fs := flag.NewFlagSet("train", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if c.NumGenerations != 6 || c.Schedule.LearningRate != 3e-6 || c.Objective.LossType != "dapo" {
			t.Errorf("%q: num_generations %d learning_rate %v loss_type %s; want 6, 3e-6 and the file's dapo", args, c.NumGenerations, c.Schedule.LearningRate, c.Objective.LossType)
		}
	}
	for _, bad := range []struct{ text, want string }{
		{"lr: 1e-5\n", "field lr not found"},
		{"lr: 1e-5\n", "the YAML key for the seed's --lr is learning_rate"},
		{"num_gens: 4\n", "num_generations"},
		{"learning_rat: 1\n", "keys are TRL's names"},
		{"num_generations: four\n", "num_generations"},
		{"num_generations: 1\n", "num_generations (--num_gens) 1"},
		{"learning_rate: [1\n", "yaml"},
	} {
		p := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(p, []byte(bad.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("LoadConfig(%q) = %v; want an error naming the file and containing %q", bad.text, err, bad.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing file: %v", err)
	}
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	c2 := DefaultConfig()
	c2.RegisterFlags(fs)
	if err := fs.Parse([]string{"--config", filepath.Join(dir, "absent.yaml")}); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("--config absent: %v", err)
	}
}

// Every YAML key the flags name exists in the config (the table cannot drift from the struct).
func TestFlagKeysExist(t *testing.T) {
	c := DefaultConfig()
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range configFlags() {
		if !strings.Contains(string(out), "\n"+f.key+":") && !strings.HasPrefix(string(out), f.key+":") {
			t.Errorf("flag --%s names YAML key %s, which the config does not have", f.name, f.key)
		}
	}
	seed := []string{"model_name", "batch_size", "epochs", "lr", "last_lr", "weight_decay", "grad_accumul", "save_number", "num_gens",
		"repetition_penalty", "temperature", "top_p", "top_k", "max_new_tokens", "grpo_iters", "clip_high_eps", "clip_low_eps", "kld_beta"}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	for _, s := range seed {
		if fs.Lookup(s) == nil {
			t.Errorf("the seed's --%s is not registered", s)
		}
	}
}
