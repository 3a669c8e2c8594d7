package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// ConfigFile is the name of PEFT's adapter configuration file in an adapter folder.
const ConfigFile = "adapter_config.json"

// Config is PEFT's LoraConfig, as read from and written to adapter_config.json.
// Fields PEFT has but this package does not interpret are kept as they were
// read and written back unchanged; those that would change the adapter's math
// when set (DoRA, LoRA bias, aLoRA, ...) are refused by Validate.
type Config struct {
	// R is the default rank r.
	R int
	// Alpha is the default lora_alpha.
	Alpha float64
	// TargetModules selects the adapted layers (PEFT's target_modules):
	// a list of names matched as whole names or name suffixes, a regular
	// expression matched against whole module names, or "all-linear".
	TargetModules Modules
	// ExcludeModules removes layers from the targets (PEFT's exclude_modules), same forms.
	ExcludeModules Modules
	// Dropout is lora_dropout, the probability of dropping an element of the
	// LoRA branch's input during training (applied by the trainer, see Apply).
	Dropout float64
	// Bias is PEFT's bias option; only "none" is supported.
	Bias string
	// UseRSLoRA selects rank-stabilized scaling alpha/√r instead of alpha/r.
	UseRSLoRA bool
	// UseDoRA is PEFT's use_dora; DoRA is not supported and Validate refuses it.
	UseDoRA bool
	// FanInFanOut says the base weights are stored [in, out] (GPT-2's Conv1D).
	// PEFT turns it off (with a warning) for ordinary linear layers, and so
	// does NewAdapter: Qwen2-VL's layers, and Merge, use [out, in].
	FanInFanOut bool
	// ModulesToSave lists modules PEFT trains and saves in full. It is recorded
	// and excluded from the targets, as PEFT does; NewAdapter refuses it and
	// Load refuses adapters that hold such full weights.
	ModulesToSave []string
	// LayersToTransform restricts list-form targets to these layer indices (nil: all layers).
	LayersToTransform []int
	// LayersPattern names the module list holding the layers (e.g. "layers");
	// empty means the first numbered component of the name.
	LayersPattern []string
	// RankPattern overrides r per module: the first rule whose pattern matches
	// the end of the module name wins (PEFT's rank_pattern, in file order).
	RankPattern []PatternRule
	// AlphaPattern overrides lora_alpha per module, like RankPattern.
	AlphaPattern []PatternRule
	// InitLoRAWeights is init_lora_weights: "true" (A Kaiming-uniform, B zero),
	// "gaussian" (A normal with std 1/r, B zero), "false" (both as
	// torch.nn.Linear's default init), or another PEFT initialization name.
	InitLoRAWeights string
	// BaseModelNameOrPath is base_model_name_or_path ("" is written as null).
	BaseModelNameOrPath string
	// TaskType is task_type, e.g. "CAUSAL_LM" ("" is written as null).
	TaskType string
	// InferenceMode is inference_mode.
	InferenceMode bool

	// raw holds every field as read, so that fields not interpreted here, and
	// fields whose value did not change, are written back byte for byte.
	raw map[string]json.RawMessage
}

// Modules is target_modules or exclude_modules in one of PEFT's two forms.
// Both fields empty means unset (null).
type Modules struct {
	// Pattern, when non-empty, is a regular expression (Python syntax) that
	// must match a whole module name; "all-linear" is PEFT's shorthand for
	// every linear layer but the output head.
	Pattern string
	// Names are module names, each matching a module whose name equals it or
	// ends with "." + it.
	Names []string
}

// IsSet reports whether m selects anything (is not null).
func (m Modules) IsSet() bool { return m.Pattern != "" || m.Names != nil }

// IsAllLinear reports whether m is PEFT's "all-linear" shorthand.
func (m Modules) IsAllLinear() bool { return strings.EqualFold(m.Pattern, allLinear) }

// allLinear is PEFT's shorthand for every linear layer but the output head.
const allLinear = "all-linear"

// PatternRule is one entry of rank_pattern or alpha_pattern: a regular
// expression (Python syntax) matched against the end of a module name, after a
// dot or at its start, and the value it sets.
type PatternRule struct {
	Pattern string
	Value   float64
}

// NewConfig returns a configuration with PEFT's defaults (bias "none",
// init_lora_weights true, no dropout) for rank r, lora_alpha alpha and the
// given target module names (a single "all-linear" is PEFT's shorthand).
func NewConfig(r int, alpha float64, targets ...string) *Config {
	c := &Config{R: r, Alpha: alpha, Bias: "none", InitLoRAWeights: "true"}
	if len(targets) == 1 && strings.EqualFold(targets[0], allLinear) {
		c.TargetModules.Pattern = targets[0]
	} else {
		c.TargetModules.Names = append([]string{}, targets...)
	}
	return c
}

// Scale returns the factor applied to B·A for a module of rank r and alpha:
// alpha/r, or alpha/√r with use_rslora.
func (c *Config) Scale(r int, alpha float64) float64 {
	if c.UseRSLoRA {
		return alpha / math.Sqrt(float64(r))
	}
	return alpha / float64(r)
}

// ReadConfig reads and validates adapter_config.json from an adapter folder
// (or the file itself when path names a file).
func ReadConfig(path string) (*Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ConfigFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lora: reading adapter config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("lora: %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates the JSON of adapter_config.json.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("adapter config is not a JSON object: %w", err)
	}
	if raw == nil {
		return nil, errors.New("adapter config is null, expected a JSON object")
	}
	var pt string
	if v, ok := raw["peft_type"]; !ok || json.Unmarshal(v, &pt) != nil || pt != "LORA" {
		got := "missing"
		if ok {
			got = string(v)
		}
		return nil, fmt.Errorf(`adapter config has peft_type %s: only LoRA adapters (peft_type "LORA") are supported`, got)
	}
	// PEFT's defaults for fields the file leaves out.
	c := &Config{R: 8, Alpha: 8, Bias: "none", InitLoRAWeights: "true", raw: raw}
	for _, f := range configFields {
		v, ok := raw[f.key]
		if !ok {
			continue
		}
		if err := f.decode(c, v); err != nil {
			return nil, fmt.Errorf("adapter config field %q (%s): %w", f.key, truncate(string(v), 80), err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks the configuration for values PEFT refuses and for options
// this package does not implement, with a message naming the field and the fix.
func (c *Config) Validate() error {
	if c.R <= 0 {
		return fmt.Errorf("adapter config: r = %d, the LoRA rank must be a positive integer (e.g. 8)", c.R)
	}
	if math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) {
		return fmt.Errorf("adapter config: lora_alpha = %v must be a finite number", c.Alpha)
	}
	if c.Dropout < 0 || c.Dropout >= 1 || math.IsNaN(c.Dropout) {
		return fmt.Errorf("adapter config: lora_dropout = %v must be in [0, 1)", c.Dropout)
	}
	if c.Bias != "none" {
		return fmt.Errorf("adapter config: bias %q is not supported: mmft trains the LoRA weights only; set bias to \"none\"", c.Bias)
	}
	if c.UseDoRA {
		return errors.New("adapter config: use_dora is not supported (DoRA adapters need magnitude vectors mmft does not implement); set use_dora to false")
	}
	if !c.TargetModules.IsSet() {
		return errors.New("adapter config: target_modules is not set; name the layers to adapt, e.g. [\"q_proj\", \"v_proj\"] or \"all-linear\" (PEFT has no default for Qwen2-VL)")
	}
	if c.TargetModules.Pattern != "" && c.TargetModules.Names != nil {
		return errors.New("adapter config: target_modules is both a pattern and a list; use one form")
	}
	if c.TargetModules.Pattern != "" && c.LayersToTransform != nil {
		return errors.New("adapter config: layers_to_transform cannot be used when target_modules is a regular expression (PEFT refuses it); put the layer numbers into the expression or use a list")
	}
	if c.TargetModules.Pattern != "" && c.LayersPattern != nil {
		return errors.New("adapter config: layers_pattern cannot be used when target_modules is a regular expression (PEFT refuses it)")
	}
	if len(c.LayersPattern) > 0 && c.LayersToTransform == nil {
		return errors.New("adapter config: layers_pattern is set but layers_to_transform is not; set layers_to_transform too (PEFT requires it)")
	}
	for _, l := range c.LayersToTransform {
		if l < 0 {
			return fmt.Errorf("adapter config: layers_to_transform holds %d; layer indices are non-negative", l)
		}
	}
	for _, rule := range c.RankPattern {
		if rule.Value <= 0 || rule.Value != math.Trunc(rule.Value) {
			return fmt.Errorf("adapter config: rank_pattern[%q] = %v must be a positive integer", rule.Pattern, rule.Value)
		}
	}
	if _, err := c.compile(); err != nil {
		return err
	}
	for key, what := range unsupportedFields {
		if v, ok := c.raw[key]; ok && isSet(v) {
			return fmt.Errorf("adapter config: %s = %s is not supported (%s); remove it or set it to null/false", key, truncate(string(v), 60), what)
		}
	}
	return nil
}

// unsupportedFields are PEFT LoraConfig fields that change the adapter's
// computation when set, with what they are.
var unsupportedFields = map[string]string{
	"lora_bias":               "a trainable bias on lora_B",
	"use_qalora":              "QA-LoRA pooling",
	"layer_replication":       "layer replication",
	"alora_invocation_tokens": "activated LoRA",
	"target_parameters":       "LoRA on bare parameters",
	"trainable_token_indices": "trainable token embeddings",
	"use_bdlora":              "block-diagonal LoRA",
	"arrow_config":            "Arrow routing",
	"velora_config":           "VeLoRA",
	"kasa_config":             "KaSA",
	"monteclora_config":       "MonteCLoRA",
}

// isSet reports whether a raw JSON value is something other than null, false, {}, [], 0 or "".
func isSet(v json.RawMessage) bool {
	s := string(bytes.TrimSpace(v))
	switch s {
	case "", "null", "false", "{}", "[]", "0", `""`:
		return false
	}
	var x any
	if json.Unmarshal(v, &x) == nil {
		switch t := x.(type) {
		case map[string]any:
			return len(t) > 0
		case []any:
			return len(t) > 0
		}
	}
	return true
}

// Marshal returns adapter_config.json as PEFT writes it (keys sorted, two-space
// indent, no trailing newline). Fields read from a file and not changed since, and
// fields this package does not interpret, are written back as they were read.
func (c *Config) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(c.raw)+len(configFields)+1)
	for k, v := range c.raw {
		out[k] = v
	}
	for _, f := range configFields {
		enc, err := f.encode(c)
		if err != nil {
			return nil, fmt.Errorf("adapter config field %q: %w", f.key, err)
		}
		if old, ok := c.raw[f.key]; ok {
			var was Config
			if f.decode(&was, old) == nil {
				if enc2, err := f.encode(&was); err == nil && bytes.Equal(enc, enc2) {
					continue // unchanged: keep the bytes as read
				}
			}
		}
		out[f.key] = enc
	}
	out["peft_type"] = json.RawMessage(`"LORA"`)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("lora: encoding adapter config: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WriteConfig writes adapter_config.json into dir (created if needed).
func (c *Config) WriteConfig(dir string) error {
	data, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ConfigFile), data)
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so that an existing file is never left half-written.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	return nil
}

// configField reads and writes one interpreted field of adapter_config.json.
type configField struct {
	key    string
	decode func(c *Config, v json.RawMessage) error
	encode func(c *Config) (json.RawMessage, error)
}

// configFields are the fields this package interprets (peft_type is handled apart).
var configFields = []configField{
	{"r",
		func(c *Config, v json.RawMessage) error {
			f, err := decodeNumber(v)
			if err != nil {
				return err
			}
			if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
				return fmt.Errorf("r must be an integer")
			}
			c.R = int(f)
			return nil
		},
		func(c *Config) (json.RawMessage, error) { return json.RawMessage(strconv.Itoa(c.R)), nil }},
	{"lora_alpha",
		func(c *Config, v json.RawMessage) (err error) { c.Alpha, err = decodeNumber(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeNumber(c.Alpha, true), nil }},
	{"target_modules",
		func(c *Config, v json.RawMessage) (err error) { c.TargetModules, err = decodeModules(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeModules(c.TargetModules) }},
	{"exclude_modules",
		func(c *Config, v json.RawMessage) (err error) { c.ExcludeModules, err = decodeModules(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeModules(c.ExcludeModules) }},
	{"lora_dropout",
		func(c *Config, v json.RawMessage) (err error) { c.Dropout, err = decodeNumber(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeNumber(c.Dropout, false), nil }},
	{"bias",
		func(c *Config, v json.RawMessage) error { return json.Unmarshal(v, &c.Bias) },
		func(c *Config) (json.RawMessage, error) { return json.Marshal(c.Bias) }},
	{"use_rslora",
		func(c *Config, v json.RawMessage) error { return decodeBool(v, &c.UseRSLoRA) },
		func(c *Config) (json.RawMessage, error) { return json.Marshal(c.UseRSLoRA) }},
	{"use_dora",
		func(c *Config, v json.RawMessage) error { return decodeBool(v, &c.UseDoRA) },
		func(c *Config) (json.RawMessage, error) { return json.Marshal(c.UseDoRA) }},
	{"fan_in_fan_out",
		func(c *Config, v json.RawMessage) error { return decodeBool(v, &c.FanInFanOut) },
		func(c *Config) (json.RawMessage, error) { return json.Marshal(c.FanInFanOut) }},
	{"inference_mode",
		func(c *Config, v json.RawMessage) error { return decodeBool(v, &c.InferenceMode) },
		func(c *Config) (json.RawMessage, error) { return json.Marshal(c.InferenceMode) }},
	{"modules_to_save",
		func(c *Config, v json.RawMessage) (err error) { c.ModulesToSave, err = decodeStrings(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeStrings(c.ModulesToSave) }},
	{"layers_to_transform",
		func(c *Config, v json.RawMessage) (err error) { c.LayersToTransform, err = decodeInts(v); return },
		func(c *Config) (json.RawMessage, error) {
			if c.LayersToTransform == nil {
				return json.RawMessage("null"), nil
			}
			return json.Marshal(c.LayersToTransform)
		}},
	{"layers_pattern",
		func(c *Config, v json.RawMessage) (err error) {
			c.LayersPattern, err = decodeStrings(v)
			if len(c.LayersPattern) == 1 && c.LayersPattern[0] == "" {
				c.LayersPattern = []string{} // PEFT treats "" like no pattern
			}
			return
		},
		func(c *Config) (json.RawMessage, error) { return encodeStrings(c.LayersPattern) }},
	{"rank_pattern",
		func(c *Config, v json.RawMessage) (err error) { c.RankPattern, err = decodeRules(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeRules(c.RankPattern, true) }},
	{"alpha_pattern",
		func(c *Config, v json.RawMessage) (err error) { c.AlphaPattern, err = decodeRules(v); return },
		func(c *Config) (json.RawMessage, error) { return encodeRules(c.AlphaPattern, true) }},
	{"init_lora_weights",
		func(c *Config, v json.RawMessage) error {
			var x any
			if err := json.Unmarshal(v, &x); err != nil {
				return err
			}
			switch t := x.(type) {
			case bool:
				c.InitLoRAWeights = strconv.FormatBool(t)
			case string:
				c.InitLoRAWeights = t
			default:
				return fmt.Errorf("must be true, false or a string such as \"gaussian\"")
			}
			return nil
		},
		func(c *Config) (json.RawMessage, error) {
			switch c.InitLoRAWeights {
			case "true", "":
				return json.RawMessage("true"), nil
			case "false":
				return json.RawMessage("false"), nil
			}
			return json.Marshal(c.InitLoRAWeights)
		}},
	{"base_model_name_or_path",
		func(c *Config, v json.RawMessage) error { return decodeOptString(v, &c.BaseModelNameOrPath) },
		func(c *Config) (json.RawMessage, error) { return encodeOptString(c.BaseModelNameOrPath) }},
	{"task_type",
		func(c *Config, v json.RawMessage) error { return decodeOptString(v, &c.TaskType) },
		func(c *Config) (json.RawMessage, error) { return encodeOptString(c.TaskType) }},
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

func decodeNumber(v json.RawMessage) (float64, error) {
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return 0, fmt.Errorf("must be a number")
	}
	return f, nil
}

// encodeNumber writes f as Python's json module would: integers of an int
// field without a fraction, floats always with one ("0.0", "0.05", "1e-05").
func encodeNumber(f float64, intIfWhole bool) json.RawMessage {
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		if intIfWhole {
			return json.RawMessage(strconv.FormatFloat(f, 'f', 0, 64))
		}
		return json.RawMessage(strconv.FormatFloat(f, 'f', 1, 64))
	}
	if a := math.Abs(f); a >= 1e-4 && a < 1e16 {
		return json.RawMessage(strconv.FormatFloat(f, 'f', -1, 64))
	}
	return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64))
}

func decodeBool(v json.RawMessage, dst *bool) error {
	if isNull(v) {
		*dst = false
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("must be true or false")
	}
	return nil
}

func decodeOptString(v json.RawMessage, dst *string) error {
	if isNull(v) {
		*dst = ""
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("must be a string or null")
	}
	return nil
}

func encodeOptString(s string) (json.RawMessage, error) {
	if s == "" {
		return json.RawMessage("null"), nil
	}
	return json.Marshal(s)
}

// decodeStrings reads null, a string (one element) or a list of strings.
func decodeStrings(v json.RawMessage) ([]string, error) {
	if isNull(v) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, fmt.Errorf("must be a string, a list of strings or null")
	}
	if l == nil {
		l = []string{}
	}
	return l, nil
}

func encodeStrings(l []string) (json.RawMessage, error) {
	if l == nil {
		return json.RawMessage("null"), nil
	}
	return json.Marshal(l)
}

// decodeInts reads null, an integer (one element) or a list of integers.
func decodeInts(v json.RawMessage) ([]int, error) {
	if isNull(v) {
		return nil, nil
	}
	var i int
	if json.Unmarshal(v, &i) == nil {
		return []int{i}, nil
	}
	var l []int
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, fmt.Errorf("must be an integer, a list of integers or null")
	}
	if len(l) == 0 {
		return nil, nil // PEFT treats an empty list as "all layers"
	}
	return l, nil
}

func decodeModules(v json.RawMessage) (Modules, error) {
	if isNull(v) {
		return Modules{}, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s == "" {
			return Modules{}, fmt.Errorf("an empty string selects nothing; give a regular expression, a list of names or null")
		}
		return Modules{Pattern: s}, nil
	}
	var l []string
	if err := json.Unmarshal(v, &l); err != nil {
		return Modules{}, fmt.Errorf("must be a list of module names, a regular expression string or null")
	}
	if l == nil {
		l = []string{}
	}
	return Modules{Names: l}, nil
}

func encodeModules(m Modules) (json.RawMessage, error) {
	switch {
	case m.Pattern != "":
		return json.Marshal(m.Pattern)
	case m.Names != nil:
		return json.Marshal(m.Names)
	}
	return json.RawMessage("null"), nil
}

// decodeRules reads a JSON object of pattern → number keeping the file's key
// order, which decides which pattern wins when several match.
func decodeRules(v json.RawMessage) ([]PatternRule, error) {
	if isNull(v) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("must be an object mapping module patterns to numbers")
	}
	rules := []PatternRule{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := kt.(string)
		vt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := vt.(json.Number)
		if !ok {
			return nil, fmt.Errorf("pattern %q maps to %v, expected a number", key, vt)
		}
		f, err := num.Float64()
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", key, err)
		}
		rules = append(rules, PatternRule{Pattern: key, Value: f})
	}
	return rules, nil
}

func encodeRules(rules []PatternRule, intIfWhole bool) (json.RawMessage, error) {
	// Written in the slice's order, which is the order PEFT (and ParseConfig)
	// try the patterns in when reading the file back.
	var b bytes.Buffer
	b.WriteByte('{')
	for i, r := range rules {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(r.Pattern)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(encodeNumber(r.Value, intIfWhole))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
